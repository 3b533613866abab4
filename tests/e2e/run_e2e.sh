#!/usr/bin/env bash
# End-to-end proof in network namespaces. Each scenario builds its
# topology from scratch, runs real nodes (tailwardend + sandboxed children), a real
# relay (tailwarden-derper), a real STUN server (coturn) and, for interop, a real
# wireguard-go peer; it prints what it measured and fails on a broken promise.
#   BIN=<dir with the binaries> run_e2e.sh [scenario ...]
# Scenarios: direct-lan direct-nat failover hard-nat udp-blocked interop linkchange
#            egress hostile operator restart
# Knobs (environment): E2E_FIRST_LIMIT (s, default 0.5), E2E_DIRECT_LIMIT (s, default 5),
#   E2E_RESTART_LIMIT (s, default 1), E2E_HOSTILE_SECONDS (default 30),
#   E2E_HOSTILE_PPS (default 6000), E2E_HOSTILE_RSS_KB (default 1024),
#   E2E_SUMMARY_JSON (default: $BIN/../e2e-summary.json, i.e. in the build directory).
# At the end: a table (scenario, PASS/FAIL, key figure) and the same as JSON, with
# every figure a scenario recorded, so runs can be compared.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: e2e needs root"; exit 0; }
for tool in turnserver iperf3 nft wireguard-go wg tcpdump; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/install-deps)"; exit 1; }
done

source "$HERE/topology.sh"
source "$HERE/node.sh"

RESULTS=()
FAILED=0
SCEN_FAILED=0
SUMMARY_TSV=$(mktemp /tmp/tw-e2e-summary-XXXXXX)
SUMMARY_JSON=${E2E_SUMMARY_JSON:-$BIN/../e2e-summary.json}
note() { RESULTS+=("$1"); echo "   $1"; }
fail() { echo "FAIL [$SCEN]: $*"; FAILED=1; SCEN_FAILED=1; return 1; }
# Numbers and JSON: tests/e2e/e2e.py (one helper module, no inline Python).
e2e_py() { python3 "$HERE/e2e.py" "$@"; }
le() { e2e_py le "$1" "$2" 2>/dev/null; }
now() { date +%s.%N; }
since() { e2e_py since "$1"; }
# figure KEY VALUE: a measured value of this scenario, for the JSON summary.
figure() { printf '%s\tfigure\t%s\t%s\n' "$SCEN" "$1" "$2" >>"$SUMMARY_TSV"; }
# key_figure TEXT: the one-line figure of this scenario in the summary table.
key_figure() { printf '%s\tkey\t%s\n' "$SCEN" "$1" >>"$SUMMARY_TSV"; }
# jget JSON EXPR: a field of a JSON object (EXPR is Python over j).
jget() { e2e_py jexpr "$1" "$2"; }

# Fresh topology + infra + both nodes; $1 topology kind, $2/$3 optional static endpoints.
setup() {
  TOPO_ID=e$RANDOM
  NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
  NS_RA="tw${TOPO_ID}-ra" NS_RB="tw${TOPO_ID}-rb" NS_X="tw${TOPO_ID}-x"
  topo_up "$1" || return 1
  e2e_init
  # Single-egress evidence: everything each node sends on its outside interface, from
  # before the node starts until the scenario stops the capture.
  if [ "${E2E_CAPTURE_NODES:-0}" = 1 ]; then
    e2e_capture_start egress_a "$NS_A" eth0 out "ip or ip6" || return 1
    e2e_capture_start egress_b "$NS_B" eth0 out "ip or ip6" || return 1
  fi
  e2e_start_infra
  e2e_write_netmaps "${2:-[]}" "${3:-[]}"
  T_START=$(date +%s.%N)
  e2e_start_node a
  e2e_start_node b
  for n in a b; do
    for _ in $(seq 200); do [ -S "$E2E_DIR/$n/admin.sock" ] && break; sleep 0.02; done
    [ -S "$E2E_DIR/$n/admin.sock" ] || { fail "node $n did not start: $(tail -3 "$E2E_DIR/$n/log")"; return 1; }
  done
  # Ready means both sandboxed children answer status.
  for n in a b; do
    for _ in $(seq 200); do
      e2e_cli "$n" status --json 2>/dev/null | grep -q '"children_running": true' && break
      sleep 0.02
    done
  done
  T_READY=$(now)
}

