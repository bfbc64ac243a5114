#!/bin/bash
#
# stack.bash NODE_DIR stack|unstack: plays stack.sh (or unstack.sh) of a
# real DevStack tree in NODE_DIR/devstack (a writable copy; its local.conf
# is the node's) with DevStack's own code, in stack.sh's order:
#
#   functions, inc/meta-config, lib/stack, GetDistro,
#   extract_localrc_section, stackrc, disable_negated_services,
#   lib/database, lib/rpc_backend (and lib/host where it exists),
#   fetch_plugins (git clone of the enable_plugin URL and branch),
#   run_phase override_defaults, every other lib/* stack.sh sources,
#   run_phase source, the plugins' packages (get_plugin_packages),
#   run_phase stack pre-install, run_phase stack install, create_nova_conf,
#   run_phase stack post-config, start_nova_compute, run_phase stack extra
#
# What is stubbed, because it needs the network or root outside NODE_DIR:
#   - install_package, uninstall_package: record the packages in
#     NODE_DIR/stub/packages.log instead of running apt-get;
#   - sudo (stubs/sudo): runs commands whose paths lie inside NODE_DIR's
#     scratch root, skips and logs the others (stub/sudo-skipped.log);
#   - systemctl (stubs/systemctl): runs the unit files run_process writes
#     (SYSTEMD_DIR, re-rooted as below) as background processes;
#   - every DevStack variable naming a path under /etc (NOVA_CONF_DIR...)
#     is re-rooted under NODE_DIR after the lib/* files are sourced;
#   - the processes of nova itself are not run (their binaries are not
#     installed): run_process of n-cpu starts a command that exits.
# Redis and the router proxies really run, under run_process.
#
# REAL_SCRATCH (default NODE_DIR) is the scratch root sudo may write in.
# HOME is NODE_DIR/home; the test's local.conf (node.bash) puts DEST, the
# logs and the plugin's directories inside NODE_DIR.

node_dir=$(cd "$1" && pwd)
mode=$2
stubs=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

export STUB_SCRATCH=${REAL_SCRATCH:-$node_dir} STUB_STATE_DIR=$node_dir/stub HOME=$node_dir/home
mkdir -p "$STUB_STATE_DIR" "$HOME"
export PATH=$stubs:$PATH

TOP_DIR=$node_dir/devstack
cd "$TOP_DIR" || exit 1

# What stack.sh does before it sets errexit, with errexit from the start:
# a failure anywhere is the test's failure.
set -o errexit

# shellcheck disable=SC1091
source "$TOP_DIR/functions"
# shellcheck disable=SC1091
source "$TOP_DIR/inc/meta-config"
if [[ $mode == stack ]]; then
    # shellcheck disable=SC1091
    source "$TOP_DIR/lib/stack"
fi

# Stubs: package installs.
function install_package {
    echo "install_package $*" >>"$STUB_STATE_DIR/packages.log"
}
function uninstall_package {
    echo "uninstall_package $*" >>"$STUB_STATE_DIR/packages.log"
}

GetDistro
rm -f "$TOP_DIR/.localrc.auto"
extract_localrc_section "$TOP_DIR/local.conf" "$TOP_DIR/localrc" "$TOP_DIR/.localrc.auto"
# shellcheck disable=SC1091
source "$TOP_DIR/stackrc"
disable_negated_services
# The test's guard: nothing may be written outside NODE_DIR.
if [[ $DEST != "$node_dir"/* ]]; then
    die $LINENO "DEST=$DEST is outside $node_dir: set it before enable_plugin in local.conf"
fi
for plugin in ${DEVSTACK_PLUGINS//,/ }; do
    if [[ ${GITDIR[$plugin]} != "$node_dir"/* ]]; then
        die $LINENO "plugin $plugin would be cloned to ${GITDIR[$plugin]}, outside $node_dir"
    fi
done

# shellcheck disable=SC1091
source "$TOP_DIR/lib/database"
# shellcheck disable=SC1091
source "$TOP_DIR/lib/rpc_backend"
if [[ -f $TOP_DIR/lib/host ]]; then
    # shellcheck disable=SC1091
    source "$TOP_DIR/lib/host"
fi

if [[ $mode == stack ]]; then
    fetch_plugins
fi
run_phase override_defaults

# The other lib/* files, in the order of this tree's stack.sh.
# shellcheck disable=SC2016  # $TOP_DIR is stack.sh's text
mapfile -t libs < <(sed -n 's|^source \$TOP_DIR/\(lib/[a-z0-9_-]*\)$|\1|p' "$TOP_DIR/stack.sh")
for lib in "${libs[@]}"; do
    case $lib in
        lib/stack | lib/database | lib/rpc_backend | lib/host) ;;
        *)
            # shellcheck disable=SC1090
            source "$TOP_DIR/$lib"
            ;;
    esac
done

# Re-root /etc paths into the scratch tree.
for var in $(compgen -v); do
    if [[ $var == [A-Z]* && ${!var} == /etc/* ]] && ! declare -p "$var" 2>/dev/null | grep -q '^declare -[aA]'; then
        printf -v "$var" '%s' "$node_dir${!var}"
        if [[ $var == *_DIR ]]; then
            mkdir -p "${!var}"
        fi
    fi
done

# The systemctl stub runs the units run_process writes there.
export STUB_SYSTEMD_DIR=$SYSTEMD_DIR

run_phase source

case $mode in
    stack)
        mkdir -p "$DEST" "$DATA_DIR"
        # tools/install_prereqs.sh: the plugins' package lists.
        # shellcheck disable=SC2046
        install_package $(get_plugin_packages)

        run_phase stack pre-install
        run_phase stack install
        if is_service_enabled nova; then
            sudo install -d -o "$STACK_USER" "$NOVA_CONF_DIR"
            create_nova_conf
        fi
        run_phase stack post-config
        if is_service_enabled n-cpu; then
            start_nova_compute
        fi
        run_phase stack extra
        ;;
    unstack)
        run_phase unstack
        ;;
    *)
        die $LINENO "unknown mode $mode"
        ;;
esac
