#!/usr/bin/env python3
"""The stranger of scenario 8: floods a node's UDP port for a while with six kinds of
hostile datagram, interleaved, and prints how many of each it sent (one JSON object).

  hostile_flood.py --to IP:PORT --seconds S --pps N --wireguard FILE \
                   --disco-unknown FILE --disco-wrong-node FILE

  random               random bytes of random length (0..1400)
  wg_truncated         captured WireGuard messages cut short (data messages to the
                       node keep >= 32 bytes so they still look like data)
  wg_replayed          captured WireGuard messages of the pair, sent again verbatim
  disco_unknown_key    sealed disco pings from a disco key in no netmap
  disco_wrong_node     sealed disco pings from the peer's disco key that claim a node
                       key that is not the peer's
  stun_unknown_tx      well-formed STUN binding responses for transactions never sent

FILE formats: --wireguard takes the output of `capture.py wireguard`; the disco files
hold one datagram in hex per line. The *_to_node counts are the WireGuard messages
that were addressed to the node in the capture (their receiver index is the node's;
an initiation to the node was already consumed, so its replay is a replay).
"""
import argparse
import json
import os
import random
import socket
import struct
import time

STUN_COOKIE = 0x2112A442


def stun_response(rng):
    """A binding success response with an XOR-MAPPED-ADDRESS for a random txid."""
    ip = bytes(rng.randrange(256) for _ in range(4))
    port = rng.randrange(1024, 65536)
    xip = bytes(x ^ y for x, y in zip(ip, struct.pack(">I", STUN_COOKIE)))
    attr = struct.pack(">HHBBH", 0x0020, 8, 0, 1, port ^ (STUN_COOKIE >> 16)) + xip
    return struct.pack(">HHI", 0x0101, len(attr), STUN_COOKIE) + os.urandom(12) + attr


def load_lines(path):
    with open(path) as f:
        return [bytes.fromhex(line.split()[-1]) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--to", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--pps", type=int, default=5000)
    ap.add_argument("--wireguard", required=True)
    ap.add_argument("--disco-unknown", required=True)
    ap.add_argument("--disco-wrong-node", required=True)
    a = ap.parse_args()
    host, _, port = a.to.rpartition(":")
    target = (host, int(port))

    wg_all = []
    with open(a.wireguard) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 3:
                continue
            pkt = bytes.fromhex(parts[2])
            to_node = parts[1].rpartition(":")[0] == host
            wg_all.append((pkt, to_node))
    if not wg_all:
        raise SystemExit("no WireGuard messages to replay")
    disco_unknown = load_lines(a.disco_unknown)
    disco_wrong = load_lines(a.disco_wrong_node)
    rng = random.Random(9)

    sent = {k: 0 for k in ("random", "wg_truncated", "wg_truncated_data_to_node", "wg_replayed",
                           "wg_replayed_data_to_node", "wg_replayed_init_to_node", "disco_unknown_key", "disco_wrong_node",
                           "stun_unknown_tx")}
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)

    def send(kind, data, to_node_kind=None):
        try:
            s.sendto(data, target)
        except OSError:
            return  # a full send buffer: the datagram was not sent, so it is not counted
        sent[kind] += 1
        if to_node_kind:
            sent[to_node_kind] += 1

    # One round is one datagram of each kind; rounds are paced in 10 ms ticks.
    per_tick = max(1, a.pps // 6 // 100)
    start = time.monotonic()
    tick = 0
    i = 0
    while time.monotonic() - start < a.seconds:
        for _ in range(per_tick):
            send("random", os.urandom(rng.randrange(0, 1401)))
            pkt, to_node = wg_all[i % len(wg_all)]
            is_data = pkt[0] == 4
            data_to_node = is_data and to_node
            replay_kind = "wg_replayed_data_to_node" if data_to_node else None
            if pkt[0] == 1 and to_node:
                replay_kind = "wg_replayed_init_to_node"
            send("wg_replayed", pkt, replay_kind)
            low = 32 if is_data else 4
            if len(pkt) > low + 1:
                send("wg_truncated", pkt[: rng.randrange(low, len(pkt))],
                     "wg_truncated_data_to_node" if data_to_node else None)
            send("disco_unknown_key", disco_unknown[i % len(disco_unknown)])
            send("disco_wrong_node", disco_wrong[i % len(disco_wrong)])
            send("stun_unknown_tx", stun_response(rng))
            i += 1
        tick += 1
        delay = start + tick * 0.01 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    total = sum(v for k, v in sent.items() if not k.endswith("_to_node"))
    print(json.dumps({"seconds": round(elapsed, 2), "total": total, "pps": round(total / elapsed),
                      "sent": sent}))


if __name__ == "__main__":
    main()
