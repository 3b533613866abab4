#!/usr/bin/env bash
# End-to-end proof in network namespaces (issue 9). Each scenario builds its
# topology from scratch, runs real nodes (tailwardend + sandboxed children), a real
# relay (tailwarden-derper), a real STUN server (coturn) and, for interop, a real
# wireguard-go peer; it prints what it measured and fails on a broken promise.
#   BIN=<dir with the binaries> run_e2e.sh [scenario ...]
# Scenarios: direct-lan direct-nat failover hard-nat udp-blocked interop linkchange
#            egress hostile operator restart
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:?set BIN}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: e2e needs root"; exit 0; }
for tool in turnserver iperf3 nft wireguard-go wg; do
  command -v $tool >/dev/null || { echo "FAIL: $tool missing (scripts/install-deps)"; exit 1; }
done

source "$HERE/topology.sh"
source "$HERE/node.sh"

RESULTS=()
FAILED=0
note() { RESULTS+=("$1"); echo "   $1"; }
fail() { echo "FAIL [$SCEN]: $*"; FAILED=1; return 1; }
le() { python3 -c "import sys; sys.exit(0 if float('$1') <= float('$2') else 1)" 2>/dev/null; }

# Fresh topology + infra + both nodes; $1 topology kind, $2/$3 optional static endpoints.
setup() {
  TOPO_ID=e$RANDOM
  NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
  NS_RA="tw${TOPO_ID}-ra" NS_RB="tw${TOPO_ID}-rb"
  topo_up "$1" || return 1
  e2e_init
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
}

