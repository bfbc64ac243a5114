#!/usr/bin/env bats
#
# The plugin without a DevStack, fast: run-devstack.bash plays stack.sh,
# unstack.sh and clean.sh under `set -euo pipefail` with the fake helpers
# of fake-devstack.bash, which record every call. Files go to a temporary
# root; sudo, systemctl, redis-cli and go are fakes on PATH. These tests
# cover what real-devstack.bats (the plugin under DevStack's own code) does
# not: every knob and every refusal, the error paths (a proxy that never
# registers, a Redis that never answers), building with Go, unstack and
# clean, the call order.
# shellcheck disable=SC2030,SC2031  # each test changes its own environment

bats_require_minimum_version 1.5.0

setup() {
    TESTS_DIR=$(cd "$(dirname "$BATS_TEST_FILENAME")" && pwd)
    PLUGIN_DIR=$(dirname "$TESTS_DIR")
    REPO_DIR=$(dirname "$PLUGIN_DIR")
    export FAKE_ROOT=$BATS_TEST_TMPDIR/root
    export FAKE_LOG=$BATS_TEST_TMPDIR/calls.log
    export FAKE_LOCALRC=$BATS_TEST_TMPDIR/localrc
    mkdir -p "$FAKE_ROOT"
    : >"$FAKE_LOG"
    : >"$FAKE_LOCALRC"
    export PATH=$TESTS_DIR/fakebin:$PATH
    export DATA_DIR=$FAKE_ROOT/opt/stack/data
    export ZEROMQ_CONF_DIR=$FAKE_ROOT/etc/oslo
    export ZEROMQ_LOG_DIR=$FAKE_ROOT/var/log/oslo
    export ZEROMQ_BIN_DIR=$FAKE_ROOT/usr/local/bin
    export ZEROMQ_BUILD_DIR=$FAKE_ROOT/build
    export ZEROMQ_WAIT_TIMEOUT=2
    unset ZEROMQ_PREBUILT_BIN_DIR ZEROMQ_GO FAKE_REDIS_DOWN
    CONF=$ZEROMQ_CONF_DIR/zeromq.conf
    REDIS_CONF=$ZEROMQ_CONF_DIR/zmq-redis.conf
    NOVA_CONF=$FAKE_ROOT/etc/nova/nova.conf
    CELL_CONF=$FAKE_ROOT/etc/nova/nova_cell1.conf
    KEYSTONE_CONF=$FAKE_ROOT/etc/keystone/keystone.conf
    # The three default proxies of HOST_IP 192.0.2.10, registered.
    export FAKE_PUBLISHERS="192.0.2.10:50003,192.0.2.10:50001 192.0.2.10:50013,192.0.2.10:50011 192.0.2.10:50023,192.0.2.10:50021"
}

# localrc LINE... adds lines to the test's [[local|localrc]].
localrc() {
    printf '%s\n' "$@" >>"$FAKE_LOCALRC"
}

# devstack STEP... runs the plugin like DevStack (see run-devstack.bash).
devstack() {
    bash "$TESTS_DIR/run-devstack.bash" "$@"
}

STACK=(stack/pre-install stack/install configure stack/post-config stack/extra)

# called LINE: LINE is in the call log.
called() {
    if ! grep -Fxq -- "$1" "$FAKE_LOG"; then
        echo "not called: $1"
        echo "--- calls:"
        cat "$FAKE_LOG"
        return 1
    fi
}

# not_called REGEX: no line of the call log matches.
not_called() {
    if grep -Eq -- "$1" "$FAKE_LOG"; then
        echo "called, unexpectedly: $1"
        grep -E -- "$1" "$FAKE_LOG"
        return 1
    fi
}

# line_of LINE: its line number in the call log.
line_of() {
    grep -Fxn -- "$1" "$FAKE_LOG" | head -n 1 | cut -d: -f1
}

# ini FILE SECTION OPTION VALUE: the option is set to that value.
ini() {
    local got
    if ! got=$(ini_value "$1" "$2" "$3") || [[ $got != "$4" ]]; then
        echo "$1: [$2] $3 = '${got:-<unset>}', want '$4'"
        cat "$1"
        return 1
    fi
}

# ini_value FILE SECTION OPTION prints the value; fails when unset.
ini_value() {
    bash -c 'FAKE_LOG=/dev/null; source "$1"; iniget "$2" "$3" "$4"' _ \
        "$TESTS_DIR/fake-devstack.bash" "$1" "$2" "$3"
}

