#!/usr/bin/env bash
# Builds the tailwarden OCI image offline with buildah, from scratch: no base image,
# no registry, no network. The tree comes from collect-rootfs.sh.
#   usage: build-image.sh IMAGE_NAME SRC_DIR NAME=PATH...
# Extra buildah global options (e.g. a private --root/--runroot) come from
# $BUILDAH_OPTS, so a test can keep its images away from the host's store.
set -euo pipefail
image=${1:?image name}
src=${2:?source dir}
shift 2
read -r -a opts <<<"${BUILDAH_OPTS:-}"

stage=$(mktemp -d)
ctr=""
cleanup() {
  [[ -n "$ctr" ]] && buildah "${opts[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

"$src/packaging/container/collect-rootfs.sh" "$stage/rootfs" "$src" "$@"

ctr=$(buildah "${opts[@]}" from scratch)
# --preserve-ownership keeps root:root, as the files are owned in the staging tree.
buildah "${opts[@]}" copy "$ctr" "$stage/rootfs/" / >/dev/null
# The broker stays root inside the container (it must switch the children to the
# tailwarden-<role> accounts, and create the TUN device and their netns); the run line in
# docs/deploy.md hands it only the capabilities it needs.
buildah "${opts[@]}" config \
  --entrypoint '["/usr/sbin/tailwardend"]' \
  --cmd '--config /etc/tailwarden/tailwardend.toml' \
  --user 0:0 \
  --workingdir / \
  --env PATH=/usr/sbin:/usr/bin \
  --volume /var/lib/tailwarden \
  --port 41641/udp \
  --label org.opencontainers.image.title=tailwarden \
  --label org.opencontainers.image.description="hardened, privilege-separated mesh VPN node" \
  "$ctr"
buildah "${opts[@]}" commit --quiet --rm "$ctr" "$image" >/dev/null
ctr=""
echo "built $image"