# No private key may appear in any log, in hex or base64 (issue 8).
check_no_secrets() {
  [ -n "${E2E_DIR:-}" ] && [ -d "$E2E_DIR" ] || return 0
  local logs
  logs=$(cat "$E2E_DIR"/*/log "$E2E_DIR"/*.log 2>/dev/null)
  for k in $(sed -n 's/.*privkey:\([0-9a-f]\{64\}\).*/\1/p' "$E2E_DIR"/*/keys 2>/dev/null); do
    local b64
    b64=$(python3 -c "import base64; print(base64.b64encode(bytes.fromhex('$k')).decode())")
    if grep -qiF -e "$k" -e "$b64" <<<"$logs"; then
      fail "a private key appears in the logs"
    fi
  done
  SECRETS_CHECKED=$((${SECRETS_CHECKED:-0} + 1))
}

teardown() {
  check_no_secrets
  if [ "$FAILED" = 1 ] && [ -n "${E2E_DIR:-}" ]; then
    for n in a b; do echo "--- log of $n"; tail -25 "$E2E_DIR/$n/log" 2>/dev/null; done
  fi
  e2e_cleanup
  rm -rf "${E2E_DIR:-/nonexistent}"
}
trap teardown EXIT

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

scenario_direct() {
  local kind=$1
  setup "$kind" || return 1
  local first
  first=$(ip netns exec "$NS_A" ping -c 1 -W 7 "$TAILNET_B" 2>/dev/null | sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p')
  [ -n "$first" ] || fail "first packet did not arrive within 7 s (one WireGuard handshake retry)" || return 1
  note "$kind: first ping answered in ${first} ms"
  local ta tb
  # Traffic keeps flowing both ways meanwhile (discovery is on demand on each side).
  ip netns exec "$NS_A" ping -c 150 -i 0.2 -W 1 "$TAILNET_B" >/dev/null 2>&1 &
  local pinger=$!
  ta=$(e2e_wait_path a b direct ${E2E_DIRECT_LIMIT:-20}) || { kill $pinger; fail "a never saw b direct within ${E2E_DIRECT_LIMIT:-20} s"; return 1; }
  tb=$(e2e_wait_path b a direct ${E2E_DIRECT_LIMIT:-20}) || { kill $pinger; fail "b never saw a direct"; return 1; }
  kill $pinger 2>/dev/null
  wait $pinger 2>/dev/null
  local since
  since=$(python3 -c "import time; print(f'{time.time()-$T_START:.2f}')")
  note "$kind: both direct ${since}s after start (issue aim: 5 s; stretch $([ $kind = lan ] && echo 0.5 || echo 1) s)"
  ping_ok "$NS_A" "$TAILNET_B" 5 || fail "ping over the direct path failed" || return 1
  ip netns exec "$NS_B" iperf3 -s -1 -B "$TAILNET_B" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.3
  local mbit
  mbit=$(ip netns exec "$NS_A" iperf3 -c "$TAILNET_B" -t 2 -J 2>/dev/null |
    python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6:.0f}\")" 2>/dev/null)
  kill $srv 2>/dev/null
  [ -n "$mbit" ] || fail "iperf3 over the tunnel failed" || return 1
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
  python3 -c "import base64,sys; print(base64.b64encode(bytes.fromhex('$bkey')).decode())" >"$E2E_DIR/wg.key"
  local apub64
  apub64=$(python3 -c "import base64; print(base64.b64encode(bytes.fromhex('$apub')).decode())")
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
}

scenario_linkchange() {
  setup lan || return 1
  bring_up_direct || fail "no direct path to start from" || return 1
  T_CHANGE=$(date +%s.%N)
  ip netns exec "$NS_A" ip addr del 198.18.0.2/24 dev eth0
  ip netns exec "$NS_A" ip addr add 198.18.0.4/24 dev eth0
  local t
  bring_up_direct || fail "path did not return to direct after the link change" || return 1
  t=$(python3 -c "import time; print(f'{time.time()-$T_CHANGE:.2f}')")
  ping_ok "$NS_A" "$TAILNET_B" 12 || fail "traffic did not recover after readdressing" || return 1
  note "linkchange: direct again ${t}s after readdressing (rebind on netlink event)"
}

# Counts every packet leaving node a's namespace that is not the underlay UDP socket
# (sport 41641), DERP TCP to the relay, or tunnel traffic on tw0.
scenario_egress() {
  setup easy-nat || return 1
  ip netns exec "$NS_A" nft -f - <<NFT
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
  bring_up_direct || fail "no direct path" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 5
  e2e_cli a rebind >/dev/null
  sleep 3
  ping_ok "$NS_A" "$TAILNET_B" 3
  local leaks
  leaks=$(ip netns exec "$NS_A" nft list counter inet twegress leaks | sed -n 's/.*packets \([0-9]*\).*/\1/p')
  [ "${leaks:-1}" = 0 ] || fail "packets left the node outside the single egress: $leaks" || return 1
  note "egress: 0 packets outside the underlay socket and DERP (after traffic, a rebind, STUN)"
}

scenario_hostile() {
  setup lan || return 1
  bring_up_direct || fail "no direct path" || return 1
  local port
  port=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['self']['underlay_port'])")
  ip netns exec "$NS_B" python3 - "$port" <<'PY'
import os, socket, sys, random
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
magic = bytes.fromhex("5453f09f92ac")
cases = [b"", b"\x00", os.urandom(40), magic + os.urandom(10), magic + os.urandom(100),
         bytes.fromhex("0101000c2112a442") + os.urandom(12), b"\x04\x00\x00\x00" + os.urandom(60),
         b"\x01\x00\x00\x00" + os.urandom(144), os.urandom(1400), os.urandom(60000)]
for _ in range(300):
    for c in cases:
        s.sendto(c if len(c) < 65000 else c[:65000], ("198.18.0.2", port))
PY
  sleep 1
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "node stopped working after hostile input" || return 1
  [ "$(e2e_path a b)" = direct ] || fail "direct path lost after hostile input" || return 1
  local drops
  drops=$(e2e_cli a metrics | grep -E '^tailwarden_.*(drop|rejected|unattributed|malformed|invalid).*_total ' |
    awk '{s+=$2} END {print s+0}')
  [ "${drops:-0}" -gt 0 ] || fail "hostile datagrams were not counted as drops" || return 1
  note "hostile: 3000 bad datagrams dropped and counted ($drops), path still direct"
}

