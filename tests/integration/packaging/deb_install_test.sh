#!/usr/bin/env bash
# Builds the .deb with CPack from this build tree, installs it with `dpkg --root` into
# a fresh debootstrap'd Debian root (maintainer scripts run chrooted there), and
# checks what an operator would: the file list, owners and modes, the system account,
# the generated key, and that the installed daemon runs.
#   usage: deb_install_test.sh BUILD_DIR SOURCE_DIR
# The debootstrapped minbase root is cached as a tarball (TW_PACKAGING_CACHE, default
# /var/tmp/tailwarden-packaging): only the first run downloads (about 6 minutes here),
# later runs unpack a fresh copy in seconds. Without a cache and without the
# Debian mirror, it falls back to `dpkg -x` into a root made of the host's libraries
# (maintainer scripts then do not run), and says so.
set -euo pipefail
build=${1:?build dir}
src=${2:?source dir}
suite=${TW_DEBIAN_SUITE:-bookworm}
cache=${TW_PACKAGING_CACHE:-/var/tmp/tailwarden-packaging}

fail() { echo "FAIL: $*"; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "SKIP: needs root (dpkg --root, chroot)"; exit 77; }
for tool in cpack dpkg-deb dpkg-shlibdeps fakeroot; do
  command -v "$tool" >/dev/null || fail "$tool missing (scripts/install-deps)"
done

work=$(mktemp -d /var/tmp/tw-pkg-deb.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# --- 1. the package -----------------------------------------------------------------
cpack --config "$build/CPackConfig.cmake" -G DEB -B "$work/out" >"$work/cpack.log" 2>&1 ||
  { cat "$work/cpack.log"; fail "cpack failed"; }
deb=$(find "$work/out" -maxdepth 1 -name "tailwarden_*.deb" | head -1)
[[ -f "$deb" ]] || { cat "$work/cpack.log"; fail "no .deb produced"; }
echo "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for lib in libc6 libstdc++6 libsodium23 passwd; do
  grep -q "\b$lib\b" <<<"$depends" || fail "Depends lacks $lib"
done

expected=(
  ./etc/tailwarden/tailwardend.toml
  ./usr/bin/tailwarden
  ./usr/sbin/tailwardend
  ./usr/lib/systemd/system/tailwardend.service
  ./usr/share/doc/tailwarden/deploy.md
)
# The children, when this tree builds them, go where the broker looks for them.
for child in tailwarden-netproc tailwarden-dataproc tailwarden-ctlproc tailwarden-exitproc; do
  if grep -q "^$child=" "$build/packaging/shipped-binaries.txt" 2>/dev/null; then
    expected+=("./usr/lib/tailwarden/$child")
  fi
done
contents=$(dpkg-deb -c "$deb")
for f in "${expected[@]}"; do
  grep -q " $f\$" <<<"$contents" || { echo "$contents"; fail "package lacks $f"; }
done
# Nothing from the test tree (e.g. the test DERP relay) may ship.
if grep -E 'derper|_test|fuzz' <<<"$contents"; then fail "test binaries in the package"; fi
# Every file is root-owned; no setuid/setgid bit anywhere.
if awk '$2 != "root/root"' <<<"$contents" | grep .; then fail "file not owned by root/root"; fi
if awk '$1 ~ /^-..[sS]|^-.....[sS]/' <<<"$contents" | grep .; then fail "setuid/setgid file"; fi
dpkg-deb --ctrl-tarfile "$deb" | tar -t | grep -q conffiles || fail "no conffiles"

# --- 2. a fresh Debian root ---------------------------------------------------------
mirror=${TW_DEBIAN_MIRROR:-}
if [[ -z "$mirror" ]]; then
  mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' |
           grep -v security | head -1 || true)
  [[ -n "$mirror" ]] || mirror=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' \
                                 /etc/apt/sources.list 2>/dev/null || true)