# No private key may appear in any log, in hex or base64.
check_no_secrets() {
  [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ] || return 0
  local logs
  logs=$(cat "$E2E_DIR"/*/log "$E2E_DIR"/*.log 2>/dev/null)
  for k in $(sed -n 's/.*privkey:\([0-9a-f]\{64\}\).*/\1/p' "$E2E_DIR"/*/keys 2>/dev/null); do
    local b64
    b64=$(e2e_py b64 "$k")
    if grep -qiF -e "$k" -e "$b64" <<<"$logs"; then
      fail "a private key appears in the logs"
    fi
  done
  SECRETS_CHECKED=$((${SECRETS_CHECKED:-0} + 1))
}

teardown() {
  check_no_secrets
  if [ "$SCEN_FAILED" = 1 ] && [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ]; then
    for n in a b; do echo "--- log of $n"; tail -25 "$E2E_DIR/$n/log" 2>/dev/null; done
  fi
  e2e_cleanup
  rm -rf "${E2E_DIR:-/nonexistent}"
}
tw_on_exit 'teardown; rm -f "$SUMMARY_TSV"'

# Sends traffic (discovery starts on demand) until a's path to b is direct.
bring_up_direct() {
  ip netns exec "$NS_A" ping -c 100 -i 0.2 -W 1 "$TAILNET_B" >/dev/null 2>&1 &
  local p=$!
  local t
  t=$(e2e_wait_path a b direct 20)
  local rc=$?
  kill $p 2>/dev/null
  wait $p 2>/dev/null
  return $rc
}

ping_ok() { ip netns exec "$1" ping -c "${3:-3}" -i 0.5 -W 3 "$2" >/dev/null 2>&1; }

# First reply of a ping stream (ping -D log $1), as unix time; waits up to $2 s.
first_reply() {
  local t=""
  for _ in $(seq $(($2 * 50))); do
    t=$(sed -n 's/^\[\([0-9.]*\)\] .*bytes from.*/\1/p' "$1" | head -1)
    [ -n "$t" ] && break
    sleep 0.02
  done
  echo "$t"
}

scenario_direct() {
  local kind=$1
  local first_limit=${E2E_FIRST_LIMIT:-0.5} direct_limit=${E2E_DIRECT_LIMIT:-5}
  setup "$kind" || return 1
  # A stream from the moment both nodes are ready: its first reply is the first packet
  # through (via the relay if no direct path exists yet). It keeps traffic flowing both
  # ways while discovery runs (discovery is on demand on each side).
  ip netns exec "$NS_A" ping -D -i 0.05 -c 400 -W 1 "$TAILNET_B" >"$E2E_DIR/first.ping" 2>&1 &
  local pinger=$!
  local first
  first=$(first_reply "$E2E_DIR/first.ping" 8)
  [ -n "$first" ] || { kill $pinger; fail "no packet arrived within 8 s of the nodes being ready"; return 1; }
  local first_s
  first_s=$(e2e_py calc .3f "$first - $T_READY")
  figure first_packet_s "$first_s"
  figure ready_after_start_s "$(e2e_py calc .3f "$T_READY - $T_START")"
  note "$kind: first packet answered ${first_s}s after both nodes were ready (issue: <= $first_limit s)"
  le "$first_s" "$first_limit" || fail "first packet took ${first_s}s (issue: within $first_limit s)"
  local ta tb
  ta=$(e2e_wait_path a b direct 20) || { kill $pinger; fail "a never saw b direct within 20 s"; return 1; }
  tb=$(e2e_wait_path b a direct 20) || { kill $pinger; fail "b never saw a direct within 20 s"; return 1; }
  local direct_s
  direct_s=$(since "$T_START")
  kill $pinger 2>/dev/null
  wait $pinger 2>/dev/null
  figure direct_s "$direct_s"
  figure direct_after_ready_s "$(since "$T_READY")"
  note "$kind: both direct ${direct_s}s after start (issue: <= $direct_limit s; aim $([ $kind = lan ] && echo 0.5 || echo 1) s); a saw b direct ${ta}s after the first reply, b saw a ${tb}s later"
  le "$direct_s" "$direct_limit" || fail "both direct only ${direct_s}s after start (issue: within $direct_limit s)"
  ping_ok "$NS_A" "$TAILNET_B" 5 || fail "ping over the direct path failed" || return 1
  ip netns exec "$NS_B" iperf3 -s -1 -B "$TAILNET_B" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.3
  local mbit
  mbit=$(ip netns exec "$NS_A" iperf3 -c "$TAILNET_B" -t 2 -J 2>/dev/null |
    e2e_py json end.sum_received.bits_per_second 2>/dev/null)
  [ -z "$mbit" ] || mbit=$(e2e_py calc .0f "$mbit / 1e6")
  kill $srv 2>/dev/null
  key_figure "first packet ${first_s}s, direct ${direct_s}s, ${mbit:-?} Mbit/s"
  [ -n "$mbit" ] || fail "iperf3 over the tunnel failed" || return 1
  figure iperf3_mbit "$mbit"
  note "$kind: iperf3 through the tunnel ${mbit} Mbit/s"
}

scenario_failover() {
  setup easy-nat || return 1
  bring_up_direct || fail "no direct path to start from" || return 1
  ip netns exec "$NS_A" ping -i 0.05 -W 1 "$TAILNET_B" >"$E2E_DIR/fo.ping" 2>&1 &
  local pinger=$!
  sleep 1
  topo_block_udp
  local to_derp
  to_derp=$(e2e_wait_path a b derp 15) || fail "path did not turn to DERP after blocking UDP" || return 1
  sleep 4
  local alive_before
  alive_before=$(grep -c 'bytes from' "$E2E_DIR/fo.ping")
  sleep 1
  [ "$(grep -c 'bytes from' "$E2E_DIR/fo.ping")" -gt "$alive_before" ] ||
    fail "no packets arrive while relayed" || return 1
  topo_unblock_udp
  local back
  back=$(e2e_wait_path a b direct 20) || fail "path did not return to direct within 20 s" || return 1
  kill $pinger 2>/dev/null
  wait $pinger 2>/dev/null
  local gap
  gap=$(python3 "$HERE/ping_gap.py" "$E2E_DIR/fo.ping" 0.05)
  note "failover: DERP after ${to_derp}s, largest gap ${gap}s (aim <= 3), direct again after ${back}s (aim <= 5)"
  figure to_derp_s "$to_derp"
  figure gap_s "$gap"
  figure back_to_direct_s "$back"
  key_figure "gap ${gap}s, direct again ${back}s"
  le "$gap" 10 || fail "failover gap ${gap}s is longer than 10 s"
}

scenario_relay_only() {
  local kind=$1
  setup "$kind" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 12 || fail "$kind: traffic does not flow via the relay" || return 1
  sleep 6
  local p
  p=$(e2e_path a b)
  [ "$p" = derp ] || fail "$kind: expected the path to stay on DERP, got $p" || return 1
  ping_ok "$NS_B" "$TAILNET_A" 3 || fail "$kind: reverse traffic failed" || return 1
  note "$kind: relay only, traffic flows both ways"
  key_figure "path derp, traffic both ways"
}

scenario_interop() {
  TOPO_ID=e$RANDOM
  NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
  topo_up lan || return 1
  e2e_init
  e2e_start_infra
  # Node b is a plain wireguard-go peer: wireguard_only in a's netmap.
  local bkey bpub apub
  bkey=$(grep node_private "$E2E_DIR/b/keys" | sed 's/.*privkey:\([0-9a-f]*\)".*/\1/')
  bpub=$(grep node_key "$E2E_DIR/b/pub" | sed 's/.*nodekey://')
  apub=$(grep node_key "$E2E_DIR/a/pub" | sed 's/.*nodekey://')
  cat >"$E2E_DIR/a/netmap.json" <<JSON
{"self":{"name":"a","node_key":"nodekey:$apub","addresses":["$TAILNET_A/32"],"home_derp":900},
 "peers":[{"name":"wg","node_key":"nodekey:$bpub","wireguard_only":true,"addresses":["$TAILNET_B/32"],
   "endpoints":["198.18.0.3:51820"]}],
 "derp_map":$(_derp_map)}
JSON
  local ifn="twg${TOPO_ID:1:8}"
  WG_PROCESS_FOREGROUND=1 ip netns exec "$NS_B" wireguard-go -f "$ifn" >"$E2E_DIR/wg.log" 2>&1 &
  E2E_PIDS+=($!)
  for _ in $(seq 50); do ip netns exec "$NS_B" ip link show "$ifn" >/dev/null 2>&1 && break; sleep 0.1; done
  e2e_py b64 "$bkey" >"$E2E_DIR/wg.key"
  local apub64
  apub64=$(e2e_py b64 "$apub")
  ip netns exec "$NS_B" wg set "$ifn" listen-port 51820 private-key "$E2E_DIR/wg.key" \
    peer "$apub64" allowed-ips "$TAILNET_A/32" endpoint 198.18.0.2:41641
  ip netns exec "$NS_B" ip addr add "$TAILNET_B/32" dev "$ifn"
  ip netns exec "$NS_B" ip link set "$ifn" up
  ip netns exec "$NS_B" ip route add "$TAILNET_A/32" dev "$ifn"
  e2e_start_node a
  for _ in $(seq 200); do [ -S "$E2E_DIR/a/admin.sock" ] && break; sleep 0.02; done
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "interop: tailwarden -> wireguard-go ping failed" || return 1
  ping_ok "$NS_B" "$TAILNET_A" 3 || fail "interop: wireguard-go -> tailwarden ping failed" || return 1
  note "interop: traffic flows both ways with wireguard-go ($(ip netns exec "$NS_B" wg show "$ifn" latest-handshakes | awk '{print "handshake at " $2}'))"
  key_figure "wireguard-go both ways"
}

scenario_linkchange() {
  setup lan || return 1
  bring_up_direct || fail "no direct path to start from" || return 1
  T_CHANGE=$(date +%s.%N)
  ip netns exec "$NS_A" ip addr del 198.18.0.2/24 dev eth0
  ip netns exec "$NS_A" ip addr add 198.18.0.4/24 dev eth0
  local t
  bring_up_direct || fail "path did not return to direct after the link change" || return 1
  t=$(e2e_py since "$T_CHANGE")
  ping_ok "$NS_A" "$TAILNET_B" 12 || fail "traffic did not recover after readdressing" || return 1
  note "linkchange: direct again ${t}s after readdressing (rebind on netlink event)"
  figure direct_again_s "$t"
  key_figure "direct again ${t}s"
}

# Appends to $E2E_DIR/cands_N every address node N may legitimately send to its peer:
# the candidates and endpoint of its peer as it reports them, and the endpoints the
# peer advertises. Called at several moments, since candidates come and go.
collect_candidates() {
  local n other
  for n in a b; do
    [ $n = a ] && other=b || other=a
    {
      e2e_cli $n status --json 2>/dev/null | e2e_py candidates
      e2e_cli $other status --json 2>/dev/null | e2e_py endpoints
    } 2>/dev/null | grep -E '^[0-9.]+:[0-9]+$' >>"$E2E_DIR/cands_$n"
  done
}

# egress_check PCAP_NAME PORT CANDS_FILE [capture.py options]: classifies every packet of
# the capture against the single-egress promise; prints capture.py's JSON.
egress_check() {
  local name=$1 port=$2 cands=$3
  shift 3
  local peers=() c
  for c in $(sort -u "$cands" 2>/dev/null); do peers+=(--peer "$c"); done
  python3 "$HERE/capture.py" egress "$E2E_DIR/$name.pcap" --port "$port" \
    --stun "$INET_IP:$STUN_PORT" --derp "$INET_IP:$DERP_PORT" "${peers[@]}" "$@"
}

# Two witnesses of the single egress, on both nodes: a packet
# capture of everything each node sends on its outside interface for the whole run
# (classified packet by packet: UDP only from the one underlay port to a peer
# candidate or the STUN server of the DERP map, TCP only to the DERP node, nothing
# else), and an nft counter of anything outside the underlay socket and DERP.
scenario_egress() {
  E2E_CAPTURE_NODES=1 setup easy-nat || return 1
  local ns
  for ns in "$NS_A" "$NS_B"; do
    ip netns exec "$ns" nft -f - <<NFT
table inet twegress {
  counter leaks {}
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    oifname "tw0" accept
    udp sport 41641 accept
    ip daddr $INET_IP tcp dport $DERP_PORT accept
    meta l4proto { tcp, udp } counter name leaks accept
  }
}
NFT
  done
  bring_up_direct || fail "no direct path" || return 1
  collect_candidates
  ping_ok "$NS_A" "$TAILNET_B" 5 || fail "ping a -> b failed" || return 1
  ping_ok "$NS_B" "$TAILNET_A" 3 || fail "ping b -> a failed" || return 1
  e2e_cli a netcheck >/dev/null || fail "netcheck on a failed"
  e2e_cli b netcheck >/dev/null || fail "netcheck on b failed"
  collect_candidates
  # Four rebinds at once: serialised by the broker, each answered, the pinned port kept.
  local r rpids=()
  for r in 1 2 3 4; do e2e_cli a rebind >"$E2E_DIR/rebind.$r" 2>&1 & rpids+=($!); done
  for r in "${rpids[@]}"; do wait "$r" || fail "one of four concurrent rebinds on a failed"; done
  sleep 3
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "traffic did not flow after the rebind"
  collect_candidates
  local port_a port_b
  port_a=$(e2e_cli a status --json | e2e_py json self.underlay_port)
  port_b=$(e2e_cli b status --json | e2e_py json self.underlay_port)
  [ "$port_a" = 41641 ] || fail "after concurrent rebinds a's underlay port is '$port_a', not the pinned 41641"
  e2e_capture_stop egress_a
  e2e_capture_stop egress_b
  local n out port captured=0 allowed=0 cls
  for n in a b; do
    [ $n = a ] && port=$port_a || port=$port_b
    out=$(egress_check "egress_$n" "$port" "$E2E_DIR/cands_$n") ||
      fail "node $n sent outside the single egress: $(jget "$out" "'; '.join(j['violations'])")"
    note "egress $n: captured $(jget "$out" "j['captured']") packets, allowed $(jget "$out" "j['allowed']"), UDP source ports $(jget "$out" "j['udp_source_ports']"), by class $(jget "$out" "j['classes']")"
    for cls in udp-peer udp-stun tcp-derp; do
      [ "$(jget "$out" "j['classes'].get('$cls',0)")" -gt 0 ] ||
        fail "node $n: the capture holds no $cls packet, so it does not witness that traffic"
    done
    [ "$(jget "$out" "len(j['udp_source_ports'])")" = 1 ] || fail "node $n sent UDP from more than one port"
    captured=$((captured + $(jget "$out" "j['captured']")))
    allowed=$((allowed + $(jget "$out" "j['allowed']")))
    figure "captured_$n" "$(jget "$out" "j['captured']")"
    figure "allowed_$n" "$(jget "$out" "j['allowed']")"
  done
  local leaks total_leaks=0
  for ns in "$NS_A" "$NS_B"; do
    leaks=$(ip netns exec "$ns" nft list counter inet twegress leaks | sed -n 's/.*packets \([0-9]*\).*/\1/p')
    total_leaks=$((total_leaks + ${leaks:-1}))
  done
  figure nft_leaks "$total_leaks"
  key_figure "captured $captured / allowed $allowed packets (a+b); nft leaks $total_leaks"
  [ "$total_leaks" = 0 ] || fail "the nft counter saw $total_leaks packets outside the single egress" || return 1
  note "egress: captured $captured / allowed $allowed (traffic, netcheck STUN, a rebind); nft counter: 0 packets outside the underlay socket and DERP"
  # (After the nft counter was read.) The check can fail: a DNS query and a UDP datagram from another socket, planted in
  # a's namespace under a fresh capture, must both be flagged.
  e2e_capture_start planted "$NS_A" eth0 out "ip or ip6" || return 1
  ip netns exec "$NS_A" "$E2E_PY" -c "import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b'q', ('$INET_IP', 53)); s.sendto(b'x', ('198.18.0.3', 41641))"
  sleep 0.2
  e2e_capture_stop planted
  out=$(egress_check planted "$port_a" "$E2E_DIR/cands_a")
  [ "$(jget "$out" "[(c, n) for c, n in j['classes'].items() if c.startswith('!')]")" = "[('!udp-other-socket', 2)]" ] ||
    fail "the egress check missed planted leaks: $out" || return 1
  # Taken as if the planted socket were the underlay one, the query is flagged as DNS.
  out=$(egress_check planted "$(jget "$out" "j['udp_source_ports'][0]")" "$E2E_DIR/cands_a")
  [ "$(jget "$out" "j['classes'].get('!dns', 0)")" = 1 ] || fail "the egress check did not flag DNS: $out" || return 1
  note "egress: planted leaks (a second socket, a DNS query) are flagged by the same check"
}

