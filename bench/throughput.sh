#!/usr/bin/env bash
# Throughput table: TCP through the tunnel between two namespaces on one
# veth segment, in the same run: bare veth, two wireguard-go peers (the userspace
# WireGuard operators use today), and two tailwarden nodes on a direct path.
#   BIN=<dir with the tailwarden binaries> bench/throughput.sh [seconds]
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
source "$HERE/tests/e2e/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN}
SECS=${1:-5}
[ "$(id -u)" -eq 0 ] || { echo "throughput: needs root"; exit 2; }
source "$HERE/tests/e2e/topology.sh"
source "$HERE/tests/e2e/node.sh"
TOPO_ID=tp$$
NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
tw_on_exit 'e2e_cleanup; rm -rf "${E2E_DIR:-/nonexistent}"'

iperf() {  # $1 server ns, $2 server ip, $3 client ns -> Mbit/s
  ip netns exec "$1" iperf3 -s -1 -B "$2" >/dev/null 2>&1 &
  local srv=$!
  sleep 0.3
  ip netns exec "$3" iperf3 -c "$2" -t "$SECS" -J 2>/dev/null |
    python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6:.0f}\")" 2>/dev/null || echo 0
  kill $srv 2>/dev/null
  wait $srv 2>/dev/null
}

topo_up lan
bare=$(iperf "$NS_B" 198.18.0.3 "$NS_A")

# wireguard-go pair
# Interface names must differ: wireguard-go's UAPI socket directory is shared
# across namespaces.
wg_a=twga${TOPO_ID:2:6}
wg_b=twgb${TOPO_ID:2:6}
ka=$(wg genkey); kb=$(wg genkey)
pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
WG_PROCESS_FOREGROUND=1 ip netns exec "$NS_A" wireguard-go -f "$wg_a" >/dev/null 2>&1 &
E2E_PIDS+=($!)
WG_PROCESS_FOREGROUND=1 ip netns exec "$NS_B" wireguard-go -f "$wg_b" >/dev/null 2>&1 &
E2E_PIDS+=($!)
for _ in $(seq 100); do
  ip netns exec "$NS_A" ip link show "$wg_a" >/dev/null 2>&1 && ip netns exec "$NS_B" ip link show "$wg_b" >/dev/null 2>&1 && break
  sleep 0.05
done
echo "$ka" >/tmp/$TOPO_ID.ka; echo "$kb" >/tmp/$TOPO_ID.kb
ip netns exec "$NS_A" wg set "$wg_a" listen-port 51820 private-key /tmp/$TOPO_ID.ka peer "$pb" allowed-ips 100.64.99.2/32 endpoint 198.18.0.3:51820
ip netns exec "$NS_B" wg set "$wg_b" listen-port 51820 private-key /tmp/$TOPO_ID.kb peer "$pa" allowed-ips 100.64.99.1/32 endpoint 198.18.0.2:51820
rm -f /tmp/$TOPO_ID.ka /tmp/$TOPO_ID.kb
ip netns exec "$NS_A" ip addr add 100.64.99.1/24 dev "$wg_a"; ip netns exec "$NS_A" ip link set "$wg_a" mtu 1280 up
ip netns exec "$NS_B" ip addr add 100.64.99.2/24 dev "$wg_b"; ip netns exec "$NS_B" ip link set "$wg_b" mtu 1280 up
ip netns exec "$NS_A" ping -c 1 -W 2 100.64.99.2 >/dev/null
wggo=$(iperf "$NS_B" 100.64.99.2 "$NS_A")
for pid in "${E2E_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
E2E_PIDS=()

# tailwarden pair (direct path on the same segment)
e2e_init
e2e_start_infra
e2e_write_netmaps '["198.18.0.2:41641"]' '["198.18.0.3:41641"]'
e2e_start_node a
e2e_start_node b
e2e_wait_path a b direct 10 >/dev/null
ip netns exec "$NS_A" ping -c 1 -W 2 "$TAILNET_B" >/dev/null
tw=$(iperf "$NS_B" "$TAILNET_B" "$NS_A")

ratio() { python3 -c "print(f'{$1/$2:.2f}' if $2 else 'n/a')"; }
printf '\n%-34s %10s %12s\n' "path (TCP, ${SECS}s, MTU 1280 tunnels)" "Mbit/s" "vs wg-go"
printf '%-34s %10s %12s\n' "bare veth" "$bare" "$(ratio "$bare" "$wggo")"
printf '%-34s %10s %12s\n' "wireguard-go <-> wireguard-go" "$wggo" "1.00"
printf '%-34s %10s %12s\n' "tailwarden <-> tailwarden (direct)" "$tw" "$(ratio "$tw" "$wggo")"
