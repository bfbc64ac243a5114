#!/usr/bin/env bash
# Builds the lab's base image from Debian packages alone, for machines that
# cannot pull images: debootstrap a minimal bookworm with the runtime the
# binaries need (libzmq5), Redis, and python3 (so Ansible can target it),
# then `docker import` it. Does nothing when the tag exists, unless --force.
#
# The Debian mirror is the one this machine's apt already uses
# (/etc/apt/sources.list, /etc/apt/sources.list.d/*.list and *.sources);
# when none serves the suite, FABRIC_DEBIAN_MIRROR is used.
#
# Environment:
#   FABRIC_BASE_IMAGE     tag to build          (default fabric-base:bookworm)
#   FABRIC_DEBIAN_SUITE   Debian suite          (default bookworm)
#   FABRIC_DEBIAN_MIRROR  mirror URL when apt's sources name none for the suite
set -euo pipefail

image=${FABRIC_BASE_IMAGE:-fabric-base:bookworm}
suite=${FABRIC_DEBIAN_SUITE:-bookworm}
packages=(libzmq5 redis-server ca-certificates iproute2 procps python3)

usage() {
  echo "usage: $0 [--force]" >&2
  exit 2
}

force=false
while (($# > 0)); do
  case $1 in
    --force) force=true ;;
    -h | --help) usage ;;
    *) echo "error: unknown argument: $1" >&2; usage ;;
  esac
  shift
done

die() {
  echo "error: $*" >&2
  exit 1
}

# apt_mirrors prints "URI SUITE..." for each enabled deb source of apt.
apt_mirrors() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    # One-line format: deb [options] uri suite [component...]
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
      awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    # deb822 format: stanzas separated by blank lines.
    awk '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && enabled != "no" && uris != "")
          { n = split(uris, u, " "); for (i = 1; i <= n; i++) print u[i], suites }
        types = ""; uris = ""; suites = ""; enabled = ""
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        key = tolower($1); sub(/:$/, "", key)
        val = $0; sub(/^[^:]*:[ \t]*/, "", val)
        if (key == "types") types = val
        else if (key == "uris") uris = val
        else if (key == "suites") suites = val
        else if (key == "enabled") enabled = tolower(val)
      }
      END { flush() }
    ' "$f"
  done
}

# find_mirror prints the first http(s) or file mirror of apt that serves
# the suite itself (not -updates or -security), else FABRIC_DEBIAN_MIRROR.
find_mirror() {
  local uri rest s
  while read -r uri rest; do
    case $uri in http://* | https://* | file:/*) ;; *) continue ;; esac
    for s in $rest; do
      if [[ $s == "$suite" ]]; then
        echo "${uri%/}"
        return 0
      fi
    done
  done < <(apt_mirrors)
  if [[ -n ${FABRIC_DEBIAN_MIRROR:-} ]]; then
    echo "${FABRIC_DEBIAN_MIRROR%/}"
    return 0
  fi
  return 1
}

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (is it running, and may this user use it?)"

if ! $force && docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image exists (--force rebuilds it)"
  exit 0
fi

# debootstrap creates device nodes and chroots: it needs root.
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo)
  else
    die "building $image needs root (debootstrap); run this script as root or with password-less sudo"
  fi
fi

if ! command -v debootstrap >/dev/null && [[ ! -x /usr/sbin/debootstrap ]]; then
  echo "installing debootstrap"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends debootstrap
fi
debootstrap=$(command -v debootstrap || echo /usr/sbin/debootstrap)

mirror=$(find_mirror) ||
  die "no Debian mirror for '$suite' in apt's sources; set FABRIC_DEBIAN_MIRROR to one"

work=$(mktemp -d "${TMPDIR:-/tmp}/fabric-base.XXXXXX")
# The rootfs holds root-owned files: remove it with the same rights.
trap '"${sudo[@]}" rm -rf "$work"' EXIT
rootfs=$work/rootfs

echo "debootstrap $suite from $mirror into $rootfs"
start=$SECONDS
include=$(
  IFS=,
  echo "${packages[*]}"
)
"${sudo[@]}" "$debootstrap" --variant=minbase --include="$include" \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap failed (full log above was the end of $work/debootstrap.log)"
}

# Keep the image small, and leave nothing machine-specific in it: Docker
# provides hostname, hosts and resolv.conf at run time.
"${sudo[@]}" rm -rf \
  "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/var/cache/apt/* \
  "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/var/log/* \
  "$rootfs"/usr/share/doc/* \
  "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* \
  "$rootfs"/tmp/* \
  "$rootfs"/var/tmp/* \
  "$rootfs"/etc/hostname \
  "$rootfs"/etc/resolv.conf \
  "$rootfs"/etc/machine-id

"${sudo[@]}" tar -C "$rootfs" --numeric-owner -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $suite with ${packages[*]}" \
    - "$image" >/dev/null

size=$(docker image inspect --format '{{.Size}}' "$image")
echo "built $image ($((size / 1024 / 1024)) MiB) in $((SECONDS - start))s"