# metric N NAME: one counter of node N (sum over the three processes).
metric() { awk -v n="$2" '$1 == n {s += $2} END {print s + 0}' "$1"; }

# Sealed disco pings for the stranger: $1 file, $2 sender disco private key, $3 the
# node key the ping claims; sealed to a's disco key with the CLI's offline sealer.
seal_pings() {
  local file=$1 key=$2 claim=$3 to
  to=$(_pub a disco_key)
  : >"$file"
  for _ in $(seq 8); do
    "$BIN/tailwarden" debug disco-seal --key "$key" --to "$to" \
      --nonce "$(openssl rand -hex 24)" \
      "{\"type\":\"ping\",\"txid\":\"$(openssl rand -hex 12)\",\"node_key\":\"$claim\"}" >>"$file" || return 1
  done
}

# a stranger (a host in no netmap) floods a's UDP port for
# E2E_HOSTILE_SECONDS with six kinds of hostile datagram (tests/e2e/hostile_flood.py)
# while a ping stream runs between the pair. The pair must keep serving, the memory
# of all three processes must stay flat, and each kind must show in its own counter.
#
#   198.18.0.0/24:  a (.2) <==== direct, pinged every 50 ms ====> b (.3)
#                    ^
#                    +---- x (.9): replayed/truncated WireGuard, foreign disco,
#                          random bytes, unsolicited STUN at E2E_HOSTILE_PPS
#
# Steps, sharing state in H_* variables: hostile_prepare (replay pool, sealed
# pings), hostile_flood (flood + ping stream, metrics before/after), then three
# independent checks: hostile_counters, hostile_service, hostile_memory.
scenario_hostile() {
  setup lan || return 1
  topo_add_stranger
  hostile_prepare || return 1
  hostile_flood || return 1
  hostile_counters
  hostile_service
  hostile_memory || return 1
  key_figure "$H_TOTAL datagrams, ${H_LOSS}% ping loss, heap +${H_WORST} KiB max, $H_KINDS_OK/$H_KINDS kinds counted in their own counter"
}

