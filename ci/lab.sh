#!/usr/bin/env bash
# Drives the docker-compose.yml lab with whichever Compose this machine has,
# `docker compose` or `docker-compose`. See docs/lab.md.
#
#   ci/lab.sh up [--build]   build fabric:lab if missing (or --build), start
#                            the lab, wait until every service is healthy
#   ci/lab.sh check          call the controller and each compute from the client
#   ci/lab.sh down           stop the lab; nothing of it is left running
#   ci/lab.sh compose ARGS   any Compose command, e.g. `compose ps`
#
# FABRIC_LAB_MODE=proxy (default) or direct selects the configuration.
set -euo pipefail
cd "$(dirname "$0")/.."

image=${FABRIC_LAB_IMAGE:-fabric:lab}
services=(redis proxy1 proxy2 proxy3 controller compute1 compute2)

die() {
  echo "error: $*" >&2
  exit 1
}

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  die "neither 'docker compose' nor 'docker-compose' is installed"
fi

# wait_healthy waits, bounded, until every lab service reports healthy.
wait_healthy() {
  local deadline=$((SECONDS + 180)) s id status pending
  while :; do
    pending=()
    for s in "${services[@]}"; do
      id=$("${compose[@]}" ps -q "$s" 2>/dev/null || true)
      status=$([[ -n $id ]] && docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing)
      [[ $status == healthy ]] || pending+=("$s=$status")
    done
    ((${#pending[@]} == 0)) && return 0
    if ((SECONDS > deadline)); then
      "${compose[@]}" ps >&2 || true
      die "not healthy after 180s: ${pending[*]}"
    fi
    sleep 2
  done
}

# call runs one zmqrpc call from the client container and prints it.
call() {
  local out
  out=$("${compose[@]}" run --rm -T client zmqrpc call --timeout 10s "$@" 2>&1) ||
    die "zmqrpc call $*: $out"
  printf '%-50s -> %s\n' "zmqrpc call $*" "$(tail -n 1 <<<"$out")"
}

cmd=${1:-}
(($# > 0)) && shift
case $cmd in
  up)
    if [[ ${1:-} == --build ]] || ! docker image inspect "$image" >/dev/null 2>&1; then
      bash ci/build-images.sh
    fi
    echo "starting the lab (${FABRIC_LAB_MODE:-proxy} mode) with ${compose[*]}"
    "${compose[@]}" up -d
    wait_healthy
    echo "lab up: ${services[*]} healthy"
    ;;
  check)
    call --topic demo echo arg=hello
    call --topic compute --server compute1 echo arg=to-compute1
    call --topic compute --server compute2 echo arg=to-compute2
    call --topic compute --repeat 4 echo arg=round-robin
    echo "lab OK"
    ;;
  down)
    "${compose[@]}" --profile tools down --remove-orphans --timeout 10
    ;;
  compose)
    "${compose[@]}" "$@"
    ;;
  *)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