proxy_cmd() {
    local n=$1 fe=$2 be=$3 pub=$4
    echo "$ZEROMQ_BIN_DIR/oslo-messaging-zmq-proxy --config-file $CONF --log-file $ZEROMQ_LOG_DIR/zmq-router-proxy-$n.log --frontend-port $fe --backend-port $be --publisher-port $pub${5:-}"
}

@test "controller: every stack phase exits 0 under set -euo pipefail" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack "${STACK[@]}"
    called "echo_summary | Checking the ZeroMQ settings"
    called "echo_summary | Installing the ZeroMQ driver's packages and binaries"
    called "echo_summary | Starting the ZeroMQ matchmaker and router proxies"
    [[ $output == *"ZeroMQ router proxy 3: frontend 192.0.2.10:50021, backend 192.0.2.10:50022, publisher 192.0.2.10:50023"* ]]
    not_called '^die'
}

@test "controller: settings enable Redis and three proxies, rabbit is gone" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack env
    [[ $output == *"ENABLED_SERVICES=mysql,key,n-api,n-cond,n-sch,n-cpu,placement-api,zeromq,zmq-redis,zmq-proxy-1,zmq-proxy-2,zmq-proxy-3"* ]]
    [[ $output == *"ZEROMQ_SUBNODE=False"* ]]
    [[ $output == *"ZEROMQ_REDIS_HOST=127.0.0.1"* ]]
}

@test "controller install: packages, the distro Redis stopped, binaries built from the checkout" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack stack/pre-install stack/install
    # libzmq5 and redis-tools are files/debs/zmq's, which DevStack installs.
    called "install_package | redis-server"
    called "stop_service | redis-server"
    called "systemctl | disable redis-server"
    called "install_package | gcc | pkg-config | libzmq3-dev"
    called "go | build -o $ZEROMQ_BUILD_DIR/ ./cmd/zmqrpc ./cmd/oslo-messaging-zmq-proxy | cwd=$REPO_DIR"
    called "sudo | install -m 0755 $ZEROMQ_BUILD_DIR/zmqrpc $ZEROMQ_BUILD_DIR/oslo-messaging-zmq-proxy $ZEROMQ_BIN_DIR/"
    [[ -x $ZEROMQ_BIN_DIR/zmqrpc && -x $ZEROMQ_BIN_DIR/oslo-messaging-zmq-proxy ]]
}

@test "controller post-config: zeromq.conf in Rocky's layout" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack "${STACK[@]}"
    ini "$CONF" DEFAULT transport_url zmq+redis://127.0.0.1:6379/
    ini "$CONF" oslo_messaging_zmq rpc_zmq_host 192.0.2.10
    ini "$CONF" oslo_messaging_zmq rpc_zmq_bind_address '*'
    ini "$CONF" oslo_messaging_zmq rpc_zmq_matchmaker redis
    ini "$CONF" oslo_messaging_zmq use_router_proxy true
    ini "$CONF" oslo_messaging_zmq use_pub_sub true
    ini "$CONF" oslo_messaging_zmq zmq_target_expire 60
    ini "$CONF" oslo_messaging_zmq zmq_target_update 30
    ini "$CONF" zmq_proxy_opts url zmq+redis://127.0.0.1:6379/
    # Nothing deprecated in Rocky.
    run -1 ini_value "$CONF" DEFAULT rpc_backend
    run ! grep -q matchmaker_redis "$CONF"
    [[ -d $ZEROMQ_LOG_DIR ]]
}

@test "controller post-config: Redis, then three proxies, with run_process, each waited for" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack "${STACK[@]}"
    local redis="run_process | zmq-redis | /usr/bin/redis-server $REDIS_CONF"
    called "$redis"
    called "redis-cli | -h 127.0.0.1 -p 6379 ping | auth="
    called "run_process | zmq-proxy-1 | $(proxy_cmd 1 50001 50002 50003)"
    called "run_process | zmq-proxy-2 | $(proxy_cmd 2 50011 50012 50013)"
    called "run_process | zmq-proxy-3 | $(proxy_cmd 3 50021 50022 50023)"
    called "zmqrpc | hosts --config-file $CONF --timeout 5s"
    (($(line_of "$redis") < $(line_of "run_process | zmq-proxy-1 | $(proxy_cmd 1 50001 50002 50003)")))
    grep -Fxq 'bind 0.0.0.0' "$REDIS_CONF"
    grep -Fxq 'port 6379' "$REDIS_CONF"
    grep -Fxq 'protected-mode no' "$REDIS_CONF"
    grep -Fxq 'daemonize no' "$REDIS_CONF"
    grep -Fxq "dir $DATA_DIR/zeromq/redis" "$REDIS_CONF"
    grep -Fxq 'save ""' "$REDIS_CONF"
    run ! grep -q requirepass "$REDIS_CONF"
    [[ -d $DATA_DIR/zeromq/redis ]]
}