# Real WireGuard messages of the pair to replay and truncate ($E2E_DIR/wg.replay), and
# sealed disco pings: from a key in no netmap, and from b's disco key claiming a
# wrong node key.
hostile_prepare() {
  e2e_capture_start pair "$NS_B" eth0 inout "udp and host 198.18.0.2 and host 198.18.0.3" || return 1
  bring_up_direct || fail "no direct path" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 5 || fail "no traffic before the flood" || return 1
  e2e_capture_stop pair
  python3 "$HERE/capture.py" wireguard "$E2E_DIR/pair.pcap" >"$E2E_DIR/wg.replay"
  local wg_to_a
  wg_to_a=$(awk '$2 ~ /^198\.18\.0\.2:/ && $3 ~ /^04/' "$E2E_DIR/wg.replay" | wc -l)
  [ "$wg_to_a" -gt 0 ] || fail "captured no WireGuard data message to a to replay" || return 1
  note "hostile: replay pool from the pair's capture: $(awk '{t[substr($3, 1, 2)]++} END {for (k in t) printf "type %d: %d, ", k, t[k]}' "$E2E_DIR/wg.replay")"
  # Disco pings: from a key in no netmap, and from b's disco key claiming a wrong node key.
  mkdir -p "$E2E_DIR/x"
  "$BIN/tailwarden" keygen -o "$E2E_DIR/x/keys" 2>"$E2E_DIR/x/pub" >/dev/null
  local xdisco bdisco xnode
  xdisco=$(sed -n 's/^disco_private = "\(.*\)"/\1/p' "$E2E_DIR/x/keys")
  bdisco=$(sed -n 's/^disco_private = "\(.*\)"/\1/p' "$E2E_DIR/b/keys")
  xnode=$(_pub x node_key)
  seal_pings "$E2E_DIR/disco_unknown.hex" "$xdisco" "$xnode" || fail "disco-seal failed" || return 1
  seal_pings "$E2E_DIR/disco_wrong_node.hex" "$bdisco" "$xnode" || fail "disco-seal failed" || return 1
}

