#!/usr/bin/env bash
# Runs the demo as CI does and checks its summary: the path went direct, fell back to
# DERP when UDP was blocked, and came back; iperf3 measured something.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: demo needs root"; exit 0; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 300 "$HERE/demo.sh" --summary-json "$out" || { echo "FAIL: demo exited $?"; exit 1; }
python3 - "$out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("demo summary:", s)
bad = [k for k in ("time_to_direct_s", "derp_after_block_s", "back_to_direct_s", "iperf3_mbit_s", "failover_gap_s")
       if s.get(k) is None]
if bad:
    print("FAIL: demo summary lacks", bad)
    sys.exit(1)
if s["time_to_direct_s"] > 30:
    print("FAIL: direct path took too long")
    sys.exit(1)
PY