@test "the RPC hooks configure every service for ZeroMQ, cells and notifications included" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack "${STACK[@]}"
    ini "$NOVA_CONF" DEFAULT transport_url zmq+redis://127.0.0.1:6379/
    ini "$NOVA_CONF" oslo_messaging_zmq rpc_zmq_host 192.0.2.10
    ini "$NOVA_CONF" oslo_messaging_zmq rpc_zmq_matchmaker redis
    ini "$NOVA_CONF" oslo_messaging_zmq use_router_proxy true
    ini "$NOVA_CONF" oslo_messaging_zmq use_pub_sub true
    ini "$NOVA_CONF" oslo_messaging_notifications transport_url zmq+redis://127.0.0.1:6379/
    # No virtual hosts in ZeroMQ: a cell's URL is the same one.
    ini "$CELL_CONF" DEFAULT transport_url zmq+redis://127.0.0.1:6379/
    # keystone passes its notifications section: the URL goes there, the
    # driver's options to [oslo_messaging_zmq].
    ini "$KEYSTONE_CONF" oslo_messaging_notifications transport_url zmq+redis://127.0.0.1:6379/
    ini "$KEYSTONE_CONF" oslo_messaging_zmq use_pub_sub true
    run -1 ini_value "$KEYSTONE_CONF" DEFAULT transport_url
    called "fake_transport_url | zmq+redis://127.0.0.1:6379/"
    # rpc_backend_add_vhost succeeds without doing anything.
    not_called '^rabbit_'
}

@test "a proxy that does not register stops post-config with a message" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    export FAKE_PUBLISHERS="192.0.2.10:50003,192.0.2.10:50001"
    run -1 devstack "${STACK[@]}"
    [[ $output == *"router proxy 2 (192.0.2.10:50011) is not ready after 2s: see why in its log, sudo journalctl -u devstack@zmq-proxy-2"* ]]
}

@test "a Redis that does not answer stops post-config with a message" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    export FAKE_REDIS_DOWN=1
    run -1 devstack "${STACK[@]}"
    [[ $output == *"Redis at 127.0.0.1:6379 is not ready after 2s: see why in its log, sudo journalctl -u devstack@zmq-redis"* ]]
    not_called '^run_process \| zmq-proxy'
}

@test "unstack stops the proxies, then Redis; clean removes what the plugin wrote" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack "${STACK[@]}"
    touch "$ZEROMQ_LOG_DIR/zmq-router-proxy-1.log"
    : >"$FAKE_LOG"
    run -0 devstack unstack
    called "stop_process | zmq-proxy-1"
    called "stop_process | zmq-proxy-2"
    called "stop_process | zmq-proxy-3"
    called "stop_process | zmq-redis"
    (($(line_of "stop_process | zmq-proxy-3") < $(line_of "stop_process | zmq-redis")))
    not_called '^run_process'
    run -0 devstack clean
    called "stop_process | zmq-redis"
    [[ ! -e $CONF && ! -e $REDIS_CONF ]]
    [[ ! -e $ZEROMQ_BIN_DIR/zmqrpc && ! -e $ZEROMQ_BIN_DIR/oslo-messaging-zmq-proxy ]]
    [[ ! -e $ZEROMQ_LOG_DIR && ! -e $ZEROMQ_CONF_DIR && ! -e $DATA_DIR/zeromq ]]
}

@test "subnode: no Redis, no proxies; Redis on SERVICE_HOST; the hooks still apply" {
    localrc 'HOST_IP=192.0.2.20' 'SERVICE_HOST=192.0.2.10' \
        'ENABLED_SERVICES=n-cpu,placement-client,zeromq'
    run -0 devstack "${STACK[@]}"
    ini "$NOVA_CONF" DEFAULT transport_url zmq+redis://192.0.2.10:6379/
    ini "$NOVA_CONF" oslo_messaging_zmq rpc_zmq_host 192.0.2.20
    ini "$CONF" DEFAULT transport_url zmq+redis://192.0.2.10:6379/
    run -0 devstack unstack clean
    not_called '^run_process'
    not_called '^stop_process'
    not_called 'redis-server'
    not_called '^rabbit_'
}

