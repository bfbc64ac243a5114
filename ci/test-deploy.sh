#!/usr/bin/env bash
# Tests of the deployment tooling:
#
#   devstack   the DevStack plugin: shellcheck, bats against a fake DevStack,
#              and bats under the real DevStack trees (rocky-eol, master) of
#              shared/devstack (FABRIC_DEVSTACK_TREES), Redis and proxies
#              really running
#   lint       the Ansible roles: syntax check, ansible-lint (offline), yamllint
#   docker     the Ansible roles against containers of the lab base image: one
#              controller, two computes; converge, converge again (changed=0),
#              zmqrpc calls across the nodes, teardown
#
# Usage: ci/test-deploy.sh [devstack|lint|docker]...   (default: all three)
#
# Missing Debian packages (bats, shellcheck, ansible, ansible-lint, yamllint)
# are installed with apt-get when run as root or with password-less sudo;
# otherwise the script names them and fails. Nothing is skipped silently:
# without a Docker daemon the docker part fails, unless FABRIC_SKIP_DOCKER=1,
# which skips it with a message.
#
# Environment:
#   FABRIC_SKIP_DOCKER=1   skip the docker part when no Docker daemon is reachable
#   FABRIC_BASE_IMAGE      base image of the containers (default fabric-base:bookworm)
#   FABRIC_KEEP=1          leave the containers running after the docker part
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
export PATH="$PATH:/usr/local/go/bin"
# ansible.cfg is read from the working directory only.
export ANSIBLE_CONFIG=$root/deploy/ansible/ansible.cfg ANSIBLE_NOCOLOR=1

die() {
  echo "error: $*" >&2
  exit 1
}

section() {
  printf '\n== %s\n' "$*"
}