fi
# The runtime dependencies go into the root at bootstrap time, so that dpkg --root can
# configure the package without a network.
# debootstrap wants real package names: a virtual one (libspdlog1.10-fmt9) is replaced
# by the host package that provides it, which is what the binaries were linked against.
real_package() {
  if [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; then
    echo "$1"
  else
    dpkg-query -W -f='${Package} ${Provides}\n' | awk -v n="$1" '
      { for (i = 2; i <= NF; i++) { p = $i; sub(/,$/, "", p); if (p == n) { print $1; exit } } }'
  fi
}
include=$(tr ',' '\n' <<<"$depends" | sed 's/(.*)//; s/|.*//; s/ //g' | grep . |
          while read -r p; do real_package "$p"; done | sort -u | paste -sd, -)
key=$(printf '%s %s' "$suite" "$include" | sha256sum | cut -c1-12)
tarball="$cache/$suite-minbase-$key.tar.gz"
mkdir -p "$cache"
mode=debootstrap
(
  flock 9
  if [[ ! -f "$tarball" ]]; then
    if ! command -v debootstrap >/dev/null; then
      echo "debootstrap missing"; exit 3
    fi
    if [[ -z "$mirror" ]] || ! curl -sf --max-time 10 -o /dev/null "$mirror/dists/$suite/Release"; then
      echo "mirror ${mirror:-<none>} unreachable"; exit 3
    fi
    echo "debootstrap $suite (minbase + $include) from $mirror; cached afterwards"
    debootstrap --variant=minbase --include="$include" "$suite" "$work/base" "$mirror" \
      >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log"; exit 4; }
    # The finished root is cached, so later runs only unpack it (seconds).
    tar -C "$work/base" --numeric-owner -czf "$tarball.tmp" . || exit 4
    mv "$tarball.tmp" "$tarball"
  fi
) 9>"$cache/.lock" || { rc=$?; [[ $rc -eq 3 ]] || fail "debootstrap failed"; mode=host; }

mkdir -p "$work/root"
root="$work/root"
if [[ $mode == debootstrap ]]; then
  tar -C "$root" --numeric-owner -xzf "$tarball" || fail "cannot unpack $tarball"
  # dpkg --root runs the maintainer scripts chrooted into $root; nothing is mounted
  # there (the root's own /dev nodes come from the tarball).
  dpkg --root="$root" --force-unsafe-io -i "$deb" >"$work/dpkg.log" 2>&1 ||
    { cat "$work/dpkg.log"; fail "dpkg --root -i failed"; }
  status=$(chroot "$root" dpkg-query -W -f='${Status}' tailwarden)
  [[ $status == "install ok installed" ]] || fail "package state: $status"
  echo "installed into a fresh debootstrap $suite root: $status"
else
  echo "NOTE: no cached root and no reachable mirror: falling back to dpkg -x into a"
  echo "      root made of the host's libraries; maintainer scripts are not exercised."
  dpkg -x "$deb" "$root"
  for bin in "$root/usr/sbin/tailwardend" "$root/usr/bin/tailwarden"; do
    for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      cp -L "$lib" "$root$lib"
    done
  done
fi

# --- 3. what the operator sees --------------------------------------------------------
mode_of() { stat -c '%a %U:%G' "$root$1"; }
[[ $(mode_of /usr/sbin/tailwardend) == "755 root:root" ]] || fail "tailwardend: $(mode_of /usr/sbin/tailwardend)"
[[ $(mode_of /usr/bin/tailwarden) == "755 root:root" ]] || fail "tailwarden: $(mode_of /usr/bin/tailwarden)"
for f in "${expected[@]}"; do
  if [[ $f == ./usr/lib/tailwarden/* ]]; then
    [[ $(mode_of "${f#.}") == "755 root:root" ]] || fail "$f: $(mode_of "${f#.}")"
  fi
done
[[ $(mode_of /etc/tailwarden/tailwardend.toml) == "644 root:root" ]] || fail "config: $(mode_of /etc/tailwarden/tailwardend.toml)"
[[ $(mode_of /usr/lib/systemd/system/tailwardend.service) == "644 root:root" ]] || fail "unit mode"
cmp -s "$root/usr/lib/systemd/system/tailwardend.service" "$src/packaging/systemd/tailwardend.service" ||
  fail "installed unit differs from packaging/systemd/tailwardend.service"

if [[ $mode == debootstrap ]]; then
  # One account per child (the default child_user = "tailwarden" names them), each
  # with its own uid.
  declare -A uids=()
  for role in netproc dataproc ctlproc exitproc; do
    user=tailwarden-$role
    entry=$(grep "^$user:" "$root/etc/passwd") || fail "postinst did not create the $user user"
    IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
    (( uid > 0 && uid < 1000 )) || fail "$user uid $uid is not a system uid"
    [[ -z ${uids[$uid]:-} ]] || fail "$user shares uid $uid with ${uids[$uid]}"
    uids[$uid]=$user
    [[ $shell == /usr/sbin/nologin ]] || fail "$user shell $shell"
    [[ $home == /nonexistent && ! -e "$root/nonexistent" ]] || fail "$user home $home"
    grep -q "^$user:x:$gid:" "$root/etc/group" || fail "no $user group $gid"
  done
  [[ $(mode_of /var/lib/tailwarden) == "700 root:root" ]] || fail "state dir: $(mode_of /var/lib/tailwarden)"
  [[ $(mode_of /var/lib/tailwarden/node.key) == "600 root:root" ]] || fail "node key: $(mode_of /var/lib/tailwarden/node.key)"
  echo "accounts: ${uids[*]} (uids ${!uids[*]}); key: /var/lib/tailwarden/node.key 0600"
fi

version=$(chroot "$root" /usr/sbin/tailwardend --version 2>&1) || fail "tailwardend --version in the root: $version"
[[ $version == "tailwardend "* ]] || fail "unexpected version output: $version"
echo "chroot: $version"

if [[ $mode == debootstrap ]]; then
  dpkg --root="$root" --purge tailwarden >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "purge failed"; }
  [[ ! -e "$root/usr/sbin/tailwardend" && ! -e "$root/var/lib/tailwarden" ]] || fail "purge left files behind"
  [[ ! -e "$root/etc/tailwarden/tailwardend.toml" ]] || fail "purge left the conffile"
fi
echo "PASS ($mode)"