@test "IPv6: DevStack's bracketed SERVICE_HOST; a controller is no subnode" {
    # A subnode: SERVICE_HOST is another host's [HOST_IPV6].
    localrc 'HOST_IP=192.0.2.20' 'HOST_IPV6=fd00::20' 'SERVICE_HOST=[fd00::10]' 'ENABLED_SERVICES=n-cpu,zeromq'
    run -0 devstack env
    [[ $output == *"ZEROMQ_SUBNODE=True"* && $output == *"ZEROMQ_REDIS_HOST=fd00::10"* ]]
    run -0 devstack "${STACK[@]}"
    ini "$NOVA_CONF" DEFAULT transport_url 'zmq+redis://[fd00::10]:6379/'
    # The controller: SERVICE_HOST is its own [HOST_IPV6]; Redis listens
    # on :: (without brackets, which Redis refuses) and is reached on ::1.
    : >"$FAKE_LOCALRC"
    localrc 'HOST_IP=192.0.2.10' 'HOST_IPV6=fd00::10' 'SERVICE_HOST=[fd00::10]' \
        'SERVICE_LISTEN_ADDRESS=[::]' 'ENABLED_SERVICES+=,-rabbit,zeromq'
    run -0 devstack env
    [[ $output == *"ZEROMQ_SUBNODE=False"* && $output == *"ZEROMQ_RUN_REDIS=True"* ]]
    [[ $output == *"ZEROMQ_REDIS_BIND=::"$'\n'* && $output == *"ZEROMQ_REDIS_HOST=::1"* ]]
}

@test "dummy matchmaker: direct mode, nothing started, zmq+dummy://" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' 'ZEROMQ_MATCHMAKER=dummy'
    run -0 devstack "${STACK[@]}"
    run -0 devstack unstack clean
    not_called '^run_process'
    not_called '^stop_process'
    not_called 'redis-server'
    ini "$NOVA_CONF" DEFAULT transport_url zmq+dummy://
    ini "$NOVA_CONF" oslo_messaging_zmq rpc_zmq_matchmaker dummy
    ini "$NOVA_CONF" oslo_messaging_zmq use_router_proxy false
    ini "$NOVA_CONF" oslo_messaging_zmq use_pub_sub false
    run ! grep -q matchmaker_redis "$NOVA_CONF"
}

@test "proxy count, ports, metrics and debug are knobs" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' 'ZEROMQ_PROXY_COUNT=2' \
        'ZEROMQ_PROXY_FRONTEND_PORT=60001' 'ZEROMQ_PROXY_BACKEND_PORT=60002' \
        'ZEROMQ_PROXY_PUBLISHER_PORT=60003' 'ZEROMQ_PROXY_PORT_STEP=100' \
        'ZEROMQ_PROXY_METRICS_PORT=9200' 'ZEROMQ_PROXY_DEBUG=yes' 'ZEROMQ_HOST=ctl.example'
    export FAKE_PUBLISHERS="ctl.example:60003,ctl.example:60001 ctl.example:60103,ctl.example:60101"
    run -0 devstack "${STACK[@]}"
    called "run_process | zmq-proxy-1 | $(proxy_cmd 1 60001 60002 60003 ' --metrics-address :9200 --debug')"
    called "run_process | zmq-proxy-2 | $(proxy_cmd 2 60101 60102 60103 ' --metrics-address :9201 --debug')"
    not_called 'zmq-proxy-3'
    ini "$CONF" oslo_messaging_zmq rpc_zmq_host ctl.example
}

@test "a Redis password goes into the URLs, the Redis configuration and the ping" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' 'ZEROMQ_REDIS_PASSWORD=s3cret' 'ZEROMQ_REDIS_PORT=6380'
    run -0 devstack "${STACK[@]}"
    ini "$NOVA_CONF" DEFAULT transport_url zmq+redis://:s3cret@127.0.0.1:6380/
    grep -Fxq 'requirepass s3cret' "$REDIS_CONF"
    grep -Fxq 'protected-mode yes' "$REDIS_CONF"
    called "redis-cli | -h 127.0.0.1 -p 6380 ping | auth=s3cret"
    [[ $(stat -c %a "$CONF") == 640 ]]
    # Another port than the distro's: its Redis is left alone.
    not_called '^stop_service'
    not_called 'disable redis-server'
}

@test "prebuilt binaries are installed without Go" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' "ZEROMQ_PREBUILT_BIN_DIR=$TESTS_DIR/fakebuild" \
        "ZEROMQ_GO=$BATS_TEST_TMPDIR/no-go"
    run -0 devstack stack/pre-install stack/install
    not_called '^go '
    not_called 'libzmq3-dev'
    called "sudo | install -m 0755 $TESTS_DIR/fakebuild/zmqrpc $TESTS_DIR/fakebuild/oslo-messaging-zmq-proxy $ZEROMQ_BIN_DIR/"
}