# ensure_packages PACKAGE...: install the Debian packages that are missing.
ensure_packages() {
  local p missing=()
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      die "missing Debian packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}"
    fi
  fi
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# timed NAME COMMAND...: runs COMMAND and reports its duration.
timed() {
  local name=$1
  shift
  local start=$SECONDS
  "$@"
  echo "-- $name: ok in $((SECONDS - start))s"
}

test_devstack() {
  section "DevStack plugin: shellcheck, bats (fake DevStack), bats (real DevStack trees)"
  # git, redis and uuidgen (lib/neutron calls it) for the real trees; ss
  # (iproute2) finds free ports.
  ensure_packages bats shellcheck git redis-server redis-tools uuid-runtime iproute2
  shellcheck -x devstack/settings devstack/plugin.sh devstack/lib/zeromq \
    devstack/tests/*.bash devstack/tests/*.bats devstack/tests/real/* \
    devstack/tests/fakebin/* devstack/tests/fakebuild/* ci/test-deploy.sh
  bats devstack/tests/plugin.bats
  # The plugin's phases through DevStack's own code, rocky-eol and master
  # (devstack/tests/real-devstack.bats says what is stubbed).
  bats devstack/tests/real-devstack.bats
}

test_lint() {
  section "Ansible: yamllint, syntax check, ansible-lint (offline)"
  # ansible brings the collections the roles and the container test use
  # (ansible.posix, community.docker).
  ensure_packages ansible-core ansible ansible-lint yamllint
  (
    cd deploy/ansible
    yamllint --strict -c .yamllint .
    ansible-playbook --syntax-check -i inventory/example.yml site.yml verify.yml
    ansible-playbook --syntax-check -i inventory/containers.yml site.yml verify.yml
    ansible-lint --offline
  )
}

# The container test's names; they match inventory/containers.yml.
deploy_hosts=(fabric-deploy-controller fabric-deploy-compute1 fabric-deploy-compute2)
deploy_network=fabric-deploy
deploy_work=""

# docker_teardown removes the containers and the network.
docker_teardown() {
  local h
  for h in "${deploy_hosts[@]}"; do
    docker rm -f "$h" >/dev/null 2>&1 || true
  done
  docker network rm "$deploy_network" >/dev/null 2>&1 || true
}

docker_cleanup() {
  if [[ ${FABRIC_KEEP:-} == 1 ]]; then
    echo "FABRIC_KEEP=1: leaving ${deploy_hosts[*]} and network $deploy_network running"
  else
    echo "removing ${deploy_hosts[*]} and network $deploy_network"
    docker_teardown
  fi
  if [[ -n $deploy_work ]]; then
    rm -rf "$deploy_work"
  fi
}

# check_recap LOG: every host of the play recap has changed=0 and no
# failure; prints the recap.
check_recap() {
  local recap
  recap=$(awk '/^PLAY RECAP/ { f = 1; next } f && /ok=/' "$1")
  echo "$recap"
  if [[ $(grep -c 'ok=' <<<"$recap") -ne ${#deploy_hosts[@]} ]]; then
    die "the second run's recap does not list the ${#deploy_hosts[@]} hosts"
  fi
  if grep -Ev 'changed=0 +unreachable=0 +failed=0' <<<"$recap"; then
    die "the second run changed something or failed (above): the roles are not idempotent"
  fi
}

test_docker() {
  section "Ansible against containers: one controller, two computes"
  if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
    if [[ ${FABRIC_SKIP_DOCKER:-} == 1 ]]; then
      echo "SKIPPED: no Docker daemon is reachable, and FABRIC_SKIP_DOCKER=1"
      skipped+=(docker)
      return 0
    fi
    die "no Docker daemon is reachable: the Ansible container test needs one (FABRIC_SKIP_DOCKER=1 skips it)"
  fi
  ensure_packages ansible-core ansible
  local image=${FABRIC_BASE_IMAGE:-fabric-base:bookworm}
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "building the base image $image (debootstrap, a few minutes)"
    FABRIC_BASE_IMAGE=$image bash ci/build-base-image.sh
  fi

  deploy_work=$(mktemp -d "${TMPDIR:-/tmp}/fabric-deploy.XXXXXX")
  trap docker_cleanup EXIT
  trap 'exit 130' INT TERM

  echo "building zmqrpc and oslo-messaging-zmq-proxy into $deploy_work/bin"
  bash ci/install-deps.sh
  go build -o "$deploy_work/bin/" ./cmd/zmqrpc ./cmd/oslo-messaging-zmq-proxy

  # Leftovers of an interrupted run.
  docker_teardown
  docker network create "$deploy_network" >/dev/null
  local h
  for h in "${deploy_hosts[@]}"; do
    # --init reaps the daemons' zombies; SYS_PTRACE lets root read
    # /proc/PID/exe of other users' processes, as on a host, which Debian's
    # init scripts (start-stop-daemon --exec) need.
    docker run -d --init --cap-add SYS_PTRACE --name "$h" --hostname "$h" --network "$deploy_network" \
      --label io.oslozmq.fabric.test=deploy "$image" sleep infinity >/dev/null
  done
  echo "started ${deploy_hosts[*]} on network $deploy_network"

  local -a playbook=(ansible-playbook -i inventory/containers.yml -e "fabric_binary_dir=$deploy_work/bin")
  (
    cd deploy/ansible
    echo "-- converge"
    "${playbook[@]}" site.yml | tee "$deploy_work/converge.log"
    echo "-- converge again: nothing may change"
    "${playbook[@]}" site.yml >"$deploy_work/reconverge.log" || {
      cat "$deploy_work/reconverge.log"
      die "the second run failed"
    }
    check_recap "$deploy_work/reconverge.log"
    echo "-- verify: zmqrpc calls from each compute to every node, through the proxies"
    "${playbook[@]}" verify.yml
  )
}

skipped=()
parts=("$@")
if ((${#parts[@]} == 0)); then
  parts=(devstack lint docker)
fi
for part in "${parts[@]}"; do
  case $part in
    devstack) timed devstack test_devstack ;;
    lint) timed lint test_lint ;;
    docker) timed docker test_docker ;;
    *) die "unknown part '$part' (want devstack, lint or docker)" ;;
  esac
done
echo
if ((${#skipped[@]} > 0)); then
  echo "deploy tests passed: ${parts[*]}; SKIPPED: ${skipped[*]}"
else
  echo "deploy tests passed: ${parts[*]}"
fi
