#!/usr/bin/env python3
"""Gaps in a ping stream.

  ping_gap.py LOG [INTERVAL]
      Largest gap (seconds) between consecutive answered icmp_seq numbers in a
      `ping -i INTERVAL` log, as (missing sequence numbers + 1) * interval.
  ping_gap.py --event T LOG
      For a `ping -D` log (unix time of each reply) and an event at unix time T (a
      kill, say): one JSON object with "resumed_s", the time from T until the reply to
      the first echo sent after T (send time = reply time - rtt), "gap_s", the longest
      silence between two replies around T (from 1 s before T), "sent_after",
      "answered_after" and "loss_pct" for the echoes sent after T.
  ping_gap.py --loss LOG
      Loss percentage from ping's closing statistics line (100 if absent).
"""
import json
import re
import sys

LINE = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+).*time=([0-9.]+) ms")


def seq_gap(path, interval):
    seqs = []
    for line in open(path, errors="replace"):
        m = re.search(r"icmp_seq=(\d+)", line)
        if m and "bytes from" in line:
            seqs.append(int(m.group(1)))
    if len(seqs) < 2:
        return "n/a"
    seqs.sort()
    gap = max(b - a for a, b in zip(seqs, seqs[1:]))
    return f"{gap * interval:.2f}"


def replies(path):
    out = []
    for line in open(path, errors="replace"):
        m = LINE.search(line)
        if m and "bytes from" in line:
            ts, seq, rtt = float(m.group(1)), int(m.group(2)), float(m.group(3)) / 1000
            out.append((ts, seq, ts - rtt))
    return out


def event(path, t):
    rs = replies(path)
    after = [r for r in rs if r[2] >= t]
    before = [r for r in rs if r[2] < t]
    resumed = round(min(r[0] for r in after) - t, 3) if after else None
    window = sorted(r[0] for r in rs if r[0] >= t - 1)
    gap = round(max((b - a for a, b in zip(window, window[1:])), default=0), 3)
    # Echoes sent after T: every sequence number after the last one sent before T.
    last_before = max((r[1] for r in before), default=0)
    last_seq = max((r[1] for r in rs), default=0)
    sent_after = max(0, last_seq - last_before)
    answered = len({r[1] for r in after})
    loss = round(100 * (1 - answered / sent_after), 1) if sent_after else None
    return {"resumed_s": resumed, "gap_s": gap, "sent_after": sent_after,
            "answered_after": answered, "loss_pct": loss}


def loss(path):
    for line in open(path, errors="replace"):
        m = re.search(r"([0-9.]+)% packet loss", line)
        if m:
            return m.group(1)
    return "100"


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--event":
        print(json.dumps(event(args[2], float(args[1]))))
    elif args and args[0] == "--loss":
        print(loss(args[1]))
    else:
        print(seq_gap(args[0], float(args[1]) if len(args) > 1 else 0.05))
