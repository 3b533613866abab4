#!/usr/bin/env bash
# Scores packaging/systemd/tailwardend.service with
# `systemd-analyze security --offline=yes` and fails when its exposure is above the
# ceiling (first argument). Prints Tailscale's stock unit, scored the same way, for
# comparison, and the directives that still cost us points.
#   usage: systemd_exposure_test.sh MAX_EXPOSURE SOURCE_DIR
set -euo pipefail
max=${1:?max exposure}
src=${2:?source dir}
unit=$src/packaging/systemd/tailwardend.service
reference=$src/tests/integration/packaging/tailscaled.service.reference

if ! command -v systemd-analyze >/dev/null; then
  echo "FAIL: systemd-analyze missing (scripts/install-deps installs the systemd package)"
  exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# systemd-analyze wants a unit-shaped file name.
cp "$unit" "$work/tailwardend.service"
cp "$reference" "$work/tailscaled.service"

# Prints the exposure number of one unit; works without a running systemd.
exposure() {
  local out
  out=$(systemd-analyze security --offline=yes --no-pager "$1" 2>&1) || true
  sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out"
}

ours=$(exposure "$work/tailwardend.service")
theirs=$(exposure "$work/tailscaled.service")
if [[ -z "$ours" || -z "$theirs" ]]; then
  echo "FAIL: could not read an exposure score"
  systemd-analyze security --offline=yes --no-pager "$work/tailwardend.service" || true
  exit 1
fi

echo "exposure (systemd-analyze security --offline=yes, 0 best .. 10 worst):"
printf '  %-40s %s\n' "tailwardend.service (ours)" "$ours" \
                      "tailscaled.service (Tailscale, reference)" "$theirs"
echo "remaining exposure items of ours:"
systemd-analyze security --offline=yes --no-pager "$work/tailwardend.service" 2>/dev/null |
  grep '✗' | sed 's/^/  /' || true

# The unit must also be valid as a unit (unknown directives would be ignored by
# systemd and so silently weaken the sandbox).
if verify=$(systemd-analyze verify --man=no "$work/tailwardend.service" 2>&1 |
            grep -v -e 'is not executable' -e 'Command .* No such file'); [[ -n "$verify" ]]; then
  echo "FAIL: systemd-analyze verify complains:"
  echo "$verify"
  exit 1
fi

if awk -v a="$ours" -v m="$max" 'BEGIN { exit !(a > m) }'; then
  echo "FAIL: exposure $ours is above the ceiling $max"
  exit 1
fi
if ! awk -v a="$ours" -v t="$theirs" 'BEGIN { exit !(a < t) }'; then
  echo "FAIL: our unit ($ours) is not more confined than the reference ($theirs)"
  exit 1
fi
echo "PASS: exposure $ours <= $max (reference $theirs)"
