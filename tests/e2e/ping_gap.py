#!/usr/bin/env python3
"""Largest gap (seconds) between consecutive answered icmp_seq numbers in a `ping -i I`
log, as (missing sequence numbers + 1) * interval. Interval read from the sequence."""
import re
import sys

seqs = []
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"icmp_seq=(\d+)", line)
    if m and "bytes from" in line:
        seqs.append(int(m.group(1)))
interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
if len(seqs) < 2:
    print("n/a")
else:
    seqs.sort()
    gap = max(b - a for a, b in zip(seqs, seqs[1:]))
    print(f"{gap * interval:.2f}")
