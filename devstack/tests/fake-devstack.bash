#!/bin/bash
#
# A small fake of the DevStack helpers the plugin uses. Every call is
# recorded in $FAKE_LOG, one line per call: the name and the arguments
# joined by " | ". iniset and iniget really edit and read ini files, so the
# tests can assert what was written. Nothing here needs root or a network.
#
# Sourced by tests/run-devstack.bash under `set -euo pipefail`.

: "${FAKE_LOG:?FAKE_LOG must name the call log}"

# fake_record NAME ARGS... appends one line to the call log.
function fake_record {
    local line=$1
    shift
    local arg
    for arg in "$@"; do
        line+=" | $arg"
    done
    printf '%s\n' "$line" >>"$FAKE_LOG"
}

# Services (functions-common)

function is_service_enabled {
    local service
    for service in "$@"; do
        if [[ ,${ENABLED_SERVICES:-}, == *,"$service",* ]]; then
            return 0
        fi
    done
    return 1
}

function enable_service {
    fake_record enable_service "$@"
    local service
    for service in "$@"; do
        if ! is_service_enabled "$service"; then
            ENABLED_SERVICES+=",$service"
        fi
    done
    ENABLED_SERVICES=${ENABLED_SERVICES#,}
}

function disable_service {
    fake_record disable_service "$@"
    local service kept="" s
    local -a services
    IFS=, read -r -a services <<<"${ENABLED_SERVICES:-}"
    for s in "${services[@]}"; do
        for service in "$@"; do
            [[ $s == "$service" ]] && continue 2
        done
        kept+=",$s"
    done
    ENABLED_SERVICES=${kept#,}
}

# disable_negated_services turns "-rabbit" into rabbit being disabled, as
# stack.sh does before it loads the plugins' settings.
function disable_negated_services {
    local s kept="" negated=""
    local -a services
    IFS=, read -r -a services <<<"${ENABLED_SERVICES:-}"
    for s in "${services[@]}"; do
        if [[ $s == -* ]]; then
            negated+=",${s#-},"
        fi
    done
    for s in "${services[@]}"; do
        [[ -z $s || $s == -* || $negated == *",$s,"* ]] && continue
        kept+=",$s"
    done
    ENABLED_SERVICES=${kept#,}
}

function trueorfalse {
    local default=$1
    local testval=${!2:-}
    case "$testval" in
        1 | [yY]es | YES | [tT]rue | TRUE) echo True ;;
        0 | [nN]o | NO | [fF]alse | FALSE) echo False ;;
        *) echo "$default" ;;
    esac
}

function die {
    local line=$1
    shift
    fake_record die "$*"
    echo "[ERROR] line $line: $*" >&2
    exit 1
}

function echo_summary {
    fake_record echo_summary "$*"
    echo "$*"
}

function define_plugin {
    fake_record define_plugin "$@"
}
function enable_plugin {
    fake_record enable_plugin "$@"
}

function is_ubuntu {
    return 0
}

function is_fedora {
    return 1
}

# Processes and packages: recorded only.

function run_process {
    fake_record run_process "$@"
}

function stop_process {
    fake_record stop_process "$@"
}

function install_package {
    fake_record install_package "$@"
}

function uninstall_package {
    fake_record uninstall_package "$@"
}

function apt_get {
    fake_record apt_get "$@"
}

function start_service {
    fake_record start_service "$@"
}

function stop_service {
    fake_record stop_service "$@"
}

function restart_service {
    fake_record restart_service "$@"
}

# DevStack's own RPC hooks (lib/rpc_backend, RabbitMQ): the plugin must
# replace them when zeromq is enabled, and leave them alone otherwise.

function iniset_rpc_backend {
    fake_record rabbit_iniset_rpc_backend "$@"
    iniset "$2" "${3:-DEFAULT}" transport_url "$(get_transport_url "${4:-}")"
}

function get_transport_url {
    echo "rabbit://stackrabbit:secret@${SERVICE_HOST:-127.0.0.1}:5672/${1:-}"
}

function get_notification_url {
    get_transport_url "$@"
}

function rpc_backend_add_vhost {
    fake_record rabbit_rpc_backend_add_vhost "$@"
    if ! is_service_enabled rabbit; then
        echo 'RPC backend does not support vhosts'
        return 1
    fi
}

# Ini files (inifile): iniset [-sudo] FILE SECTION OPTION VALUE sets the
# option, adding the section at the end when missing; iniget prints it,
# and fails when it is not set.

function iniset {
    local sudo=()
    if [[ $1 == -sudo ]]; then
        sudo=(-sudo)
        shift
    fi
    local file=$1 section=$2 option=$3 value=${4:-}
    fake_record iniset "${sudo[@]}" "$file" "$section" "$option" "$value"
    if [[ ! -e $file ]]; then
        : >"$file"
    fi
    local out
    out=$(S=$section O=$option V=$value awk '
        BEGIN { s = ENVIRON["S"]; o = ENVIRON["O"]; v = ENVIRON["V"]; done = 0 }
        /^\[[^]]*\][ \t]*$/ {
            if (sec == s && !done) { print o " = " v; done = 1 }
            sec = $0; sub(/^\[/, "", sec); sub(/\][ \t]*$/, "", sec)
            print; next
        }
        {
            if (sec == s && !done) {
                line = $0; sub(/[ \t]*=.*/, "", line)
                if (line == o && $0 ~ /=/) { print o " = " v; done = 1; next }
            }
            print
        }
        END {
            if (!done) {
                if (sec == s) { print o " = " v }
                else { if (NR > 0) print ""; print "[" s "]"; print o " = " v }
            }
        }
    ' "$file")
    printf '%s\n' "$out" >"$file"
}

function inidelete {
    local file=$1 section=$2 option=$3
    fake_record inidelete "$@"
    local out
    out=$(S=$section O=$option awk '
        BEGIN { s = ENVIRON["S"]; o = ENVIRON["O"] }
        /^\[[^]]*\][ \t]*$/ { sec = $0; sub(/^\[/, "", sec); sub(/\][ \t]*$/, "", sec); print; next }
        sec == s { line = $0; sub(/[ \t]*=.*/, "", line); if (line == o && $0 ~ /=/) next }
        { print }
    ' "$file")
    printf '%s\n' "$out" >"$file"
}
function iniget {
    local file=$1 section=$2 option=$3
    S=$section O=$option awk '
        BEGIN { s = ENVIRON["S"]; o = ENVIRON["O"] }
        /^\[[^]]*\][ \t]*$/ { sec = $0; sub(/^\[/, "", sec); sub(/\][ \t]*$/, "", sec); next }
        sec == s {
            line = $0; sub(/[ \t]*=.*/, "", line)
            if (line == o && $0 ~ /=/) { sub(/^[^=]*=[ \t]*/, ""); print; found = 1; exit }
        }
        END { exit !found }
    ' "$file"
}
