#!/usr/bin/env bats
#
# The plugin under the real DevStack: the two unmodified trees of
# ../shared/devstack (rocky-eol: the last release whose oslo.messaging has
# the ZeroMQ driver; master: today's), copied into a scratch directory and
# run by real/stack.bash through DevStack's own code in stack.sh's order:
# functions, stackrc, enable_plugin/fetch_plugins (a git clone of branch
# main), lib/*, run_process, iniset, iniset_rpc_backend, create_nova_conf,
# start_nova_compute. The nodes are the samples local.conf.controller and
# local.conf.subnode on loopback addresses (127.0.0.1 and 127.0.0.2) with
# free ports.
#
# Stubbed (real/stack.bash says how): package installs, sudo outside the
# scratch directory, systemctl (a stand-in that really runs the units
# run_process writes), the /etc paths (re-rooted into the scratch
# directory), the plugin's URL (git's insteadOf points it at a snapshot of
# this checkout, branch main) and nova's own processes (not installed).
# Redis and the router proxies really run under run_process, and zmqrpc
# makes real calls with the configuration files DevStack wrote.
# shellcheck disable=SC2030,SC2031,SC2154  # each test changes its own environment; run sets stderr

bats_require_minimum_version 1.5.0

# find_trees prints the directory holding the two DevStack trees:
# FABRIC_DEVSTACK_TREES, else shared/devstack beside the checkout (or
# beside the directory of worktrees that holds it).
find_trees() {
    local repo=$1 d
    for d in ${FABRIC_DEVSTACK_TREES:-} "$repo/../shared/devstack" "$repo/../../shared/devstack"; do
        if [[ -f $d/rocky-eol/stack.sh && -f $d/master/stack.sh ]]; then
            (cd "$d" && pwd)
            return 0
        fi
    done
    return 1
}

setup_file() {
    local tests_dir repo
    tests_dir=$(cd "$BATS_TEST_DIRNAME" && pwd)
    repo=$(cd "$tests_dir/../.." && pwd)
    TREES=$(find_trees "$repo") || {
        echo "the DevStack trees rocky-eol and master are missing: set FABRIC_DEVSTACK_TREES to the directory holding them (shared/devstack)" >&3
        return 1
    }
    export TREES
    for cmd in git redis-server redis-cli uuidgen ss; do
        command -v "$cmd" >/dev/null || {
            echo "$cmd is missing: ci/test-deploy.sh installs it" >&3
            return 1
        }
    done
    local scratch=$BATS_FILE_TMPDIR
    # The binaries, built once: every node takes them as
    # ZEROMQ_PREBUILT_BIN_DIR.
    (cd "$repo" && PATH=$PATH:/usr/local/go/bin go build -o "$scratch/bin/" ./cmd/zmqrpc ./cmd/oslo-messaging-zmq-proxy)
    # A snapshot of this checkout (with its uncommitted changes) on branch
    # main, where enable_plugin's URL leads.
    mkdir -p "$scratch/src"
    (cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$scratch/src"
    cat >"$scratch/gitconfig" <<EOF
[url "file://$scratch/src"]
	insteadOf = https://github.com/oslozmq/fabric
[user]
	name = real-devstack.bats
	email = real-devstack@localhost
[init]
	defaultBranch = main
[advice]
	detachedHead = false
EOF
    export GIT_CONFIG_GLOBAL=$scratch/gitconfig GIT_CONFIG_NOSYSTEM=1
    (cd "$scratch/src" && git init -q -b main && git add -A && git commit -q -m snapshot)
}

setup() {
    TESTS_DIR=$(cd "$BATS_TEST_DIRNAME" && pwd)
    PLUGIN_DIR=$(dirname "$TESTS_DIR")
    export GIT_CONFIG_GLOBAL=$BATS_FILE_TMPDIR/gitconfig GIT_CONFIG_NOSYSTEM=1
    export REAL_SCRATCH=$BATS_RUN_TMPDIR REAL_PREBUILT_BIN_DIR=$BATS_FILE_TMPDIR/bin
    BIN=$BATS_FILE_TMPDIR/bin
    CTL=$BATS_TEST_TMPDIR/controller
    SUB=$BATS_TEST_TMPDIR/subnode
    SERVE_PID=""
    free_ports
}

teardown() {
    if [[ -n $SERVE_PID ]]; then
        kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    local node f
    for node in "$SUB" "$CTL"; do
        [[ -d $node/stub ]] || continue
        bash "$TESTS_DIR/real/stack.bash" "$node" unstack >"$node/unstack.log" 2>&1 || true
        # What unstack left behind (a failed stack.sh...).
        for f in "$node"/stub/run/*.pid; do
            if [[ -f $f ]]; then
                kill "$(cat "$f")" 2>/dev/null || true
            fi
        done
    done
}

# free_ports sets PORT_BASE: PORT_BASE .. PORT_BASE+40 are free on this
# machine (Redis on the base, the proxies from base+1, metrics from
# base+31).
free_ports() {
    local try used base p ok
    used=$(ss -Hltn | awk '{ n = split($4, a, ":"); print a[n] }')
    for ((try = 0; try < 50; try++)); do
        base=$((20000 + (RANDOM % 2000) * 20))
        ok=1
        for ((p = base; p <= base + 40; p++)); do
            if grep -qx "$p" <<<"$used"; then
                ok=0
                break
            fi
        done
        if ((ok)); then
            PORT_BASE=$base
            return 0
        fi
    done
    echo "no 41 free ports in a row found" >&2
    return 1
}

# port_lines: the test's port settings, for every node.
port_lines() {
    printf '%s\n' \
        "ZEROMQ_REDIS_PORT=$PORT_BASE" \
        "ZEROMQ_PROXY_FRONTEND_PORT=$((PORT_BASE + 1))" \
        "ZEROMQ_PROXY_BACKEND_PORT=$((PORT_BASE + 2))" \
        "ZEROMQ_PROXY_PUBLISHER_PORT=$((PORT_BASE + 3))" \
        "ZEROMQ_PROXY_PORT_STEP=10" \
        "ZEROMQ_PROXY_METRICS_PORT=$((PORT_BASE + 31))" \
        "ZEROMQ_WAIT_TIMEOUT=20"
}

# node NODE_DIR TREE SAMPLE [LINE...]: prepares a node (real/node.bash).
node() {
    local dir=$1 tree=$2 sample=$3
    shift 3
    local -a lines
    mapfile -t lines < <(port_lines)
    bash "$TESTS_DIR/real/node.bash" "$dir" "$TREES/$tree" "$PLUGIN_DIR/$sample" "${lines[@]}" "$@"
}

# stack NODE_DIR: stack.sh on that node; its output in NODE_DIR/stack.log.
stack() {
    bash "$TESTS_DIR/real/stack.bash" "$1" stack >"$1/stack.log" 2>&1 || {
        echo "stack.sh failed on $1:"
        tail -n 40 "$1/stack.log"
        local j
        for j in "$1"/stub/journal/*; do
            [[ -f $j ]] || continue
            echo "--- journal of $(basename "$j" .log):"
            tail -n 10 "$j"
        done
        return 1
    }
}

# ini FILE SECTION OPTION: the value DevStack wrote (DevStack's iniget).
ini() {
    awk -v s="[$2]" -v o="$3" '
        /^\[/ { in_s = ($0 == s); next }
        in_s && $0 ~ "^" o "[ \t]*=" { sub("^[^=]*=[ \t]*", ""); print; exit }
    ' "$1"
}

# has_section FILE SECTION
has_section() {
    grep -qx "\[$2\]" "$1"
}

# running NODE_DIR UNIT: the stub systemd runs it.
running() {
    local pid
    pid=$(cat "$1/stub/run/devstack@$2.service.pid") && kill -0 "$pid"
}

# serve CONF [ARGS...]: starts zmqrpc serve in the background and waits
# for its ready line (at most 20 s).
serve() {
    local conf=$1
    shift
    "$BIN/zmqrpc" serve --config-file "$conf" "$@" >"$BATS_TEST_TMPDIR/serve.out" 2>"$BATS_TEST_TMPDIR/serve.err" &
    SERVE_PID=$!
    local i
    for ((i = 0; i < 200; i++)); do
        grep -q '^ready ' "$BATS_TEST_TMPDIR/serve.out" && return 0
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "zmqrpc serve did not get ready:"
    cat "$BATS_TEST_TMPDIR/serve.err"
    return 1
}

# check_fabric NODE_DIR: Redis and the three proxies run under the stub
# systemd, each proxy registered in Redis.
check_fabric() {
    local node=$1 n
    running "$node" zmq-redis
    for n in 1 2 3; do
        running "$node" "zmq-proxy-$n"
    done
    run "$BIN/zmqrpc" hosts --config-file "$node/etc/oslo/zeromq.conf" --timeout 5s
    [[ $status -eq 0 ]]
    for n in 0 10 20; do
        [[ $output == *"127.0.0.1:$((PORT_BASE + 3 + n)),127.0.0.1:$((PORT_BASE + 1 + n))"* ]] || {
            echo "proxy on $((PORT_BASE + 1 + n)) is not registered: $output"
            return 1
        }
    done
}

@test "rocky-eol: the samples stack; nova.conf serves what nova-cpu.conf calls" {
    node "$CTL" rocky-eol local.conf.controller
    node "$SUB" rocky-eol local.conf.subnode
    stack "$CTL"
    stack "$SUB"

    # DevStack read the plugin's package list; Redis only on the controller.
    grep -qx "install_package libzmq5 redis-tools" "$CTL/stub/packages.log"
    grep -qx "install_package redis-server" "$CTL/stub/packages.log"
    run ! grep -q "redis-server" "$SUB/stub/packages.log"

    check_fabric "$CTL"
    # The subnode runs neither.
    run ! compgen -G "$SUB/stub/run/devstack@zmq-*"

    # Rocky's layout: [oslo_messaging_zmq] and transport_url, nothing
    # deprecated; the bind address is the literal *.
    local conf
    for conf in "$CTL/etc/nova/nova.conf" "$CTL/etc/nova/nova_cell1.conf" "$SUB/etc/nova/nova-cpu.conf"; do
        [[ $(ini "$conf" DEFAULT transport_url) == "zmq+redis://127.0.0.1:$PORT_BASE/" ]]
        [[ $(ini "$conf" oslo_messaging_zmq rpc_zmq_bind_address) == "*" ]]
        [[ $(ini "$conf" oslo_messaging_zmq use_router_proxy) == true ]]
        [[ $(ini "$conf" oslo_messaging_zmq use_pub_sub) == true ]]
        [[ -z $(ini "$conf" DEFAULT rpc_backend) ]]
        [[ -z $(ini "$conf" DEFAULT rpc_zmq_host) ]]
        run ! has_section "$conf" matchmaker_redis
    done
    [[ $(ini "$CTL/etc/nova/nova.conf" oslo_messaging_zmq rpc_zmq_host) == 127.0.0.1 ]]
    [[ $(ini "$SUB/etc/nova/nova-cpu.conf" oslo_messaging_zmq rpc_zmq_host) == 127.0.0.2 ]]
    [[ $(ini "$CTL/etc/nova/nova.conf" oslo_messaging_notifications transport_url) == "zmq+redis://127.0.0.1:$PORT_BASE/" ]]

    # A conductor on the controller's nova.conf answers the compute's
    # nova-cpu.conf, through the proxies.
    serve "$CTL/etc/nova/nova.conf" --topic conductor
    run --separate-stderr "$BIN/zmqrpc" call --config-file "$SUB/etc/nova/nova-cpu.conf" --topic conductor --timeout 20s echo arg=from-compute
    [[ $status -eq 0 ]]
    [[ $output == '"from-compute"' ]] || { echo "call: $output $stderr"; false; }

    # unstack stops the proxies and Redis.
    bash "$TESTS_DIR/real/stack.bash" "$CTL" unstack >"$CTL/unstack.log" 2>&1
    run ! running "$CTL" zmq-redis
    run ! running "$CTL" zmq-proxy-1
}

@test "rocky-eol: IPv6 (SERVICE_IP_VERSION=6): the controller is no subnode, Redis listens on ::" {
    node "$CTL" rocky-eol local.conf.controller SERVICE_IP_VERSION=6 HOST_IPV6=::1 'SERVICE_HOST=[::1]'
    node "$SUB" rocky-eol local.conf.subnode SERVICE_IP_VERSION=6 HOST_IPV6=fd00::2 'SERVICE_HOST=[::1]' 'ZEROMQ_REDIS_HOST=[::1]'
    stack "$CTL"
    stack "$SUB"
    grep -qx "bind ::" "$CTL/etc/oslo/zmq-redis.conf"
    check_fabric "$CTL"
    [[ $(ini "$SUB/etc/nova/nova-cpu.conf" DEFAULT transport_url) == "zmq+redis://[::1]:$PORT_BASE/" ]]
    serve "$CTL/etc/nova/nova.conf" --topic conductor
    run --separate-stderr "$BIN/zmqrpc" call --config-file "$SUB/etc/nova/nova-cpu.conf" --topic conductor --timeout 20s echo arg=v6
    [[ $status -eq 0 ]]
    [[ $output == '"v6"' ]] || { echo "call: $output $stderr"; false; }
}

@test "rocky-eol: a super-conductor is refused in pre-install (cells would mix)" {
    node "$CTL" rocky-eol local.conf.controller CELLSV2_SETUP=superconductor
    run bash "$TESTS_DIR/real/stack.bash" "$CTL" stack
    [[ $status -ne 0 ]]
    [[ $output == *"CELLSV2_SETUP=superconductor"*"set CELLSV2_SETUP=singleconductor"* ]]
    [[ $output != *"Installing the ZeroMQ driver"* ]]
}

@test "master: the samples stop in pre-install: no ZeroMQ driver in its oslo.messaging" {
    node "$CTL" master local.conf.controller
    run bash "$TESTS_DIR/real/stack.bash" "$CTL" stack
    [[ $status -ne 0 ]]
    [[ $output == *"oslo.messaging (>= 9.0, Stein) has no ZeroMQ driver"* ]]
    [[ $output == *"ZEROMQ_RPC_BACKEND=False"* ]]
    [[ $output != *"Installing the ZeroMQ driver"* ]]
    [[ ! -e $CTL/etc/nova/nova.conf ]]
}

@test "master: ZEROMQ_RPC_BACKEND=False runs the fabric beside RabbitMQ" {
    # What docs/deploy.md says for this mode: rabbit stays enabled, and
    # ZEROMQ_RPC_BACKEND=False on every node.
    REAL_SAMPLE_SED='s/^ENABLED_SERVICES+=,-rabbit,zeromq$/ENABLED_SERVICES+=,zeromq/' \
        node "$CTL" master local.conf.controller ZEROMQ_RPC_BACKEND=False
    node "$SUB" master local.conf.subnode ZEROMQ_RPC_BACKEND=False
    stack "$CTL"
    stack "$SUB"
    check_fabric "$CTL"
    # The services keep RabbitMQ.
    run ini "$CTL/etc/nova/nova.conf" DEFAULT transport_url
    [[ $output == rabbit://* ]] || { echo "nova.conf: transport_url = $output"; false; }
    run ! has_section "$CTL/etc/nova/nova.conf" oslo_messaging_zmq
    # master's iniset globs: the literal * must survive it.
    [[ $(ini "$CTL/etc/oslo/zeromq.conf" oslo_messaging_zmq rpc_zmq_bind_address) == "*" ]]
    serve "$CTL/etc/oslo/zeromq.conf" --topic fabric
    run --separate-stderr "$BIN/zmqrpc" call --config-file "$SUB/etc/oslo/zeromq.conf" --topic fabric --timeout 20s echo arg=beside
    [[ $status -eq 0 ]]
    [[ $output == '"beside"' ]] || { echo "call: $output $stderr"; false; }
}