# The flood itself, with the ping stream and a's metrics and memory around it.
hostile_flood() {
  local seconds=${E2E_HOSTILE_SECONDS:-30} pps=${E2E_HOSTILE_PPS:-6000}
  local port role
  port=$(e2e_cli a status --json | e2e_py json self.underlay_port)
  declare -gA H_MEM_BEFORE H_PIDS
  for role in broker netproc dataproc; do
    H_PIDS[$role]=$(e2e_pid a $role)
    H_MEM_BEFORE[$role]=$(e2e_mem_kb "${H_PIDS[$role]}")
  done
  e2e_cli a metrics >"$E2E_DIR/metrics.before"
  local kdrops_before
  kdrops_before=$(ip netns exec "$NS_A" awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $4}' /proc/net/snmp)
  ip netns exec "$NS_A" ping -D -i 0.05 -W 1 -w $((seconds + 2)) "$TAILNET_B" >"$E2E_DIR/hostile.ping" 2>&1 &
  local pinger=$!
  sleep 1
  H_FLOOD=$(ip netns exec "$NS_X" "$E2E_PY" "$HERE/hostile_flood.py" --to "198.18.0.2:$port" \
    --seconds "$seconds" --pps "$pps" --wireguard "$E2E_DIR/wg.replay" \
    --disco-unknown "$E2E_DIR/disco_unknown.hex" --disco-wrong-node "$E2E_DIR/disco_wrong_node.hex") ||
    fail "the flood did not run" || return 1
  wait $pinger 2>/dev/null
  sleep 0.5
  e2e_cli a metrics >"$E2E_DIR/metrics.after"
  H_KDROPS=$(( $(ip netns exec "$NS_A" awk '/^Udp:/ && $2 ~ /^[0-9]/ {print $4}' /proc/net/snmp) - kdrops_before ))
  note "hostile: stranger sent $(jget "$H_FLOOD" "j['total']") datagrams in $(jget "$H_FLOOD" "j['seconds']") s ($(jget "$H_FLOOD" "j['pps']")/s); kernel dropped $H_KDROPS (UDP InErrors: socket buffer full)"
  figure flood_datagrams "$(jget "$H_FLOOD" "j['total']")"
  figure flood_pps "$(jget "$H_FLOOD" "j['pps']")"
  figure kernel_rcvbuf_drops "$H_KDROPS"
}

