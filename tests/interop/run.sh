#!/usr/bin/env bash
# Builds and runs the interop harness against real Tailscale code (tests/interop/README.md).
#   tests/interop/run.sh [go test flags, e.g. -test.run Scenario1]
# Needs root (network namespaces), Go (the version in go.mod or newer), nft, and
# tailwarden's binaries in $TW_BIN (default build/default/bin).
#   TW_INTEROP_CACHE  Go module and build cache (default /var/cache/tailwarden-interop):
#                     kept between runs, so a rerun rebuilds nothing and downloads nothing.
#   TW_INTEROP_OUT    where the test binary, tailscaled and tailscale go (build/interop)
#   TW_INTEROP_KEEP   keep every test's files (logs, netmaps) under this directory
#   TW_INTEROP_MODES  how our nodes join, run in turn (default "enroll control")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${TW_INTEROP_CACHE:-/var/cache/tailwarden-interop}
out=${TW_INTEROP_OUT:-$root/build/interop}
export GOMODCACHE=$cache/gomod GOCACHE=$cache/gobuild GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
mkdir -p "$out" "$GOMODCACHE" "$GOCACHE"

if ! command -v go >/dev/null; then
  echo "interop: go not found (the harness needs Go >= $(sed -n 's/^go //p' "$here/go.mod"))" >&2
  exit 1
fi
if [ "$(id -u)" != 0 ]; then
  echo "interop: run as root (the harness creates network namespaces)" >&2
  exit 1
fi

t0=$SECONDS
cd "$here"
# tailscaled and tailscale from the same go.mod as the harness: one pinned version
# (go install relinks only when something changed).
GOBIN=$out go install tailscale.com/cmd/tailscaled tailscale.com/cmd/tailscale
go test -c -o "$out/interop.test" .
echo "interop: build took $((SECONDS - t0)) s ($(go list -m -f '{{.Path}} {{.Version}}' tailscale.com))"

export TW_BIN=${TW_BIN:-$root/build/default/bin}
export TS_BIN=$out
# Our nodes' children run under the test accounts (child_user = "twtest", one per child).
"$root/tests/lib/child-accounts" >/dev/null
cd "$out"
t1=$SECONDS
# How our node joins: enrolled by the harness, and through its own control client
# (tailwarden-ctlproc) registering with testcontrol; both run by default (README.md).
rc=0
: >"$out/interop.log"
for mode in ${TW_INTEROP_MODES:-enroll control}; do
  echo "=== interop mode $mode"
  set +e
  TW_INTEROP_MODE=$mode ./interop.test -test.v -test.timeout 8m "$@" 2>&1 | tee "$out/interop-$mode.log"
  r=${PIPESTATUS[0]}
  set -e
  sed "s/^--- /--- [$mode] /" "$out/interop-$mode.log" >>"$out/interop.log"
  [ "$r" = 0 ] || rc=$r
done
echo "interop: tests took $((SECONDS - t1)) s, exit $rc"
echo "=== interop figures"
grep -hE '^FIGURE ' "$out/interop.log" || true
grep -hE '^--- ' "$out/interop.log" || true
exit "$rc"
