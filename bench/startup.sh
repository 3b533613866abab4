#!/usr/bin/env bash
# tailwardend start-up time: from exec to both children sandboxed and ready
# (the broker's "sandboxed and ready" log line), median over N starts, next to the
# time to exec a trivial binary in the same namespace (the baseline of this run).
#   BIN=<dir with the binaries> bench/startup.sh [N]
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
source "$HERE/tests/e2e/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN}
N=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "startup: needs root"; exit 2; }
source "$HERE/tests/e2e/topology.sh"
source "$HERE/tests/e2e/node.sh"
TOPO_ID=su$$
NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
tw_on_exit 'e2e_cleanup; rm -rf "${E2E_DIR:-/nonexistent}"'
topo_up lan
e2e_init
e2e_write_netmaps
times=()
base=()
for i in $(seq "$N"); do
  t0=$(date +%s%N)
  ip netns exec "$NS_A" /bin/true
  base+=($(( ($(date +%s%N) - t0) / 1000 )))
  e2e_start_node a
  t0=$(date +%s%N)
  while ! grep -q "sandboxed and ready" "$E2E_DIR/a/log" 2>/dev/null; do
    sleep 0.002
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 5000 ] && { echo "start $i: not ready in 5 s"; tail -3 "$E2E_DIR/a/log"; exit 1; }
  done
  times+=($(( ($(date +%s%N) - t0) / 1000 )))
  kill "$E2E_PID_a"; wait "$E2E_PID_a" 2>/dev/null
  rm -f "$E2E_DIR/a/log"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m=$(median "${times[@]}"); b=$(median "${base[@]}")
printf '%-44s %10s\n' "median over $N starts" "ms"
python3 - "$m" "$b" <<'PY'
import sys
m, b = int(sys.argv[1]), int(sys.argv[2])
print(f"{'exec /bin/true in the namespace (baseline)':44s} {b/1000:10.1f}")
print(f"{'tailwardend to both children sandboxed+ready':44s} {m/1000:10.1f}   (aim <= 200 ms; {m/b:.0f}x baseline)")
PY