# Each kind of hostile datagram must show in its own counter. Datagrams the kernel
# dropped for a full socket buffer never reach the node, so each counter must see
# at least half of what was sent of its kind (minus the kernel's drops).
hostile_counters() {
  local kept kind counter sent_n delta need
  H_KINDS_OK=0 H_KINDS=0
  H_TOTAL=$(jget "$H_FLOOD" "j['total']")
  kept=$(e2e_py calc g "max(0.0, 1 - $H_KDROPS / max(1, $H_TOTAL))")
  local pair
  for pair in random:tailwarden_udp_rx_unknown_kind_total \
              wg_truncated_data_to_node:tailwarden_wg_decryption_failures_total \
              wg_replayed_data_to_node:tailwarden_wg_replays_total \
              wg_replayed_init_to_node:tailwarden_wg_replayed_initiations_total \
              disco_unknown_key:tailwarden_disco_rx_not_member_total \
              disco_wrong_node:tailwarden_disco_ping_recv_rejected_total \
              stun_unknown_tx:tailwarden_stun_response_unknown_total; do
    kind=${pair%%:*} counter=${pair#*:}
    sent_n=$(jget "$H_FLOOD" "j['sent']['$kind']")
    if [ "$sent_n" = 0 ] && [ "$kind" = wg_replayed_init_to_node ]; then
      # Handshakes usually cross DERP before the direct path exists; only data
      # messages may then be in the capture.
      note "hostile: $kind: no initiation to a crossed UDP in the pair's capture; not checked"
      continue
    fi
    delta=$(( $(metric "$E2E_DIR/metrics.after" "$counter") - $(metric "$E2E_DIR/metrics.before" "$counter") ))
    H_KINDS=$((H_KINDS + 1))
    need=$(e2e_py calc d "max(1, int($sent_n * $kept * 0.5))")
    note "hostile: $kind: sent $sent_n, ${counter#tailwarden_} +$delta"
    figure "sent_$kind" "$sent_n"
    figure "counted_${counter#tailwarden_}" "$delta"
    if [ "$delta" -ge "$need" ]; then
      H_KINDS_OK=$((H_KINDS_OK + 1))
    else
      fail "$kind: $counter grew by $delta, expected >= $need of $sent_n sent"
    fi
  done
  # The rest end up here (messages for b's own indices, replayed responses, truncated
  # handshakes): shown for the record.
  local c
  for c in wg_unknown_index_total wg_invalid_mac1_total wg_invalid_messages_total wg_rx_unattributed_total udp_rx_truncated_total; do
    note "hostile: also $c +$(( $(metric "$E2E_DIR/metrics.after" "tailwarden_$c") - $(metric "$E2E_DIR/metrics.before" "tailwarden_$c") ))"
  done
}

# The pair kept serving during the flood.
hostile_service() {
  local max_loss=${E2E_HOSTILE_MAX_LOSS:-2}
  H_LOSS=$(python3 "$HERE/ping_gap.py" --loss "$E2E_DIR/hostile.ping")
  figure ping_loss_pct "$H_LOSS"
  note "hostile: ping stream a -> b during the flood: ${H_LOSS}% loss (bound $max_loss%), largest gap $(python3 "$HERE/ping_gap.py" "$E2E_DIR/hostile.ping" 0.05)s"
  le "$H_LOSS" "$max_loss" || fail "the pair lost ${H_LOSS}% of its pings during the flood (bound $max_loss%)"
  [ "$(e2e_path a b)" = direct ] || fail "direct path lost during the flood"
}

# Memory stays flat. The heap (RssAnon) is what a leak would grow: every table a
# stranger can touch is capped (candidates, STUN transactions; disco keys are derived
# only for netmap members), so ~10^5 datagrams may cost allocator warm-up only. The
# default bound, 512 KiB, is under 3 bytes per datagram of a 30 s flood: retaining
# anything per datagram would exceed it. Shared memory (RssShmem) grows as the flood
# touches more slots of the fixed-size IPC rings; it cannot pass their size (shown).
hostile_memory() {
  local anon_bound=${E2E_HOSTILE_ANON_KB:-512} role pid
  local mem_note="" now_mem grew rss0 anon0 shm0 rss1 anon1 shm1
  H_WORST=0
  for role in broker netproc dataproc; do
    pid=${H_PIDS[$role]}
    [ "$(e2e_pid a $role)" = "$pid" ] || fail "$role of a restarted during the flood" || return 1
    now_mem=$(e2e_mem_kb "$pid")
    read -r rss0 anon0 shm0 <<<"${H_MEM_BEFORE[$role]}"
    read -r rss1 anon1 shm1 <<<"$now_mem"
    grew=$((anon1 - anon0))
    figure "rss_growth_kb_$role" "$((rss1 - rss0))"
    figure "anon_growth_kb_$role" "$grew"
    figure "shmem_growth_kb_$role" "$((shm1 - shm0))"
    mem_note+="$role VmRSS ${rss0}->${rss1} (anon ${anon0}->${anon1}, ring shmem ${shm0}->${shm1} of $(e2e_memfd_kb "$pid") mapped); "
    [ "$grew" -gt "$H_WORST" ] && H_WORST=$grew
    [ "$grew" -le "$anon_bound" ] || fail "$role heap grew by $grew KiB during the flood (bound $anon_bound KiB)"
  done
  note "hostile: KiB: $mem_note(heap bound +$anon_bound KiB)"
}

# kill_child ROLE: kills node a's ROLE child with SIGKILL during the running ping stream
# ($E2E_DIR/faults.ping); measures the time until a new ROLE process exists (exec'd
# under the same broker) and until the stream resumes.
kill_child() {
  local role=$1 limit=${E2E_RESTART_LIMIT:-1}
  local old
  old=$(e2e_pid a "$role")
  [ -n "$old" ] || fail "$role of a not found" || return 1
  local t0 newp="" respawn resume
  t0=$(now)
  kill -9 "$old"
  for _ in $(seq 600); do
    newp=$(pgrep -P "$E2E_PID_a" -f "tailwarden-$role" | head -1)
    [ -n "$newp" ] && [ "$newp" != "$old" ] && break
    newp=""
    sleep 0.005
  done
  respawn=$(since "$t0")
  [ -n "$newp" ] || fail "$role was not restarted within 3 s" || return 1
  # The stream resumes when an echo sent after the kill is answered.
  local ev=""
  for _ in $(seq 100); do
    ev=$(python3 "$HERE/ping_gap.py" --event "$t0" "$E2E_DIR/faults.ping")
    [ "$(jget "$ev" "j['resumed_s']")" != None ] && break
    sleep 0.1
  done
  resume=$(jget "$ev" "j['resumed_s']")
  [ "$resume" != None ] || fail "the ping stream did not resume within 10 s of killing $role" || return 1
  sleep 1  # let the stream run on, to see the whole gap
  ev=$(python3 "$HERE/ping_gap.py" --event "$t0" "$E2E_DIR/faults.ping")
  local gap
  gap=$(jget "$ev" "j['gap_s']")
  figure "${role}_respawn_s" "$respawn"
  figure "${role}_stream_resumed_s" "$resume"
  figure "${role}_stream_gap_s" "$gap"
  note "faults: kill -9 $role: new $role exec'd after ${respawn}s (issue: <= $limit s), stream resumed after ${resume}s, longest silence ${gap}s"
  le "$respawn" "$limit" || fail "$role took ${respawn}s to restart (issue: within $limit s)"
  KILL_FIGURES+="$role ${respawn}s/${resume}s, "
}

# kill -9 netproc, then dataproc, during a ping stream; each comes
# back, the stream resumes, and the capture of a's outside interface shows nothing but
# the single egress throughout; then kill the broker: the children are gone within
# 1 s, and nothing leaves the node after that.
scenario_restart() {
  E2E_CAPTURE_NODES=1 setup lan || return 1
  bring_up_direct || fail "no direct path" || return 1
  collect_candidates
  local port_before
  port_before=$(e2e_cli a status --json | e2e_py json self.underlay_port)
  ip netns exec "$NS_A" ping -D -i 0.05 -W 1 "$TAILNET_B" >"$E2E_DIR/faults.ping" 2>&1 &
  local pinger=$!
  sleep 1
  KILL_FIGURES=""
  kill_child netproc || { kill $pinger; return 1; }
  e2e_wait_path a b direct 10 >/dev/null || fail "path did not return to direct after the netproc restart"
  collect_candidates
  kill_child dataproc || { kill $pinger; return 1; }
  collect_candidates
  kill $pinger 2>/dev/null
  wait $pinger 2>/dev/null
  local port_after
  port_after=$(e2e_cli a status --json | e2e_py json self.underlay_port)
  [ "$port_after" = "$port_before" ] || fail "UDP port changed across restarts ($port_before -> $port_after)" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "traffic did not resume after the restarts" || return 1
  e2e_cli a audit >"$E2E_DIR/audit.txt" || fail "audit failed after restart: $(grep FAIL "$E2E_DIR/audit.txt")" || return 1
  # Kill the broker: poll until both children are gone (or zombies awaiting a reaper).
  local np dp t0 gone_s=""
  np=$(e2e_pid a netproc)
  dp=$(e2e_pid a dataproc)
  t0=$(now)
  kill -9 "$E2E_PID_a"
  local alive p st
  for _ in $(seq 600); do
    alive=0
    for p in $np $dp; do
      st=$(awk '/^State:/ {print $2}' "/proc/$p/status" 2>/dev/null)
      [ -n "$st" ] && [ "$st" != Z ] && alive=1
    done
    [ $alive = 0 ] && { gone_s=$(since "$t0"); break; }
    sleep 0.005
  done
  wait "$E2E_PID_a" 2>/dev/null  # reap it quietly
  [ -n "$gone_s" ] || fail "children still alive 3 s after the broker was killed" || return 1
  figure broker_kill_children_gone_s "$gone_s"
  le "$gone_s" 1 || fail "children took ${gone_s}s to die with the broker (issue: within 1 s)"
  local t_gone
  t_gone=$(e2e_py calc .6f "$t0 + $gone_s")
  sleep 2  # b keeps sending to a meanwhile: the capture must show a silent
  e2e_capture_stop egress_a
  e2e_capture_stop egress_b
  local out after
  out=$(egress_check egress_a "$port_before" "$E2E_DIR/cands_a" --kernel-replies-ok) ||
    fail "a sent outside the single egress during the faults: $(jget "$out" "'; '.join(j['violations'])")"
  note "faults: capture of a: $(jget "$out" "j['captured']") packets, $(jget "$out" "j['allowed']") allowed, UDP source ports $(jget "$out" "j['udp_source_ports']"), by class $(jget "$out" "j['classes']")"
  figure captured_a "$(jget "$out" "j['captured']")"
  figure allowed_a "$(jget "$out" "j['allowed']")"
  # After the children are gone (plus 50 ms for the kernel to close their sockets)
  # only the kernel's own answers to b's packets for the closed port may appear.
  after=$(egress_check egress_a "$port_before" "$E2E_DIR/cands_a" --kernel-replies-ok \
    --after "$(e2e_py calc .6f "$t_gone + 0.05")")
  local sent_after
  sent_after=$(jget "$after" "sum(n for c, n in j['classes'].items() if not c.startswith('kernel-'))")
  figure sent_after_broker_kill "$sent_after"
  note "faults: broker killed: children gone after ${gone_s}s; after that a sent $sent_after packets (kernel answers to b: $(jget "$after" "j['classes']"))"
  [ "$sent_after" = 0 ] || fail "a sent $sent_after packets after its processes were gone" || return 1
  note "restart: same port $port_after across restarts; audit passes"
  key_figure "respawn/resume ${KILL_FIGURES}children gone ${gone_s}s, $sent_after sent after"
}

# Operator surface on a live pair: tailwarden ping, netmap reload keeping state,
# a bad netmap refused with the old one still in force.
scenario_operator() {
  setup lan || return 1
  bring_up_direct || fail "no direct path" || return 1
  local out
  out=$(e2e_cli a ping b)
  grep -Eq "^pong from b \(100\.64\.0\.2\) via 198\.18\.0\.3:41641 in [0-9.]+ms$" <<<"$out" ||
    fail "unexpected ping output: $out" || return 1
  local hs_before
  hs_before=$(e2e_cli a status --json | e2e_py json peers.0.last_handshake_unix)
  # Reload: the same peers plus a new one; b's path and session must survive.
  python3 - "$E2E_DIR/a/netmap.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["peers"].append({"name": "c", "node_key": "nodekey:" + "c" * 64, "disco_key": "discokey:" + "d" * 64,
                   "addresses": ["100.64.0.3/32"], "home_derp": 900})
