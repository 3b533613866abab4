#!/usr/bin/env python3
"""Evidence from the e2e packet captures (pcap files written by tcpdump -w).

  capture.py egress PCAP --port P --stun IP:PORT --derp IP:PORT --peer IP:PORT ...
                    [--after T] [--kernel-replies-ok]
      Classifies every IP packet the node sent (the capture is taken with -Q out on
      the node's outside interface) against the single-egress promise: UDP only from
      the one underlay port to a peer candidate or a STUN server of the DERP map, TCP
      only to a DERP node of the map, nothing else. Prints one JSON object (captured,
      allowed, per-class counts, source ports, the first violations) and exits 1 on
      any violation. --after T looks only at packets later than unix time T (the
      "nothing sent after" check); --kernel-replies-ok lets the kernel's own answers
      to inbound packets for a closed socket (ICMP unreachable, a bare TCP RST) pass
      and counts them apart: no process sends those.

  capture.py wireguard PCAP
      Prints "<src ip>:<port> <dst ip>:<port> <payload hex>" for every captured UDP
      datagram that is a WireGuard message, for replaying.

The pcap records are decoded here with struct (Ethernet or Linux cooked link types,
IPv4/IPv6, UDP/TCP headers only) so the check does not depend on tcpdump's
protocol printers, which change with its version.
"""
import argparse
import ipaddress
import json
import struct
import sys

LINK_ETHERNET, LINK_SLL, LINK_SLL2 = 1, 113, 276


