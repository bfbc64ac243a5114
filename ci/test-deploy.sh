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
#              --check --diff (changed=0), zmqrpc calls across the nodes and
#              as the services' users with their files, a rolling restart of
#              the proxies under a client's calls (0 failed); then Sentinel
#              mode on the same containers (inventory/containers-sentinel.yml):
#              converge, verify, the master killed under a client's calls (0
#              failed, a new master, a new server found), converge again and
#              --check --diff after the failover (changed=0); no secret in any
#              output, teardown
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
    ansible-playbook --syntax-check -i inventory/example.yml site.yml verify.yml restart-proxies.yml
    ansible-playbook --syntax-check -i inventory/containers.yml site.yml verify.yml restart-proxies.yml
    ansible-playbook --syntax-check -i inventory/containers.yml -i inventory/containers-sentinel.yml \
      site.yml verify.yml restart-proxies.yml
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
    die "$(basename "$1" .log): a host changed something or failed (above)"
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

  echo "building zmqrpc and oslo-messaging-zmq-proxy into $deploy_work/bin, with VERSION and SHA256SUMS"
  bash ci/install-deps.sh
  go build -o "$deploy_work/bin/" ./cmd/zmqrpc ./cmd/oslo-messaging-zmq-proxy
  git describe --always --dirty 2>/dev/null >"$deploy_work/bin/VERSION" || echo "0+unknown" >"$deploy_work/bin/VERSION"
  (cd "$deploy_work/bin" && sha256sum zmqrpc oslo-messaging-zmq-proxy >SHA256SUMS)

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
    # The users of the OpenStack services, as their packages would create
    # them: the roles write files these services can read.
    docker exec "$h" sh -c 'useradd --system --user-group --no-create-home --shell /usr/sbin/nologin nova &&
      useradd --system --user-group --no-create-home --shell /usr/sbin/nologin neutron'
  done
  echo "started ${deploy_hosts[*]} on network $deploy_network"

  local -a playbook=(ansible-playbook -i inventory/containers.yml -e "fabric_binary_dir=$deploy_work/bin"
    -e "fabric_credentials_dir=$deploy_work/credentials")
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
    echo "-- --check --diff on the converged hosts: nothing may change"
    "${playbook[@]}" --check --diff site.yml >"$deploy_work/check.log" || {
      cat "$deploy_work/check.log"
      die "the --check --diff run failed"
    }
    check_recap "$deploy_work/check.log"
    echo "-- verify: calls from each compute to every node, and as nova and neutron with their files"
    "${playbook[@]}" verify.yml | tee "$deploy_work/verify.log"
  )
  check_redis_port
  rolling_restart "${playbook[@]}"
  timed "Sentinel mode" sentinel_mode "${playbook[@]}"
  check_no_secret
}