json.dump(m, open(sys.argv[1] + ".new", "w"))
PY
  mv "$E2E_DIR/a/netmap.json.new" "$E2E_DIR/a/netmap.json"
  sleep 1
  local gen path hs_after
  gen=$(e2e_cli a status --json | e2e_py json netmap_generation)
  [ "$gen" = 2 ] || fail "netmap file change was not applied (generation $gen)" || return 1
  path=$(e2e_path a b)
  [ "$path" = direct ] || fail "reload lost b's direct path ($path)" || return 1
  hs_after=$(e2e_cli a status --json | e2e_py json peers.0.last_handshake_unix)
  [ "$hs_after" = "$hs_before" ] || fail "reload reset b's WireGuard session" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "traffic stopped after reload" || return 1
  # A bad netmap is refused precisely and the running one stays in force.
  echo '{"self":{"name":"a"},"peers":[]}' >"$E2E_DIR/bad.json"
  if out=$(e2e_cli a netmap apply "$E2E_DIR/bad.json" 2>&1); then
    fail "a bad netmap was accepted" || return 1
  fi
  grep -q 'self: missing field "node_key"' <<<"$out" || fail "imprecise error: $out" || return 1
  gen=$(e2e_cli a status --json | e2e_py json netmap_generation)
  [ "$gen" = 2 ] && [ "$(e2e_path a b)" = direct ] || fail "bad netmap disturbed the running one" || return 1
  note "operator: '$out' ; reload kept b direct with the same session; ping: $(head -1 <<<"$(e2e_cli a ping b)")"
  key_figure "reload kept session; bad netmap refused"
}

