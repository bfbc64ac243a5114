#!/usr/bin/env bash
# Builds the lab image (fabric:lab) with no registry: the Debian base from
# ci/build-base-image.sh (once), our binaries with cgo into bin/, then
# deploy/docker/Dockerfile from the repository root on top of that base.
#
# Options:
#   --force-base   rebuild the base image even if it exists
# Environment:
#   FABRIC_LAB_IMAGE    tag of the lab image   (default fabric:lab)
#   FABRIC_BASE_IMAGE   tag of the base image  (default fabric-base:bookworm)
#   FABRIC_LAB_BIN_DIR  take zmqrpc and oslo-messaging-zmq-proxy from this
#                       directory instead of building them
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

image=${FABRIC_LAB_IMAGE:-fabric:lab}
base=${FABRIC_BASE_IMAGE:-fabric-base:bookworm}
binaries=(zmqrpc oslo-messaging-zmq-proxy)

base_args=()
while (($# > 0)); do
  case $1 in
    --force-base) base_args+=(--force) ;;
    *)
      echo "usage: $0 [--force-base]" >&2
      exit 2
      ;;
  esac
  shift
done

start=$SECONDS
FABRIC_BASE_IMAGE=$base bash ci/build-base-image.sh "${base_args[@]}"

mkdir -p bin
if [[ -n ${FABRIC_LAB_BIN_DIR:-} ]]; then
  for b in "${binaries[@]}"; do
    [[ -x $FABRIC_LAB_BIN_DIR/$b ]] || { echo "error: $FABRIC_LAB_BIN_DIR/$b: no such executable" >&2; exit 1; }
    cp "$FABRIC_LAB_BIN_DIR/$b" bin/
  done
  echo "binaries from $FABRIC_LAB_BIN_DIR"
else
  for b in "${binaries[@]}"; do
    [[ -d cmd/$b ]] || { echo "error: cmd/$b is missing: the lab image needs both ${binaries[*]}" >&2; exit 1; }
  done
  # go build will not overwrite what it did not build (a copied binary).
  rm -f "${binaries[@]/#/bin/}"
  # cgo: the binaries link libzmq5, which the base image provides.
  CGO_ENABLED=1 go build -trimpath -o bin/ "${binaries[@]/#/./cmd/}"
  echo "built ${binaries[*]}"
fi

# The base is local: nothing is pulled (the legacy builder and BuildKit
# both use a FROM image that is already in the engine).
docker build --quiet -f deploy/docker/Dockerfile \
  --build-arg "BASE_IMAGE=$base" \
  --label org.oslozmq.fabric.image=lab \
  -t "$image" . >/dev/null
# Earlier builds of the lab image, now untagged, only take space.
docker image prune --force --filter label=org.oslozmq.fabric.image=lab >/dev/null
echo "built $image on $base in $((SECONDS - start))s"