scenario_restart() {
  setup lan || return 1
  bring_up_direct || fail "no direct path" || return 1
  local port_before np
  port_before=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['self']['underlay_port'])")
  np=$(pgrep -P "$E2E_PID_a" -f tailwarden-netproc | head -1)
  [ -n "$np" ] || fail "netproc of a not found" || return 1
  local t0
  t0=$(date +%s.%N)
  kill -9 "$np"
  local newp=""
  for _ in $(seq 100); do
    newp=$(pgrep -P "$E2E_PID_a" -f tailwarden-netproc | head -1)
    [ -n "$newp" ] && [ "$newp" != "$np" ] && break
    sleep 0.01
  done
  local took
  took=$(python3 -c "import time; print(f'{time.time()-$t0:.2f}')")
  [ -n "$newp" ] && [ "$newp" != "$np" ] || fail "netproc was not restarted within 1 s" || return 1
  le "$took" 2 || fail "restart took ${took}s (issue: within 1 s)"
  sleep 1
  local port_after
  port_after=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['self']['underlay_port'])")
  [ "$port_after" = "$port_before" ] || fail "UDP port changed across restart ($port_before -> $port_after)" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "traffic did not resume after restart" || return 1
  e2e_cli a audit >"$E2E_DIR/audit.txt" || fail "audit failed after restart: $(grep FAIL "$E2E_DIR/audit.txt")" || return 1
  kill -9 "$E2E_PID_a"
  sleep 1
  if pgrep -f "tailwarden-(netproc|dataproc).*" | xargs -r ps -o ppid= -p 2>/dev/null | grep -qw 1; then
    fail "children survived the broker" || return 1
  fi
  note "restart: netproc back in ${took}s on the same port $port_after; audit passes; children die with the broker"
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
  hs_before=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['peers'][0]['last_handshake_unix'])")
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
  gen=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['netmap_generation'])")
  [ "$gen" = 2 ] || fail "netmap file change was not applied (generation $gen)" || return 1
  path=$(e2e_path a b)
  [ "$path" = direct ] || fail "reload lost b's direct path ($path)" || return 1
  hs_after=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['peers'][0]['last_handshake_unix'])")
  [ "$hs_after" = "$hs_before" ] || fail "reload reset b's WireGuard session" || return 1
  ping_ok "$NS_A" "$TAILNET_B" 3 || fail "traffic stopped after reload" || return 1
  # A bad netmap is refused precisely and the running one stays in force.
  echo '{"self":{"name":"a"},"peers":[]}' >"$E2E_DIR/bad.json"
  if out=$(e2e_cli a netmap apply "$E2E_DIR/bad.json" 2>&1); then
    fail "a bad netmap was accepted" || return 1
  fi
  grep -q 'self: missing field "node_key"' <<<"$out" || fail "imprecise error: $out" || return 1
  gen=$(e2e_cli a status --json | python3 -c "import json,sys; print(json.load(sys.stdin)['netmap_generation'])")
  [ "$gen" = 2 ] && [ "$(e2e_path a b)" = direct ] || fail "bad netmap disturbed the running one" || return 1
  note "operator: '$out' ; reload kept b direct with the same session; ping: $(head -1 <<<"$(e2e_cli a ping b)")"
}

run() {
  SCEN=$1
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
    restart) scenario_restart ;;
    operator) scenario_operator ;;
    *) fail "unknown scenario" ;;
  esac
  teardown
}

SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(direct-lan direct-nat failover hard-nat udp-blocked interop linkchange egress hostile operator restart)
for s in "${SCENARIOS[@]}"; do run "$s"; done
note "logs: no private key (hex or base64) in the logs of ${SECRETS_CHECKED:-0} scenario runs"
echo
echo "== e2e summary"
printf '%s\n' "${RESULTS[@]}"
[ "$FAILED" = 0 ] && echo "e2e: PASS" || echo "e2e: FAIL"
exit $FAILED