run() {
  SCEN=$1
  SCEN_FAILED=0
  local t0
  t0=$(now)
  echo "== $SCEN"
  case "$SCEN" in
    direct-lan) scenario_direct lan ;;
    direct-nat) scenario_direct easy-nat ;;
    failover) scenario_failover ;;
    hard-nat) scenario_relay_only hard-nat ;;
    udp-blocked) scenario_relay_only udp-blocked ;;
    interop) scenario_interop ;;
    linkchange) scenario_linkchange ;;
    egress) scenario_egress ;;
    hostile) scenario_hostile ;;
    operator) scenario_operator ;;
    restart) scenario_restart ;;
    *) fail "unknown scenario" ;;
  esac
  teardown
  figure duration_s "$(since "$t0")"
  printf '%s\tstatus\t%s\n' "$SCEN" "$([ $SCEN_FAILED = 0 ] && echo PASS || echo FAIL)" >>"$SUMMARY_TSV"
}

# The table of the run, and the same as JSON at $SUMMARY_JSON.
summarize() {
  python3 - "$SUMMARY_TSV" "$SUMMARY_JSON" "$BIN" <<'PY'
import json, os, sys, time
tsv, out, binary_dir = sys.argv[1:4]
scen = {}
for line in open(tsv):
    parts = line.rstrip("\n").split("\t")
    s = scen.setdefault(parts[0], {"name": parts[0], "status": "FAIL", "key_figure": "", "figures": {}})
    if parts[1] == "status":
        s["status"] = parts[2]
    elif parts[1] == "key":
        s["key_figure"] = parts[2]
    elif parts[1] == "figure":
        try:
            v = float(parts[3])
            v = int(v) if v.is_integer() and "." not in parts[3] else v
        except ValueError:
            v = parts[3]
        s["figures"][parts[2]] = v
rows = list(scen.values())
w = max([len(r["name"]) for r in rows] + [8])
print(f"{'scenario':<{w}}  result  key figure")
for r in rows:
    print(f"{r['name']:<{w}}  {r['status']:<6}  {r['key_figure']}")
doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_avg": os.getloadavg()[0],
       "bin": os.path.realpath(binary_dir), "passed": all(r["status"] == "PASS" for r in rows),
       "scenarios": rows}
try:
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
    print(f"summary JSON: {out}")
except OSError as e:
    print(f"summary JSON not written: {e}")
PY
}

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(direct-lan direct-nat failover hard-nat udp-blocked interop linkchange egress hostile operator restart)
for s in "${SCENARIOS[@]}"; do run "$s"; done
note "logs: no private key (hex or base64) in the logs of ${SECRETS_CHECKED:-0} scenario runs"
echo
echo "== e2e notes"
printf '%s\n' "${RESULTS[@]}"
echo
echo "== e2e summary"
summarize
rm -f "$SUMMARY_TSV"
[ "$FAILED" = 0 ] && echo "e2e: PASS" || echo "e2e: FAIL"
exit $FAILED
