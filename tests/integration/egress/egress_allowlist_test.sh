#!/usr/bin/env bash
# The kernel egress allowlist of the underlay socket, proved against a live,
# sandboxed netproc. Two nodes, each in its own network namespace joined
# by a veth pair, reach each other directly. egress_inject then plays a compromised
# netproc: by ptrace syscall injection it makes node a's netproc call sendto() on
# its underlay socket to 127.0.0.1:53 (the host's resolver: a DNS leak by proxy) and
# to 198.18.250.1 (routed, but in no netmap, DERP map or registration), and makes it
# call sendmsg() to b's approved endpoint from a's approved source address with an
# IP_PKTINFO control message naming another interface (a second veth in a's namespace),
# which would carry an approved destination and source out of another interface.
#   * control run, egress_allowlist = "unenforced": all three sends succeed and the
#     datagrams are captured (the third on the second interface): the injection works,
#     and nothing in netproc stops it;
#   * default run (nftables): all three fail with EPERM, the captures are empty, the
#     kernel's drop counter shows them (`tailwarden metrics`), the direct path to the
#     peer keeps working, `tailwarden audit` reports the allowlist, and the table is
#     gone once the broker stops.
# Needs root; exits 77 (skipped) otherwise. Env: BIN (build/*/bin).
set -u
. "$(dirname "$0")/../../lib/check.sh"
command -v tcpdump >/dev/null && command -v nft >/dev/null || { echo "SKIP: tcpdump/nft missing"; exit 77; }
tw_check_init egress tailwardend tailwarden tailwarden-netproc tailwarden-dataproc egress_inject
tw_child_accounts

NSA="tw15ea$$" NSB="tw15eb$$"
NSS+=("$NSA" "$NSB")
A_IP=198.18.15.1 B_IP=198.18.15.2 UNLISTED=198.18.250.1
cli() { local n=$1; shift; "$BIN/tailwarden" --socket "$DIR/$n/admin.sock" "$@"; }

ip netns add "$NSA" && ip netns add "$NSB" || exit 1
ip link add "tw15a$$" netns "$NSA" type veth peer name "tw15b$$" netns "$NSB" || exit 1
ip -n "$NSA" link set lo up
ip -n "$NSB" link set lo up
ip -n "$NSA" addr add "$A_IP/24" dev "tw15a$$"
ip -n "$NSB" addr add "$B_IP/24" dev "tw15b$$"
ip -n "$NSA" link set "tw15a$$" up
ip -n "$NSB" link set "tw15b$$" up
# The unlisted address is routable (through b), so only a filter can stop the send.
ip -n "$NSA" route add "$UNLISTED/32" via "$B_IP"
# A second interface in a's namespace (a second veth pair to b), for the IP_PKTINFO
# interface-index injection: no route to b's underlay address uses it.
DUMMY="tw15x$$"
ip link add "$DUMMY" netns "$NSA" type veth peer name "tw15y$$" netns "$NSB" || exit 1
ip -n "$NSA" addr add 198.18.16.1/24 dev "$DUMMY"
ip -n "$NSB" addr add 198.18.16.2/24 dev "tw15y$$"
ip -n "$NSA" link set "$DUMMY" up
ip -n "$NSB" link set "tw15y$$" up
DUMMY_IDX=$(ip netns exec "$NSA" cat "/sys/class/net/$DUMMY/ifindex")

for n in a b; do
  mkdir -p "$DIR/$n"
  "$BIN/tailwarden" keygen -o "$DIR/$n/keys" 2>"$DIR/$n/pub" >/dev/null || exit 1
done
tw_pair_netmap a b 100.64.15.1 100.64.15.2 "$B_IP" >"$DIR/a/netmap.json"
tw_pair_netmap b a 100.64.15.2 100.64.15.1 "$A_IP" >"$DIR/b/netmap.json"

start_node() {  # name ns mode
  cat >"$DIR/$1/config.toml" <<TOML
state_dir = "$DIR/$1"
key_file = "$DIR/$1/keys"
netmap_file = "$DIR/$1/netmap.json"
listen_port = 41641
admin_socket = "$DIR/$1/admin.sock"
child_user = "twtest"
egress_allowlist = "$3"
[tun]
enabled = false
TOML
  ip netns exec "$2" "$BIN/tailwardend" --config "$DIR/$1/config.toml" >>"$DIR/$1/log" 2>&1 &
  PIDS+=($!)
  eval "PID_$1=$!"
}
stop_node() {  # name
  local pid
  eval "pid=\$PID_$1"
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
}
direct() { cli a ping b -c 1 --json 2>/dev/null | grep -q '"via":"direct"'; }
netproc_pid() {
  cli a status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["self"]["pids"]["netproc"])'
}
# capture FILE: starts tcpdump in a's namespace for the two forbidden destinations.
capture() {
  ip netns exec "$NSA" tcpdump -i any -n -U -w "$1" "udp and (dst host $UNLISTED or dst port 53)" 2>"$1.err" &
  CAP=$!
  PIDS+=($CAP)
  wait_for 10 grep -qs "listening on" "$1.err" || fail "tcpdump did not start: $(cat "$1.err")"
  # Anything the underlay port sends out of the second interface.
  ip netns exec "$NSA" tcpdump -i "$DUMMY" -n -U -w "$1.dummy" "udp and src port 41641" 2>"$1.dummy.err" &
  CAP2=$!
  PIDS+=($CAP2)
  wait_for 10 grep -qs "listening on" "$1.dummy.err" || fail "tcpdump did not start: $(cat "$1.dummy.err")"
}
captured() {  # FILE: sets CAPTURED (both captures) and DUMMY_PACKETS (second interface)
  sleep 1
  kill -INT "$CAP" "$CAP2" 2>/dev/null
  wait "$CAP" "$CAP2" 2>/dev/null
  DUMMY_PACKETS=$(tcpdump -r "$1.dummy" -n 2>/dev/null | wc -l)
  CAPTURED=$(($(tcpdump -r "$1" -n 2>/dev/null | wc -l) + DUMMY_PACKETS))
}

