#!/bin/bash
#
# run-devstack.bash STEP... plays DevStack's part around the plugin, in
# one shell as stack.sh does, under `set -euo pipefail`:
#
#   1. stackrc: default ENABLED_SERVICES, then $FAKE_LOCALRC (the test's
#      local.conf [[local|localrc]] section), then HOST_IP and SERVICE_HOST
#   2. disable_negated_services, then devstack/settings
#   3. each STEP: "stack/pre-install", "stack/install", "stack/post-config",
#      "stack/extra", "unstack", "clean" source devstack/plugin.sh with that
#      mode and phase; "configure" does what the services' configure
#      functions do with the RPC hooks (nova with a cell vhost, keystone's
#      notifications); "env" prints the plugin's variables.
#
# The call log is $FAKE_LOG (see fake-devstack.bash).
set -euo pipefail

tests_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
plugin_dir=$(dirname "$tests_dir")

# shellcheck source=devstack/tests/fake-devstack.bash
source "$tests_dir/fake-devstack.bash"

# stackrc
DEST=${DEST:-/opt/stack}
DATA_DIR=${DATA_DIR:-$DEST/data}
STACK_USER=${STACK_USER:-$(id -un)}
SERVICE_TIMEOUT=${SERVICE_TIMEOUT:-60}
DEVSTACK_SERIES=${DEVSTACK_SERIES:-rocky}
CELLSV2_SETUP=${CELLSV2_SETUP:-singleconductor}
ENABLED_SERVICES=${ENABLED_SERVICES:-rabbit,mysql,key,n-api,n-cond,n-sch,n-cpu,placement-api}
if [[ -n ${FAKE_LOCALRC:-} ]]; then
    # shellcheck disable=SC1090
    source "$FAKE_LOCALRC"
fi
HOST_IP=${HOST_IP:-192.0.2.10}
SERVICE_HOST=${SERVICE_HOST:-$HOST_IP}
export DEST DATA_DIR STACK_USER SERVICE_TIMEOUT HOST_IP SERVICE_HOST DEVSTACK_SERIES CELLSV2_SETUP

disable_negated_services
# shellcheck source=devstack/settings
source "$plugin_dir/settings"

# What the services' configure functions do.
function fake_configure_services {
    local conf_dir=$FAKE_ROOT/etc
    mkdir -p "$conf_dir/nova" "$conf_dir/keystone"
    iniset_rpc_backend nova "$conf_dir/nova/nova.conf" DEFAULT
    iniset_rpc_backend nova "$conf_dir/nova/nova_cell1.conf" DEFAULT nova_cell1
    # shellcheck disable=SC2119  # called without a virtual host, as nova does
    iniset "$conf_dir/nova/nova.conf" oslo_messaging_notifications transport_url "$(get_notification_url)"
    iniset_rpc_backend keystone "$conf_dir/keystone/keystone.conf" oslo_messaging_notifications
    rpc_backend_add_vhost nova_cell1
    fake_record fake_transport_url "$(get_transport_url nova_cell1)"
}

for step in "$@"; do
    case $step in
        configure)
            fake_configure_services
            ;;
        env)
            for var in $(compgen -v ZEROMQ_); do
                printf '%s=%s\n' "$var" "${!var}"
            done
            echo "ENABLED_SERVICES=$ENABLED_SERVICES"
            ;;
        */*)
            # shellcheck source=devstack/plugin.sh
            source "$plugin_dir/plugin.sh" "${step%%/*}" "${step#*/}"
            ;;
        *)
            # shellcheck source=devstack/plugin.sh
            source "$plugin_dir/plugin.sh" "$step"
            ;;
    esac
done
