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
#   bench/run.sh --baseline REV  also runs our driver and proxy as built from the
#                                git revision REV (a temporary git worktree), each
#                                cell of ours-direct, ourproxy and ours-proxy paired
#                                with its twin ours-direct-base, ourproxy-base and
#                                ours-proxy-base in every round; the report adds
#                                "Current vs baseline (REV)": msg/s, p50 and CPU per
#                                operation, current / baseline. Combines with the
#                                other flags, e.g. --quick --only call16; an even
#                                --reps runs each build first equally often.
#   bench/run.sh --help          every flag of the harness (fabricbench)
#
# Other flags are passed on to fabricbench, e.g. --only ours-direct,raw-direct,
# --json results.json, --profile ours-direct/call16 --profile-dir prof/,
# --scale=false (full run without the scale section), --scale (quick run
# with it), --scale-servers 1,4,16, --scale-callers 1,64, --scale-reps N,
# --redis-targets N (0 skips the Redis figure).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"

# --baseline REV is ours; the rest goes to fabricbench.
baseline=
args=()
while (($# > 0)); do
  case $1 in
    --baseline)
      if (($# < 2)) || [[ -z $2 ]]; then
        echo "error: --baseline needs a git revision" >&2
        exit 2
      fi
      baseline=$2
      shift 2
      ;;
    --baseline=*)
      baseline=${1#--baseline=}
      if [[ -z $baseline ]]; then
        echo "error: --baseline needs a git revision" >&2
        exit 2
      fi
      shift
      ;;
    *)
      args+=("$1")
      shift
      ;;
  esac
done
if [[ -n $baseline ]]; then
  # Before installing or building anything: a typo fails at once.
  if ! base_commit=$(git rev-parse --verify --quiet --end-of-options "$baseline^{commit}"); then
    echo "error: --baseline $baseline: not a commit of this repository" >&2
    exit 2
  fi
fi

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
basetree=
cleanup() {
  if [[ -n $basetree ]]; then
    git worktree remove --force "$basetree" >/dev/null 2>&1 || true
  fi
  rm -rf "$bindir"
  if [[ -n $basetree ]]; then
    git worktree prune >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
go build -o "$bindir/" ./bench/cmd/fabricbench ./cmd/oslo-messaging-zmq-proxy

baseline_args=()
if [[ -n $baseline ]]; then
  base_short=$(git rev-parse --short "$base_commit")
  basetree=$bindir/src
  echo "baseline: building $baseline ($base_short) in a temporary worktree" >&2
  if ! git worktree add --quiet --detach "$basetree" "$base_commit" >&2; then
    echo "error: --baseline $baseline: cannot check out $base_short in a worktree" >&2
    exit 1
  fi
  mkdir -p "$bindir/base"
  if ! (cd "$basetree" && go build -o "$bindir/base/" ./bench/cmd/fabricbench ./cmd/oslo-messaging-zmq-proxy); then
    echo "error: --baseline $baseline: $base_short does not build (its fabricbench and oslo-messaging-zmq-proxy)" >&2
    exit 1
  fi
  baseline_args=(--baseline-bin "$bindir/base/fabricbench"
    --baseline-proxy-bin "$bindir/base/oslo-messaging-zmq-proxy"
    --baseline-source "$base_short")
fi

# Not exec: the trap removes the binaries (and the baseline's worktree) when
# the run ends.
"$bindir/fabricbench" --proxy-bin "$bindir/oslo-messaging-zmq-proxy" --source "$source" \
  "${baseline_args[@]}" "${args[@]}"
