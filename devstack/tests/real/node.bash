#!/bin/bash
#
# node.bash NODE_DIR TREE SAMPLE [LINE...]: prepares a DevStack node for
# stack.bash in the scratch directory NODE_DIR: a writable copy of the
# DevStack tree TREE and, as its local.conf, the plugin's sample SAMPLE
# with
#   - before the sample's lines: DEST, LOGDIR, STACK_USER (this user) and
#     the plugin's directories inside NODE_DIR, so
#     nothing is written outside it; ZEROMQ_PREBUILT_BIN_DIR when
#     REAL_PREBUILT_BIN_DIR is set;
#   - the sample's addresses 192.168.42.11 and .12 replaced by
#     REAL_CONTROLLER_IP and REAL_SUBNODE_IP (loopback addresses);
#   - the sed expression REAL_SAMPLE_SED, when set, applied to the sample;
#   - after them: disable_service tempest (it clones from the network),
#     then each LINE (the test's own settings: free ports...).
set -euo pipefail

node_dir=$1 tree=$2 sample=$3
shift 3
mkdir -p "$node_dir"
node_dir=$(cd "$node_dir" && pwd)
rm -rf "$node_dir/devstack"
cp -r "$tree" "$node_dir/devstack"
chmod -R u+w "$node_dir/devstack"

{
    echo "[[local|localrc]]"
    echo "# The test's scratch layout (devstack/tests/real/node.bash)."
    echo "DEST=$node_dir/opt/stack"
    echo "DATA_DIR=$node_dir/opt/stack/data"
    echo "LOGDIR=$node_dir/logs"
    echo "STACK_USER=$(id -un)"
    echo "ZEROMQ_CONF_DIR=$node_dir/etc/oslo"
    echo "ZEROMQ_LOG_DIR=$node_dir/var/log/oslo"
    echo "ZEROMQ_BIN_DIR=$node_dir/usr/local/bin"
    if [[ -n ${REAL_PREBUILT_BIN_DIR:-} ]]; then
        echo "ZEROMQ_PREBUILT_BIN_DIR=$REAL_PREBUILT_BIN_DIR"
    fi
    echo "# The sample $(basename "$sample")."
    sed -e '/^\[\[local|localrc\]\]/d' \
        -e "s/192\.168\.42\.11/${REAL_CONTROLLER_IP:-127.0.0.1}/g" \
        -e "s/192\.168\.42\.12/${REAL_SUBNODE_IP:-127.0.0.2}/g" \
        -e "${REAL_SAMPLE_SED:-}" "$sample"
    echo "# The test's settings."
    echo "disable_service tempest"
    if (($# > 0)); then
        printf '%s\n' "$@"
    fi
} >"$node_dir/devstack/local.conf"
