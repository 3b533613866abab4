#!/usr/bin/env bash
# Assembles the image's whole file system in DEST: the tailwarden binaries (stripped),
# exactly the shared libraries they load (from ldd), and a minimal /etc. Used by the
# offline buildah build (build-image.sh) and by the Containerfile's build stage, so
# both produce the same tree.
#   usage: collect-rootfs.sh DEST SRC_DIR NAME=PATH...
#   NAME is one of tailwardend, tailwarden, tailwarden-netproc, tailwarden-dataproc,
#   tailwarden-ctlproc, tailwarden-exitproc.
set -euo pipefail
dest=${1:?dest}
src=${2:?source dir}
shift 2

# Fixed ids: the image has no useradd, and the ids must not collide with a host's
# login users when an operator bind-mounts state (65532 is the distroless custom;
# the children's accounts, one per child, sit just below it).
declare -A tw_uid=([netproc]=65528 [dataproc]=65529 [ctlproc]=65530 [exitproc]=65531)

install -d -m 0755 "$dest"/{usr/sbin,usr/bin,usr/lib/tailwarden,etc/tailwarden,tmp}
install -d -m 0700 "$dest"/var/lib/tailwarden
install -d -m 0750 "$dest"/run/tailwarden
chmod 1777 "$dest/tmp"

declare -a bins=()
for arg in "$@"; do
  name=${arg%%=*}
  path=${arg#*=}
  case $name in
    tailwardend) to=usr/sbin ;;
    tailwarden) to=usr/bin ;;
    tailwarden-netproc | tailwarden-dataproc | tailwarden-ctlproc | tailwarden-exitproc) to=usr/lib/tailwarden ;;
    *) echo "collect-rootfs: unknown binary $name" >&2; exit 2 ;;
  esac
  install -m 0755 "$path" "$dest/$to/$name"
  strip --strip-unneeded "$dest/$to/$name"
  bins+=("$dest/$to/$name")
done

# Each library at the path the dynamic loader will look for it (ldd resolves the
# same way inside the image, since the tree mirrors the host's layout).
for bin in "${bins[@]}"; do
  ldd "$bin" | grep -o '/[^ ]*' | while read -r lib; do
    [[ -e "$dest$lib" ]] && continue
    install -d "$dest$(dirname "$lib")"
    cp -L "$lib" "$dest$lib"
  done
done

# glibc >= 2.34 has the "files" NSS backend built in: passwd/group are all getpwnam needs.
{
  echo "root:x:0:0:root:/nonexistent:/sbin/nologin"
  for role in netproc dataproc ctlproc exitproc; do
    echo "tailwarden-$role:x:${tw_uid[$role]}:${tw_uid[$role]}:tailwarden sandboxed $role:/nonexistent:/sbin/nologin"
  done
  echo "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin"
} >"$dest/etc/passwd"
{
  echo "root:x:0:"
  for role in netproc dataproc ctlproc exitproc; do echo "tailwarden-$role:x:${tw_uid[$role]}:"; done
  echo "nogroup:x:65534:"
} >"$dest/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$dest/etc/nsswitch.conf"
install -m 0644 "$src/packaging/tailwardend.toml" "$dest/etc/tailwarden/tailwardend.toml"