run_phase() {  # mode
  local mode=$1
  start_node a "$NSA" "$mode"
  start_node b "$NSB" "$mode"
  wait_for 30 direct || { fail "[$mode] no direct path a->b"; tail -20 "$DIR/a/log"; return 1; }
  ok "[$mode] a reaches b directly"
  local np
  np=$(netproc_pid)
  [ "${np:-0}" -gt 0 ] || { fail "[$mode] no netproc pid"; return 1; }
  capture "$DIR/$mode.pcap"
  ip netns exec "$NSA" "$BIN/egress_inject" "$np" 41641 127.0.0.1:53 "$UNLISTED:41641" \
    "$B_IP:41641,pktinfo=$DUMMY_IDX/$A_IP" >"$DIR/$mode.inject" 2>&1 ||
    fail "[$mode] injection failed: $(cat "$DIR/$mode.inject")"
  local n
  captured "$DIR/$mode.pcap"
  n=$CAPTURED
  echo "[$mode] injected: $(tr '\n' ';' <"$DIR/$mode.inject") captured: $n"
  kill -0 "$np" 2>/dev/null || fail "[$mode] netproc died after the injection"
  if [ "$mode" = unenforced ]; then
    [ "$(grep -c ' sent 15$' "$DIR/$mode.inject")" -eq 3 ] && ok "[unenforced] all three injected sends succeed" ||
      fail "[unenforced] expected the three sends to succeed: $(cat "$DIR/$mode.inject")"
    [ "$n" -ge 3 ] && ok "[unenforced] the datagrams are on the wire ($n captured)" ||
      fail "[unenforced] expected 3 captured datagrams, got $n"
    [ "$DUMMY_PACKETS" -ge 1 ] && ok "[unenforced] IP_PKTINFO sent b's datagram out of the second interface" ||
      fail "[unenforced] nothing captured on the second interface"
    cli a audit --json | python3 -c '
import json,sys
rows={r["check"]:r for r in json.load(sys.stdin)["rows"]}
r=rows["underlay egress allowlist enforced by the kernel"]
sys.exit(0 if not r["pass"] and "unenforced" in r["detail"] else 1)' &&
      ok "[unenforced] audit shows the allowlist as not enforced" || fail "[unenforced] audit row"
  else
    [ "$(grep -c ' errno EPERM$' "$DIR/$mode.inject")" -eq 3 ] && ok "[nftables] all three injected sends fail with EPERM" ||
      fail "[nftables] expected EPERM three times: $(cat "$DIR/$mode.inject")"
    [ "$n" -eq 0 ] && ok "[nftables] nothing on the wire" || fail "[nftables] $n forbidden datagrams captured"
    grep -q ",pktinfo=.* errno EPERM$" "$DIR/$mode.inject" && [ "$DUMMY_PACKETS" -eq 0 ] &&
      ok "[nftables] IP_PKTINFO naming another interface: refused, nothing on that interface" ||
      fail "[nftables] IP_PKTINFO interface index: $(grep pktinfo "$DIR/$mode.inject"), $DUMMY_PACKETS on the second interface"
    direct && ok "[nftables] the direct path to b still works after the injection" ||
      fail "[nftables] direct path lost after the injection"
    local drops
    drops=$(cli a metrics | sed -n 's/^tailwarden_egress_kernel_dropped_total \([0-9]*\)$/\1/p' | head -1)
    [ "${drops:-0}" -ge 3 ] && ok "[nftables] metrics: egress_kernel_dropped_total $drops" ||
      fail "[nftables] egress_kernel_dropped_total is '${drops:-}'"
    cli a audit --json | python3 -c '
import json,sys
rows={r["check"]:r for r in json.load(sys.stdin)["rows"]}
r=rows["underlay egress allowlist enforced by the kernel"]
sys.exit(0 if r["pass"] and "nftables" in r["detail"] else 1)' &&
      ok "[nftables] audit reports the kernel allowlist" || fail "[nftables] audit row"
    cli a audit --json | python3 -c '
import json,sys
rows={r["check"]:r for r in json.load(sys.stdin)["rows"]}
sys.exit(0 if rows["not dumpable (no core file with the keys)"]["pass"] else 1)' &&
      ok "[nftables] audit: the broker is not dumpable" || fail "[nftables] broker dumpable"
    local table="tailwarden_$PID_a"
    ip netns exec "$NSA" nft list table inet "$table" >"$DIR/table.txt" 2>&1 &&
      grep -q "$B_IP . 41641 . $A_IP . \"tw15a$$\"" "$DIR/table.txt" &&
      ok "[nftables] table $table allows b's endpoint from a's address through a's veth only" ||
      fail "[nftables] table: $(cat "$DIR/table.txt")"
  fi
  stop_node a
  stop_node b
  if [ "$mode" = nftables ]; then
    ip netns exec "$NSA" nft list tables | grep -q tailwarden_ && fail "[nftables] table left after stop" ||
      ok "[nftables] the broker removes its table when it stops"
  fi
}

run_phase unenforced
run_phase nftables

tw_finish
