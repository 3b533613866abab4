#!/usr/bin/env python3
"""Checks a demo summary (tailwarden demo --summary-json FILE) as CI does: the path
went direct, fell back to DERP when UDP was blocked, came back, and iperf3 measured
something. Exit 0 when it holds, 1 with the reason otherwise."""
import json
import sys

# Direct through the easy NAT comes within ~0.5 s of both nodes being ready; a lost
# first exchange used to cost a whole 5 s discovery round. 3 s leaves room for a
# loaded CI machine and still fails on that regression.
MAX_READY_TO_DIRECT_S = 3.0


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: demo_summary_check.py SUMMARY.json", file=sys.stderr)
        return 2
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            s = json.load(f)
    except (OSError, ValueError) as e:
        print(f"FAIL: cannot read demo summary: {e}")
        return 1
    if not isinstance(s, dict):
        print("FAIL: demo summary is not an object")
        return 1
    print("demo summary:", json.dumps(s, sort_keys=True))
    needed = ("time_to_direct_s", "ready_to_direct_s", "derp_after_block_s",
              "back_to_direct_s", "iperf3_mbit_s", "failover_gap_s")
    bad = [k for k in needed if not isinstance(s.get(k), (int, float))]
    if bad:
        print("FAIL: demo summary lacks", bad)
        return 1
    if s["ready_to_direct_s"] > MAX_READY_TO_DIRECT_S:
        print(f"FAIL: direct path came {s['ready_to_direct_s']} s after both nodes were ready "
              f"(limit {MAX_READY_TO_DIRECT_S} s)")
        return 1
    if s["iperf3_mbit_s"] <= 0:
        print("FAIL: no throughput through the tunnel")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
