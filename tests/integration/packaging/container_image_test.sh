#!/usr/bin/env bash
# Builds the OCI image offline with buildah (packaging/container/build-image.sh), runs
# it with podman (runc, no network) to prove the binaries and their libraries load,
# and checks its size.
#   usage: container_image_test.sh BINARIES_FILE SOURCE_DIR
# BINARIES_FILE has NAME=PATH lines (written by packaging/CMakeLists.txt). The image
# store is private to this run and removed afterwards.
set -euo pipefail
bins_file=${1:?binaries file}
src=${2:?source dir}
max_mb=${TW_IMAGE_MAX_MB:-40}

fail() { echo "FAIL: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root for buildah/podman here"; exit 77; }
for tool in buildah podman runc; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps)"
done

work=$(mktemp -d /var/tmp/tw-pkg-image.XXXXXX)
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() {
  podman "${store[@]}" rm -af >/dev/null 2>&1 || true
  buildah "${store[@]}" rm -a >/dev/null 2>&1 || true
  # vfs layers may hold read-only dirs; make them removable first.
  chmod -R u+w "$work" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mapfile -t bins < <(grep '=' "$bins_file")
image=localhost/tailwarden:test
BUILDAH_OPTS="${store[*]}" "$src/packaging/container/build-image.sh" "$image" "$src" "${bins[@]}" \
  >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "image build failed"; }

# This machine's limits are below podman's defaults, so they are given explicitly;
# --runtime runc and --network none as the deployment requires (docs/deploy.md).
run() {
  podman "${store[@]}" run --rm --runtime runc --network none \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    --cap-drop all --security-opt no-new-privileges --read-only "$@"
}

# Non-root where possible: the version and the offline codec need no privilege.
version=$(run --user tailwarden-netproc "$image" --version 2>&1) || fail "tailwardend --version: $version"
[[ $version == "tailwardend "* ]] || fail "unexpected: $version"
echo "image: $version (as user tailwarden-netproc, no capabilities)"

stun=$(run --user tailwarden-netproc --entrypoint /usr/bin/tailwarden "$image" \
         debug stun-request --txid 0102030405060708090a0b0c 2>&1) || fail "stun-request: $stun"
# A STUN binding request: type 0x0001, a length, the magic cookie, our transaction id.
hex=$(tr -d ' \n:' <<<"$stun" | tr 'A-F' 'a-f')
[[ $hex =~ 0001[0-9a-f]{4}2112a4420102030405060708090a0b0c ]] ||
  fail "stun-request output lacks the binding request header: $stun"
echo "image: tailwarden debug stun-request -> ${stun:0:80}"


size=$(podman "${store[@]}" image inspect --format '{{.Size}}' "$image")
size_mb=$(awk -v s="$size" 'BEGIN { printf "%.1f", s / 1000000 }')
files=$(podman "${store[@]}" image inspect --format '{{len .RootFS.Layers}}' "$image")
echo "image size: $size_mb MB uncompressed ($files layer), ceiling $max_mb MB"
awk -v s="$size" -v m="$max_mb" 'BEGIN { exit !(s > m * 1000000) }' &&
  fail "image is $size_mb MB, above $max_mb MB"
user=$(podman "${store[@]}" image inspect --format '{{.Config.User}}' "$image")
[[ $user == 0:0 ]] || fail "image user $user"
echo "PASS"
