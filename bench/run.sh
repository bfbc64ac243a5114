#!/usr/bin/env bash
# The benchmark of issue 6 in one command: installs what it needs (Debian
# packages, as root or with password-less sudo), builds the harness and the
# router proxy, and runs every cell as separate processes, interleaved,
# printing medians and paired ratios (BENCHMARKS.md explains them), then the
# scale section: CALL msg/s as servers (1 to 16) and callers (1 to 64) grow,
# and the Redis matchmaker with 10,000 registered targets.
#
#   bench/run.sh                 full run: 5 rounds of 3 s windows, then the scale
#                                section in 3 rounds (about 17 minutes on 2 cores)
#   bench/run.sh --quick         smoke run: 1 round of 1 s windows, no scale section (about a minute)
#   bench/run.sh --scale-only    the scale section alone, 3 rounds (about 6 minutes)
#   bench/run.sh --quick --scale-only   its smoke run: 1 round of 1 s windows (under a minute)
#   bench/run.sh --help          every flag of the harness (fabricbench)
#
# Flags are passed on to fabricbench, e.g. --only ours-direct,raw-direct,
# --json results.json, --profile ours-direct/call16 --profile-dir prof/,
# --scale=false (full run without the scale section), --scale (quick run
# with it), --scale-servers 1,4,16, --scale-callers 1,64, --scale-reps N,
# --redis-targets N (0 skips the Redis figure).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"

packages=(gcc pkg-config libzmq3-dev redis-server nats-server)

install_packages() {
  local missing=() p
  for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      echo "error: missing Debian packages: ${missing[*]}" >&2
      echo "       run as root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "installing: ${missing[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

if ! command -v dpkg-query >/dev/null; then
  echo "error: not a Debian system; install by hand: ${packages[*]}" >&2
  exit 1
fi
install_packages
if ! command -v go >/dev/null; then
  echo "error: the Go toolchain (go 1.26 or newer) is not on PATH nor in /usr/local/go" >&2
  exit 1
fi

# What is measured: the commit, and whether the driver's sources differ from
# it (read-only: no index refresh).
source=unknown
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  source=$commit
  if [[ -n $(git --no-optional-locks status --porcelain --untracked-files=no -- zmq messaging matchmaker config cmd 2>/dev/null) ]]; then
    source+=" with local changes to the driver"
  fi
fi

bindir=$(mktemp -d "${TMPDIR:-/tmp}/fabricbench.XXXXXX")
trap 'rm -rf "$bindir"' EXIT
go build -o "$bindir/" ./bench/cmd/fabricbench ./cmd/oslo-messaging-zmq-proxy
# Not exec: the trap removes the binaries when the run ends.
"$bindir/fabricbench" --proxy-bin "$bindir/oslo-messaging-zmq-proxy" --source "$source" "$@"