# sentinel_mode PLAYBOOK...: the same containers switched to Sentinel mode
# (inventory/containers-sentinel.yml): the master on the controller,
# replicas on the computes, a Sentinel on each. Converge, verify, then kill
# the master's redis-server while compute1 calls compute2: no call may
# fail, the Sentinels must elect a new master and a server started at the
# kill must be found. The old master is started again, as a reboot would:
# converge again and --check --diff must change nothing (the role does not
# fight the Sentinels' rewrites), and it must be a replica again.
sentinel_mode() {
  local -a playbook=("$@" -i inventory/containers-sentinel.yml)
  local controller=${deploy_hosts[0]} compute1=${deploy_hosts[1]} compute2=${deploy_hosts[2]}
  local group=oslo-messaging-zeromq conf=/etc/nova/nova.conf.d/50-zeromq.conf
  (
    cd deploy/ansible
    echo "-- Sentinel mode: converge"
    "${playbook[@]}" site.yml >"$deploy_work/sentinel-converge.log" || {
      cat "$deploy_work/sentinel-converge.log"
      die "the Sentinel-mode run failed"
    }
    echo "-- Sentinel mode: verify"
    "${playbook[@]}" verify.yml >"$deploy_work/sentinel-verify.log" || {
      cat "$deploy_work/sentinel-verify.log"
      die "verify.yml failed in Sentinel mode"
    }
  )
  docker exec "$compute1" grep -qx 'rpc_zmq_matchmaker = sentinel' "$conf" ||
    die "nova's file on compute1 does not say rpc_zmq_matchmaker = sentinel"
  docker exec "$compute1" grep -Eqx "sentinel_hosts = [^,]+:26379,[^,]+:26379,[^,]+:26379" "$conf" ||
    die "nova's file on compute1 does not name the three Sentinels"
  local master info
  master=$(sentinel_master "$compute1")
  info=$(docker exec "$compute1" redis-cli -p 26379 SENTINEL master "$group" | paste - -)
  if ! { grep -qx $'num-slaves\t2' <<<"$info" && grep -qx $'num-other-sentinels\t2' <<<"$info"; }; then
    die "the Sentinel on compute1 does not know 2 replicas and 2 other Sentinels: $info"
  fi
  echo "the Sentinels name the master $master, with 2 replicas and 3 Sentinels; nova's file says sentinel"

  echo "-- failover: kill the master's redis-server while compute1 calls compute2"
  docker exec -d "$compute2" sh -c "echo \$\$ >/tmp/failover-server.pid &&
    exec runuser -u nova -- zmqrpc bench rpc-server --config-file $conf --topic failover --server compute2 >/tmp/failover-server.log 2>&1"
  local i
  for ((i = 0; i < 100; i++)); do
    docker exec "$compute2" grep -q '^ready ' /tmp/failover-server.log 2>/dev/null && break
    sleep 0.2
  done
  docker exec "$compute2" grep -q '^ready ' /tmp/failover-server.log ||
    die "the bench server on compute2 did not start: $(docker exec "$compute2" cat /tmp/failover-server.log)"
  local client_seconds=30
  docker exec "$compute1" runuser -u nova -- zmqrpc bench rpc-client --config-file "$conf" \
    --topic failover --server compute2 -p 4 -l "$client_seconds" --timeout 10s >"$deploy_work/failover-client.log" 2>&1 &
  local client=$!
  sleep 5
  local t0 elected="" found="" new
  t0=$(date +%s%N)
  docker exec "$controller" sh -c 'kill -KILL "$(cat /run/redis/redis-server.pid)"'
  # A server that starts at the kill registers once a master is elected.
  docker exec -d "$compute2" sh -c "exec runuser -u nova -- zmqrpc serve --config-file $conf \
    --topic failover-new --server compute2 >/tmp/failover-new.log 2>&1"
  for ((i = 0; i < 150; i++)); do
    new=$(sentinel_master "$compute1")
    if [[ -n $new && $new != "$master" ]]; then
      elected=$(($(date +%s%N) - t0))
      break
    fi
    sleep 0.2
  done
  [[ -n $elected ]] || die "no new master 30 s after the master was killed"
  for ((i = 0; i < 60; i++)); do
    if docker exec "$compute1" runuser -u nova -- zmqrpc call --config-file "$conf" --timeout 2s \
      --topic failover-new --server compute2 echo arg=found >/dev/null 2>&1; then
      found=$(($(date +%s%N) - t0))
      break
    fi
    sleep 0.5
  done
  [[ -n $found ]] || die "the server started at the kill was not found: $(docker exec "$compute2" cat /tmp/failover-new.log)"
  wait "$client" || die "the bench client failed: $(cat "$deploy_work/failover-client.log")"
  docker exec "$compute2" sh -c 'kill -TERM "$(cat /tmp/failover-server.pid)"' || true
  local calls failed
  calls=$(awk '/^client: duration:/ { for (i = 1; i <= NF; i++) if ($i == "count:") print $(i + 1) }' "$deploy_work/failover-client.log")
  failed=$(awk '/^error: duration:/ { for (i = 1; i <= NF; i++) if ($i == "count:") print $(i + 1) }' "$deploy_work/failover-client.log")
  printf 'failover: master %s killed; the Sentinels named %s after %d ms; a server started at the kill was found after %d ms; in %ds the client made %s calls, %s failed\n' \
    "$master" "$new" $((elected / 1000000)) $((found / 1000000)) "$client_seconds" "${calls:-?}" "${failed:-?}"
  [[ -n $calls && $calls -gt 0 ]] || die "the client's summary has no calls"
  [[ $failed == 0 ]] || die "$failed calls failed during the failover"

  echo "-- the old master starts again (as after a reboot); converge again and --check --diff: nothing may change"
  local out
  # Debian's init script complains that a container may not raise ulimit -n.
  out=$(docker exec "$controller" /etc/init.d/redis-server start 2>&1) || die "redis-server did not start again: $out"
  (
    cd deploy/ansible
    "${playbook[@]}" site.yml >"$deploy_work/sentinel-reconverge.log" || {
      cat "$deploy_work/sentinel-reconverge.log"
      die "the Sentinel-mode run after the failover failed"
    }
    check_recap "$deploy_work/sentinel-reconverge.log"
    "${playbook[@]}" --check --diff site.yml >"$deploy_work/sentinel-check.log" || {
      cat "$deploy_work/sentinel-check.log"
      die "the Sentinel-mode --check --diff run failed"
    }
    check_recap "$deploy_work/sentinel-check.log"
  )
  for ((i = 0; i < 30; i++)); do
    docker exec "$compute1" redis-cli -p 26379 SENTINEL replicas "$group" | paste - - |
      awk -v ip="$master" '$1 == "ip" { cur = $2 } $1 == "master-link-status" && cur == ip && $2 == "ok" { ok = 1 } END { exit !ok }' &&
      break
    sleep 1
  done
  ((i < 30)) || die "the old master $master is not a replica of $new again"
  echo "the old master $master is a replica of $new again"
}