@test "install without Go and without prebuilt binaries says what to do" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' "ZEROMQ_GO=$BATS_TEST_TMPDIR/no-go"
    run -1 devstack stack/pre-install stack/install
    [[ $output == *"needs Go"*"ZEROMQ_PREBUILT_BIN_DIR"* ]]
}

@test "a prebuilt directory without the binaries is refused" {
    localrc 'ENABLED_SERVICES+=,-rabbit,zeromq' "ZEROMQ_PREBUILT_BIN_DIR=$BATS_TEST_TMPDIR"
    run -1 devstack stack/pre-install stack/install
    [[ $output == *"$BATS_TEST_TMPDIR/zmqrpc is missing or not executable"* ]]
}

@test "contradictory settings stop stack.sh in pre-install" {
    local -a cases=(
        'ENABLED_SERVICES+=,zeromq|rabbit and zeromq are both enabled'
        'DEVSTACK_SERIES=2026.2|has no ZeroMQ driver'
        'DEVSTACK_SERIES=stein|has no ZeroMQ driver'
        'CELLSV2_SETUP=superconductor|set CELLSV2_SETUP=singleconductor'
        'NOVA_NUM_CELLS=2|use one cell'
        'ZEROMQ_MATCHMAKER=etcd|ZEROMQ_MATCHMAKER=etcd: use redis or dummy'
        'ZEROMQ_MATCHMAKER=dummy ZEROMQ_USE_ROUTER_PROXY=True|the dummy matchmaker cannot find router proxies'
        'ZEROMQ_MATCHMAKER=dummy ZEROMQ_USE_PUB_SUB=True|the dummy matchmaker cannot find router proxies'
        'ZEROMQ_MATCHMAKER=dummy SERVICE_HOST=192.0.2.99|a subnode needs ZEROMQ_MATCHMAKER=redis'
        'ZEROMQ_PROXY_COUNT=many|ZEROMQ_PROXY_COUNT=many: want a number of proxies >= 1'
        'ZEROMQ_PROXY_COUNT=0|ZEROMQ_PROXY_COUNT=0: want a number of proxies >= 1'
        'ZEROMQ_PROXY_FRONTEND_PORT=65530|the frontend port of proxy 3 would be 65550'
        'ZEROMQ_PROXY_BACKEND_PORT=x|ZEROMQ_PROXY_BACKEND_PORT=x: not a number'
        'ZEROMQ_REDIS_PORT=0|ZEROMQ_REDIS_PORT=0: not a port'
        'ZEROMQ_REDIS_PASSWORD=a@b|use letters and digits only'
        'ZEROMQ_TARGET_UPDATE=0|want seconds, the update > 0'
    )
    local c settings want
    for c in "${cases[@]}"; do
        settings=${c%%|*}
        want=${c#*|}
        : >"$FAKE_LOCALRC"
        if [[ $settings != ENABLED_SERVICES* ]]; then
            localrc 'ENABLED_SERVICES+=,-rabbit,zeromq'
        fi
        # shellcheck disable=SC2086
        localrc $settings
        run devstack stack/pre-install
        if [[ $status -ne 1 || $output != *"$want"* ]]; then
            echo "with $settings: status $status, output:"
            echo "$output"
            return 1
        fi
    done
}

@test "ZEROMQ_RPC_BACKEND=False: the fabric runs, the services keep RabbitMQ" {
    localrc 'ENABLED_SERVICES+=,zeromq' 'ZEROMQ_RPC_BACKEND=False' 'DEVSTACK_SERIES=2026.2' \
        'CELLSV2_SETUP=superconductor'
    run -0 devstack "${STACK[@]}"
    ini "$NOVA_CONF" DEFAULT transport_url rabbit://stackrabbit:secret@192.0.2.10:5672/
    run ! grep -q oslo_messaging_zmq "$NOVA_CONF"
    ini "$CONF" DEFAULT transport_url zmq+redis://127.0.0.1:6379/
    called "run_process | zmq-redis | /usr/bin/redis-server $REDIS_CONF"
    called "run_process | zmq-proxy-3 | $(proxy_cmd 3 50021 50022 50023)"
}

@test "without the zeromq service the plugin does nothing and leaves DevStack's hooks" {
    run -0 devstack "${STACK[@]}" unstack clean
    ini "$NOVA_CONF" DEFAULT transport_url rabbit://stackrabbit:secret@192.0.2.10:5672/
    called "rabbit_iniset_rpc_backend | nova | $NOVA_CONF | DEFAULT"
    not_called '^(run_process|stop_process|install_package|echo_summary|enable_service|sudo|die)'
    [[ ! -e $CONF ]]
}
