#!/usr/bin/env bash
# The tailwarden demo: two nodes behind two NATs, a DERP relay and a STUN server, all
# in network namespaces on this machine. Shows the relayed start, the switch to a
# direct path, traffic through the tunnel, failover to DERP when UDP between the
# NATs is blocked, and the return to direct. Cleans up on exit and on Ctrl-C.
#   BIN=<dir with tailwardend, tailwarden, tailwarden-netproc, -dataproc, -derper>
#   demo.sh [--hold] [--direct-only] [--summary-json FILE]
#   --direct-only stops after the direct path is reached (bench/time_to_direct.sh)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN to the directory holding the tailwarden binaries}
HOLD=0
DIRECT_ONLY=0
SUMMARY_JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hold) HOLD=1 ;;
    --direct-only) DIRECT_ONLY=1 ;;
    --summary-json) SUMMARY_JSON=$2; shift ;;
    *) echo "demo: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (network namespaces, TUN)" >&2; exit 2; }

TOPO_ID=d$$
source "$HERE/topology.sh"
source "$HERE/node.sh"
tw_on_exit 'e2e_cleanup; [ "${E2E_KEEP:-0}" = 1 ] && echo "kept $E2E_DIR" || rm -rf "${E2E_DIR:-/nonexistent}"'

say() { printf '\033[1m== %s\033[0m\n' "$*"; }
status_line() { e2e_cli "$1" status | sed -n '/^PEER/,$p' | sed "s/^/   [$1] /"; }

# The figures as JSON (--summary-json); a figure not measured (timeout, or not reached
# with --direct-only) is null.
write_summary() {
  [ -n "$SUMMARY_JSON" ] || return 0
  python3 - "$SUMMARY_JSON" <<PY
import json, sys
def num(x):
    try: return float(x)
    except ValueError: return None
json.dump({"time_to_direct_s": num("$t_direct"), "ready_s": num("$ready"),
           "ready_to_direct_s": num("$ready_to_direct"), "wait_direct_a_s": num("$direct_a"),
           "wait_direct_b_s": num("$direct_b"),
           "derp_after_block_s": num("${derp_after:-}"), "failover_gap_s": num("${gap:-}"),
           "back_to_direct_s": num("${back:-}"), "iperf3_mbit_s": num("${throughput:-}")},
          open(sys.argv[1], "w"))
PY
}

# --hold: one JSON line per node (pids, namespace, admin socket, underlay), then wait
# until a signal stops us; the EXIT trap cleans up.
hold_nodes() {
  for n in a b; do
    ns=$NS_A; [ "$n" = b ] && ns=$NS_B
    e2e_cli "$n" status --json | python3 -c "
import json, sys
s = json.load(sys.stdin)['self']
print(json.dumps({'node': '$n', 'netns': '$ns', 'admin_socket': '$E2E_DIR/$n/admin.sock', 'pids': s['pids'],
                  'underlay': (s['endpoints'] or ['?'])[0], 'underlay_port': s['underlay_port'],
                  'outside_if': 'eth0', 'key_file': '$E2E_DIR/$n/keys', 'tailnet_ip': s['address']}))"
  done
  say "holding; Ctrl-C to stop and clean up"
  tw_hold
}

say "building the network: two sites behind NAT, relay and STUN on the internet segment"
topo_up easy-nat
e2e_init
e2e_start_infra
e2e_write_netmaps
e2e_start_node a
e2e_start_node b
t0=$(date +%s.%N)
ready=$(e2e_wait_ready a b 30) || ready=timeout
t_ready=$(date +%s.%N)
echo "   both nodes ready (children sandboxed, netmap loaded, relay connected) after ${ready}s"
say "nodes started; first packets go through the relay"
# In the background: the figure below is the path's, not this ping's reply wait.
ip netns exec "$NS_A" ping -c 1 -W 3 "$TAILNET_B" >"$E2E_DIR/first.ping" 2>&1 &
first_ping=$!

say "waiting for a direct path (NAT traversal with disco + call-me-maybe)"
# Each wait prints how long it waited and the time since both nodes were ready; the
# later of the two is when both sides had a direct path.
# Both polls run at once, so neither figure carries the other poller's start-up.
e2e_wait_path a b direct 30 "$t_ready" >"$E2E_DIR/wait_a" &
wait_a=$!
read -r direct_b since_b <<<"$(e2e_wait_path b a direct 30 "$t_ready" || echo timeout)"
wait "$wait_a"
read -r direct_a since_a <"$E2E_DIR/wait_a"
ready_to_direct=$(python3 -c "
try: print(f'{max(float(\"${since_a:-x}\"), float(\"${since_b:-x}\")):.2f}')
except ValueError: print('timeout')")
t_direct=$(python3 -c "
try: print(f'{$t_ready - $t0 + float(\"$ready_to_direct\"):.2f}')
except ValueError: print('timeout')")
wait "$first_ping" && echo "   first ping answered: $(grep -o 'time=[0-9.]* ms' "$E2E_DIR/first.ping")"
echo "   a sees b direct after ${direct_a}s of waiting; b sees a direct: ${direct_b}"
status_line a
status_line b

if [ "$DIRECT_ONLY" = 1 ]; then
  write_summary
  if [ "$HOLD" = 1 ]; then hold_nodes; fi
  [ "$direct_a" != timeout ] && [ "$direct_b" != timeout ]
  exit
fi

say "traffic through the tunnel"
ip netns exec "$NS_A" ping -c 5 -i 0.2 "$TAILNET_B" | tail -2 | sed 's/^/   /'
ip netns exec "$NS_B" iperf3 -s -1 -B "$TAILNET_B" >/dev/null 2>&1 &
iperf_srv=$!
sleep 0.3
throughput=$(ip netns exec "$NS_A" iperf3 -c "$TAILNET_B" -t 3 -J 2>/dev/null |
  python3 -c "import json,sys
try: print(f\"{json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6:.0f}\")
except Exception: print('n/a')")
kill $iperf_srv 2>/dev/null
echo "   iperf3 over the tunnel: ${throughput} Mbit/s"

say "blocking UDP between the two NATs: traffic must fall back to DERP"
ip netns exec "$NS_A" ping -i 0.05 -W 1 "$TAILNET_B" >"$E2E_DIR/failover.ping" 2>&1 &
pinger=$!
sleep 0.5
topo_block_udp
derp_after=$(e2e_wait_path a b derp 15) || derp_after=timeout
sleep 3
topo_unblock_udp
say "UDP unblocked: the path must return to direct"
back=$(e2e_wait_path a b direct 30) || back=timeout
kill $pinger 2>/dev/null
wait $pinger 2>/dev/null
gap=$(python3 "$HERE/ping_gap.py" "$E2E_DIR/failover.ping")
status_line a

say "summary"
printf '   %-32s %s\n' "time from start to direct (a->b)" "${t_direct}s" \
  "path turned to DERP after block" "${derp_after}s" \
  "largest gap in ping replies" "${gap}s" \
  "back to direct after unblock" "${back}s" \
  "iperf3 throughput" "${throughput} Mbit/s"
write_summary

if [ "$HOLD" = 1 ]; then hold_nodes; fi
exit 0