# sentinel_master HOST: the master's address the Sentinel on HOST names.
sentinel_master() {
  docker exec "$1" redis-cli -p 26379 SENTINEL get-master-addr-by-name oslo-messaging-zeromq 2>/dev/null | head -n 1
}

# check_redis_port: the inventory's redis_port (6380) won over the role's
# default, on the controller's Redis and in a compute's nova file.
check_redis_port() {
  echo "-- the inventory's redis_port won"
  docker exec fabric-deploy-controller grep -qx 'port 6380' /etc/redis/redis.conf ||
    die "Redis does not listen on the inventory's redis_port 6380"
  docker exec fabric-deploy-compute1 grep -Eq '^transport_url = zmq\+redis://:[A-Za-z0-9]+@[^ ]+:6380/$' \
    /etc/nova/nova.conf.d/50-zeromq.conf || die "nova's transport_url does not name Redis on port 6380 with a password"
  echo "redis.conf: port 6380; nova: transport_url on port 6380 with a password"
}

# rolling_restart PLAYBOOK...: restart-proxies.yml while a client on
# compute1 calls a server on compute2 through the proxies; no call may
# fail. Prints the client's figures.
rolling_restart() {
  echo "-- rolling restart of the proxies while compute1 calls compute2"
  local conf=/etc/nova/nova.conf.d/50-zeromq.conf
  docker exec -d fabric-deploy-compute2 sh -c "echo \$\$ >/tmp/rolling-server.pid &&
    exec runuser -u nova -- zmqrpc bench rpc-server --config-file $conf --topic rolling --server compute2 >/tmp/rolling-server.log 2>&1"
  local i
  for ((i = 0; i < 100; i++)); do
    docker exec fabric-deploy-compute2 grep -q '^ready ' /tmp/rolling-server.log 2>/dev/null && break
    sleep 0.2
  done
  docker exec fabric-deploy-compute2 grep -q '^ready ' /tmp/rolling-server.log ||
    die "the bench server on compute2 did not start: $(docker exec fabric-deploy-compute2 cat /tmp/rolling-server.log)"
  # The client calls for rolling_seconds; the restart must end before it
  # does (an interrupted client would count its calls in flight as failed).
  local rolling_seconds=120
  docker exec fabric-deploy-compute1 runuser -u nova -- zmqrpc bench rpc-client --config-file "$conf" \
    --topic rolling --server compute2 -p 4 -l "$rolling_seconds" --timeout 10s >"$deploy_work/rolling-client.log" 2>&1 &
  local client=$! start=$SECONDS
  (cd deploy/ansible && "$@" restart-proxies.yml) >"$deploy_work/restart.log" || {
    cat "$deploy_work/restart.log"
    die "restart-proxies.yml failed"
  }
  local took=$((SECONDS - start))
  if ((took >= rolling_seconds - 5)); then
    die "the rolling restart took ${took}s, longer than the client's ${rolling_seconds}s of calls"
  fi
  wait "$client" || die "the bench client failed: $(cat "$deploy_work/rolling-client.log")"
  docker exec fabric-deploy-compute2 sh -c 'kill -TERM "$(cat /tmp/rolling-server.pid)"' || true
  local calls failed
  calls=$(awk '/^client: duration:/ { for (i = 1; i <= NF; i++) if ($i == "count:") print $(i + 1) }' "$deploy_work/rolling-client.log")
  failed=$(awk '/^error: duration:/ { for (i = 1; i <= NF; i++) if ($i == "count:") print $(i + 1) }' "$deploy_work/rolling-client.log")
  grep -E '^(client|error|round-trip): duration:|^failed:' "$deploy_work/rolling-client.log" || true
  grep -E 'Restart a router proxy|Wait for a router proxy to register' "$deploy_work/restart.log" | sed 's/ \*\**$//' || true
  echo "rolling restart: 3 proxies restarted one at a time in ${took}s (playbook); in ${rolling_seconds}s the client made ${calls:-?} calls, ${failed:-?} failed"
  [[ -n $calls && $calls -gt 0 ]] || die "the client's summary has no calls"
  [[ $failed == 0 ]] || die "$failed calls failed during the rolling restart"
}

# check_no_secret: the Redis password is in no output of the runs.
check_no_secret() {
  local secret
  secret=$(cat "$deploy_work/credentials/redis_password")
  [[ -n $secret ]] || die "no generated Redis password in $deploy_work/credentials"
  if grep -l -F -- "$secret" "$deploy_work"/*.log; then
    die "the Redis password is printed in the log(s) above"
  fi
  echo "-- the Redis password (generated, ${#secret} characters) is in no output of the runs"
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
