#!/bin/sh
# The lab image's entrypoint. When FABRIC_CONFIG names a file, zmqrpc and
# the proxy get it as their first --config-file, so that
# `docker compose run --rm client zmqrpc call ...` needs none; a file given
# on the command line is read after it and wins, option by option.
set -eu
if [ -n "${FABRIC_CONFIG:-}" ] && [ $# -gt 0 ]; then
  case $1 in
    zmqrpc)
      case ${2:-} in
        serve | call | cast | notify | listen | hosts)
          cmd=$2
          shift 2
          set -- zmqrpc "$cmd" --config-file "$FABRIC_CONFIG" "$@"
          ;;
      esac
      ;;
    oslo-messaging-zmq-proxy)
      shift
      set -- oslo-messaging-zmq-proxy --config-file "$FABRIC_CONFIG" "$@"
      ;;
  esac
fi
exec "$@"