def records(path):
    with open(path, "rb") as f:
        head = f.read(24)
        if len(head) < 24:
            return
        magic = struct.unpack("<I", head[:4])[0]
        if magic in (0xA1B2C3D4, 0xA1B23C4D):
            endian = "<"
        elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
            endian = ">"
        else:
            raise SystemExit(f"{path}: not a pcap file")
        nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
        link = struct.unpack(endian + "I", head[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            sec, frac, caplen, _ = struct.unpack(endian + "IIII", rec)
            data = f.read(caplen)
            yield sec + frac / (1e9 if nano else 1e6), link, data


def network_layer(link, frame):
    """(ethertype, payload) of a link-layer frame, or None."""
    if link == LINK_ETHERNET and len(frame) >= 14:
        etype, off = struct.unpack(">H", frame[12:14])[0], 14
        if etype == 0x8100 and len(frame) >= 18:
            etype, off = struct.unpack(">H", frame[16:18])[0], 18
        return etype, frame[off:]
    if link == LINK_SLL and len(frame) >= 16:
        return struct.unpack(">H", frame[14:16])[0], frame[16:]
    if link == LINK_SLL2 and len(frame) >= 20:
        return struct.unpack(">H", frame[0:2])[0], frame[20:]
    return None


def decode(link, frame):
    """A dict describing the packet: family, proto, src, dst, sport, dport, flags..."""
    nl = network_layer(link, frame)
    if nl is None:
        return {"family": "link", "proto": "?"}
    etype, p = nl
    if etype == 0x0806:
        return {"family": "arp", "proto": "arp"}
    if etype == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0x0F) * 4
        proto = p[9]
        pkt = {"family": "ip4", "src": str(ipaddress.IPv4Address(p[12:16])),
               "dst": str(ipaddress.IPv4Address(p[16:20])), "l4": p[ihl:], "proto_num": proto}
    elif etype == 0x86DD and len(p) >= 40:
        proto, l4 = p[6], p[40:]
        # Hop-by-hop, routing and destination options headers (MLD reports carry one).
        while proto in (0, 43, 60) and len(l4) >= 8:
            proto, l4 = l4[0], l4[(l4[1] + 1) * 8:]
        pkt = {"family": "ip6", "src": str(ipaddress.IPv6Address(p[8:24])),
               "dst": str(ipaddress.IPv6Address(p[24:40])), "l4": l4, "proto_num": proto}
    else:
        return {"family": f"ethertype-{etype:#06x}", "proto": "?"}
    l4 = pkt.pop("l4")
    proto = pkt.pop("proto_num")
    if proto == 17 and len(l4) >= 8:
        pkt.update(proto="udp", sport=struct.unpack(">H", l4[0:2])[0],
                   dport=struct.unpack(">H", l4[2:4])[0], payload=l4[8:])
    elif proto == 6 and len(l4) >= 20:
        off = (l4[12] >> 4) * 4
        pkt.update(proto="tcp", sport=struct.unpack(">H", l4[0:2])[0],
                   dport=struct.unpack(">H", l4[2:4])[0], flags=l4[13], payload_len=len(l4) - off)
    elif proto == 1 and len(l4) >= 2:
        pkt.update(proto="icmp", icmp_type=l4[0])
    elif proto == 58 and len(l4) >= 2:
        pkt.update(proto="icmp6", icmp_type=l4[0])
    else:
        pkt.update(proto=f"ip-proto-{proto}")
    return pkt


def endpoint(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def describe(pkt):
    if "sport" in pkt:
        return f"{pkt['family']} {pkt['proto']} {pkt['src']}:{pkt['sport']} > {pkt['dst']}:{pkt['dport']}"
    if "src" in pkt:
        return f"{pkt['family']} {pkt['proto']} {pkt['src']} > {pkt['dst']} type {pkt.get('icmp_type')}"
    return f"{pkt['family']} {pkt['proto']}"


def classify(pkt, a):
    """The class of one sent packet; the class names that start with "!" break the promise."""
    proto = pkt["proto"]
    if pkt["family"] == "arp":
        return "arp"  # link-layer resolution of the next hop, not a packet to anyone
    if pkt["family"] == "ip6" and proto == "icmp6" and (pkt["src"].startswith("fe80:") or pkt["src"] == "::") \
            and pkt.get("icmp_type") in (133, 135, 136, 143):
        return "kernel-ipv6-nd"  # router/neighbour discovery and MLD of the kernel itself
    if pkt["family"] == "ip6":
        return "!ipv6"
    if proto == "udp":
        if pkt["sport"] != a.port:
            return "!udp-other-socket"
        dst = (pkt["dst"], pkt["dport"])
        if dst in a.stun:
            return "udp-stun"
        if dst in a.peer:
            return "udp-peer"
        if pkt["dport"] == 53:
            return "!dns"
        return "!udp-other-destination"
    if proto == "tcp":
        if (pkt["dst"], pkt["dport"]) in a.derp:
            bare_rst = pkt["flags"] & 0x04 and pkt["payload_len"] == 0
            return "kernel-tcp-rst" if bare_rst and a.kernel_replies_ok else "tcp-derp"
        return "!tcp-other-destination"
    if proto == "icmp" and pkt.get("icmp_type") == 3 and a.kernel_replies_ok:
        return "kernel-icmp-unreachable"
    return "!" + proto


def cmd_egress(a):
    a.stun = {endpoint(s) for s in a.stun}
    a.derp = {endpoint(s) for s in a.derp}
    a.peer = {endpoint(s) for s in a.peer}
    classes, sports, violations = {}, set(), []
    captured = last = 0
    for ts, link, frame in records(a.pcap):
        if a.after is not None and ts <= a.after:
            continue
        pkt = decode(link, frame)
        if pkt["family"] == "arp":
            continue  # not IP; listed apart so the counts are IP packets only
        captured += 1
        last = max(last, ts)
        c = classify(pkt, a)
        classes[c] = classes.get(c, 0) + 1
        if pkt["proto"] == "udp":
            sports.add(pkt["sport"])
        if c.startswith("!") and len(violations) < 10:
            violations.append(f"{ts:.6f} {c[1:]}: {describe(pkt)}")
    allowed = sum(n for c, n in classes.items() if not c.startswith("!"))
    out = {"captured": captured, "allowed": allowed, "classes": classes,
           "udp_source_ports": sorted(sports), "violations": violations,
           "last_packet": round(last, 6) if last else None}
    print(json.dumps(out))
    return 0 if allowed == captured else 1


def cmd_wireguard(a):
    for _, link, frame in records(a.pcap):
        pkt = decode(link, frame)
        if pkt.get("proto") != "udp":
            continue
        p = pkt["payload"]
        if len(p) >= 4 and p[0] in (1, 2, 3, 4) and p[1:4] == b"\0\0\0":
            print(f"{pkt['src']}:{pkt['sport']} {pkt['dst']}:{pkt['dport']} {p.hex()}")
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("egress")
    e.add_argument("pcap")
    e.add_argument("--port", type=int, required=True, help="the node's underlay UDP port")
    e.add_argument("--stun", action="append", default=[], help="STUN server IP:PORT of the DERP map")
    e.add_argument("--derp", action="append", default=[], help="DERP node IP:PORT of the DERP map")
    e.add_argument("--peer", action="append", default=[], help="peer candidate IP:PORT")
    e.add_argument("--after", type=float)
    e.add_argument("--kernel-replies-ok", action="store_true")
    w = sub.add_parser("wireguard")
    w.add_argument("pcap")
    a = ap.parse_args()
    sys.exit(cmd_egress(a) if a.cmd == "egress" else cmd_wireguard(a))


if __name__ == "__main__":
    main()
