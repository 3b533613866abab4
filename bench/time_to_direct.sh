#!/usr/bin/env bash
# Time to a direct path through the easy NAT: runs the demo topology N times
# (two nodes behind EIM NATs, relay and STUN server; tests/e2e/demo.sh --direct-only)
# and prints each run and min / median / p95 / max of
#   ready->direct  from both nodes ready (children sandboxed, netmap loaded) until both
#                  see each other direct (the figure the issue bounds at 1 s),
#   start->direct  from starting the brokers,
#   wait a, wait b how long each side's status poll waited for "direct".
# The load average is printed per run: the machine is shared and figures move with it.
#   BIN=<dir with the binaries> bench/time_to_direct.sh [N]   (default BIN: build/release/bin)
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
source "$HERE/tests/e2e/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:-$HERE/build/release/bin}
N=${1:-20}
[ "$(id -u)" -eq 0 ] || { echo "time_to_direct: needs root"; exit 2; }
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
WORK=$(mktemp -d /tmp/tw-ttd-XXXXXX)
tw_on_exit 'rm -rf "$WORK"'

printf '%4s %7s %14s %14s %8s %8s\n' run load ready->direct start->direct "wait a" "wait b"
for i in $(seq "$N"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ! BIN=$BIN "$HERE/tests/e2e/demo.sh" --direct-only --summary-json "$WORK/$i.json" >"$WORK/$i.log" 2>&1; then
    echo "run $i: no direct path (log follows)"
    tail -20 "$WORK/$i.log"
  fi
  "$PY" - "$WORK/$i.json" "$i" "$load" <<'PY'
import json, sys
try:
    s = json.load(open(sys.argv[1]))
except Exception:
    s = {}
f = lambda k: "-" if s.get(k) is None else f"{s[k]:.2f}"
print(f"{sys.argv[2]:>4} {sys.argv[3]:>7} {f('ready_to_direct_s'):>14} {f('time_to_direct_s'):>14} "
      f"{f('wait_direct_a_s'):>8} {f('wait_direct_b_s'):>8}")
PY
done

"$PY" - "$WORK" "$N" <<'PY'
import glob, json, os, sys
work, n = sys.argv[1], int(sys.argv[2])
rows = []
for i in range(1, n + 1):
    try:
        rows.append(json.load(open(os.path.join(work, f"{i}.json"))))
    except Exception:
        rows.append({})
def stats(key):
    v = sorted(r[key] for r in rows if isinstance(r.get(key), (int, float)))
    if not v:
        return None
    pick = lambda q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
    return len(v), v[0], pick(0.5), pick(0.95), v[-1]
print()
print(f"{'figure (s)':<16} {'runs':>5} {'min':>6} {'median':>7} {'p95':>6} {'max':>6}")
for key, name in (("ready_to_direct_s", "ready->direct"), ("time_to_direct_s", "start->direct"),
                  ("wait_direct_a_s", "wait a"), ("wait_direct_b_s", "wait b")):
    st = stats(key)
    if st is None:
        print(f"{name:<16} {0:>5}")
    else:
        print(f"{name:<16} {st[0]:>5} {st[1]:>6.2f} {st[2]:>7.2f} {st[3]:>6.2f} {st[4]:>6.2f}")
ok = sum(1 for r in rows if isinstance(r.get("ready_to_direct_s"), (int, float)) and r["ready_to_direct_s"] <= 1.0)
print(f"\nruns with ready->direct <= 1 s: {ok} of {n}")
PY
