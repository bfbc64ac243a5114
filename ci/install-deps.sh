#!/usr/bin/env bash
# Installs the Debian packages that building and testing need, when missing.
# Idempotent: does nothing when everything is present.
set -euo pipefail

packages=(gcc pkg-config libzmq3-dev redis-server nats-server)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      sudo=(sudo)
    else
      echo "error: missing Debian packages: ${missing[*]}" >&2
      echo "       run as root: apt-get install -y ${missing[*]}" >&2
      exit 1
    fi
  fi
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null; then
  echo "error: the Go toolchain (go 1.26 or newer) is not on PATH; Debian's golang-go is too old:" >&2
  echo "       install Go from the Go project's release archive into /usr/local/go" >&2
  exit 1
fi
