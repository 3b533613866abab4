#!/usr/bin/env bash
# Failover benchmark: runs the e2e failover scenario N times (easy NAT,
# traffic direct, UDP blocked at both routers, later unblocked) and prints, per run and
# as min / median / max: the time until status shows DERP, the longest silence of a
# 20 Hz ping stream (the failover gap; aim <= 3 s), and the time back to direct after
# unblocking (aim <= 5 s). Ratios are against those aims; the load average is printed
# because the machine is shared and the figures move with it.
#   BIN=<dir with the binaries> bench/failover.sh [N]
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
source "$HERE/tests/e2e/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN}
N=${1:-3}
[ "$(id -u)" -eq 0 ] || { echo "failover: needs root"; exit 2; }
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
WORK=$(mktemp -d /tmp/tw-failover-XXXXXX)
tw_on_exit 'rm -rf "$WORK"'

for i in $(seq "$N"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  BIN=$BIN E2E_SUMMARY_JSON="$WORK/run$i.json" bash "$HERE/tests/e2e/run_e2e.sh" failover \
    >"$WORK/run$i.log" 2>&1
  rc=$?
  echo "$load" >"$WORK/run$i.load"
  [ $rc = 0 ] || { echo "run $i failed:"; grep -E '^FAIL' "$WORK/run$i.log"; }
done

"$PY" - "$WORK" "$N" <<'PY'
import json, os, statistics, sys
work, n = sys.argv[1], int(sys.argv[2])
cols = [("to_derp_s", "DERP after (s)", None), ("gap_s", "gap (s)", 3.0),
        ("back_to_direct_s", "direct again (s)", 5.0)]
runs = []
for i in range(1, n + 1):
    fig, status = {}, "FAIL"
    try:
        doc = json.load(open(os.path.join(work, f"run{i}.json")))
        s = doc["scenarios"][0]
        fig, status = s["figures"], s["status"]
    except (OSError, ValueError, IndexError, KeyError):
        pass
    load = open(os.path.join(work, f"run{i}.load")).read().strip()
    runs.append((i, status, load, fig))

def num(v):
    return v if isinstance(v, (int, float)) else None

print(f"{'run':<8}{'result':<8}{'load':>6}" + "".join(f"{h:>18}" for _, h, _ in cols))
for i, status, load, fig in runs:
    cells = "".join(f"{(f'{num(fig.get(k)):.2f}' if num(fig.get(k)) is not None else 'n/a'):>18}"
                    for k, _, _ in cols)
    print(f"{i:<8}{status:<8}{load:>6}{cells}")
for label, fn in (("min", min), ("median", statistics.median), ("max", max)):
    cells = ""
    for k, _, _ in cols:
        vals = [num(f.get(k)) for _, _, _, f in runs if num(f.get(k)) is not None]
        cells += f"{(f'{fn(vals):.2f}' if vals else 'n/a'):>18}"
    print(f"{label:<22}{cells}")
cells = ""
for k, _, aim in cols:
    vals = [num(f.get(k)) for _, _, _, f in runs if num(f.get(k)) is not None]
    cells += f"{(f'{statistics.median(vals) / aim:.2f}x' if vals and aim else '-'):>18}"
print(f"{'median / issue aim':<22}{cells}")
PY
