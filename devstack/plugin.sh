#!/bin/bash
#
# devstack/plugin.sh: DevStack's entry point for the ZeroMQ plugin. It only
# dispatches; the work is in lib/zeromq. Enable it in local.conf with
#
#     enable_plugin zmq https://github.com/oslozmq/fabric main
#     ENABLED_SERVICES+=,-rabbit,zeromq
#     CELLSV2_SETUP=singleconductor
#
# on the controller and on every subnode (see local.conf.controller and
# local.conf.subnode).

# Save trace setting
_XTRACE_ZEROMQ_PLUGIN=$(set +o | grep xtrace)
set +o xtrace

# DevStack has sourced settings already; clean.sh and older DevStacks may
# not have.
if [[ -z ${ZEROMQ_PLUGIN_DIR:-} ]]; then
    # shellcheck source=devstack/settings
    source "$(dirname "${BASH_SOURCE[0]}")/settings"
fi

if is_service_enabled zeromq; then
    # Every service on this node, subnodes included, gets the ZeroMQ
    # transport from these hooks, unless the services keep RabbitMQ.
    if [[ $ZEROMQ_RPC_BACKEND == True ]]; then
        zeromq_override_rpc_backend
    fi

    case "${1:-}/${2:-}" in
        stack/pre-install)
            echo_summary "Checking the ZeroMQ settings"
            zeromq_check
            ;;
        stack/install)
            echo_summary "Installing the ZeroMQ driver's packages and binaries"
            zeromq_install
            ;;
        stack/post-config)
            # Before the OpenStack services start.
            echo_summary "Starting the ZeroMQ matchmaker and router proxies"
            zeromq_configure
            zeromq_start
            ;;
        stack/extra)
            zeromq_report
            ;;
        unstack/*)
            zeromq_stop
            ;;
        clean/*)
            zeromq_stop
            zeromq_cleanup
            ;;
    esac
fi

# Restore xtrace
$_XTRACE_ZEROMQ_PLUGIN
unset _XTRACE_ZEROMQ_PLUGIN

# Tell emacs to use shell-script-mode
## Local variables:
## mode: shell-script
## End:
