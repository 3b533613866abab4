#!/usr/bin/env bash
# Throughput table, everything in one run: TCP (iperf3) between two namespaces on one
# veth segment through
#   bare veth | wireguard-go (Debian) | nebula (Debian) | tailscaled (kernel TUN,
#   the version of tests/interop/go.mod) | mixed (tailwarden -> tailscaled: our node
#   as a, a kernel-TUN tailscaled as b) | tailwarden (direct path)
# each at its own default MTU, a->b and b->a (iperf3 -R), 1 flow and 4 flows (-P 4),
# RUNS interleaved rounds (every tunnel and case once per round), medians, the CPU
# the tunnel's processes used during each measurement, and ratios against tailscaled
# and wireguard-go. Also one core's ChaCha20-Poly1305 rate (openssl speed) as the
# ceiling a single-threaded userspace dataplane has.
#   BIN=<tailwarden binaries> [TS_BIN=<dir with interop.test, tailscaled, tailscale>]
#   [RUNS=3] [ONLY="tailscaled tailwarden"] bench/throughput.sh [seconds per test]
# TS_BIN defaults to build/interop (tests/interop/run.sh builds it; interop.test must
# contain TestThroughputPair). Without it the tailscaled rows are skipped.
set -u
HERE=$(cd "$(dirname "$0")/.." && pwd)
source "$HERE/tests/e2e/signals.sh"
tw_signals_init "$0" "$@"
BIN=${BIN:?set BIN}
TS_BIN=${TS_BIN:-$HERE/build/interop}
SECS=${1:-5}
RUNS=${RUNS:-3}
ONLY=${ONLY:-"veth wireguard-go nebula tailscaled mixed tailwarden"}
[ "$(id -u)" -eq 0 ] || { echo "throughput: needs root"; exit 2; }
source "$HERE/tests/e2e/topology.sh"
source "$HERE/tests/e2e/node.sh"
TOPO_ID=tp$$
NS_INET="tw${TOPO_ID}-inet" NS_A="tw${TOPO_ID}-a" NS_B="tw${TOPO_ID}-b"
WORK=$(mktemp -d /tmp/tw-throughput.XXXXXX)
TS_READY=$WORK/ts.ready
TS_PID=
stop_ts() {
  rm -f "$TS_READY"
  if [ -n "$TS_PID" ]; then
    # The fixture notices the file is gone and tears its namespaces down itself.
    for _ in $(seq 100); do kill -0 "$TS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$TS_PID" 2>/dev/null
    wait "$TS_PID" 2>/dev/null
    TS_PID=
  fi
}
tw_on_exit 'stop_ts; e2e_cleanup; rm -rf "${E2E_DIR:-/nonexistent}" "$WORK"'
want() { [[ " $ONLY " == *" $1 "* ]]; }
HZ=$(getconf CLK_TCK)

# ---- tunnels ------------------------------------------------------------------------
# Each tunnel: how to run a command in the client's and in the server's network
# namespace, the server address, and the processes whose CPU counts
# (space-separated pid=label).
declare -A T_CLI T_SRV T_IP T_PROCS
TUNNELS=()
add_tunnel() { TUNNELS+=("$1"); T_CLI[$1]=$2; T_SRV[$1]=$3; T_IP[$1]=$4; T_PROCS[$1]=${5:-}; }
tw_procs_of() {  # $1 broker pid, $2 label: it and its children -> pid=name@label ...
  local pid=$1 sfx=$2 c cpid comm ppid
  printf '%s=broker@%s ' "$pid" "$sfx"
  for c in /proc/[0-9]*/stat; do
    read -r cpid comm _ ppid _ <"$c" 2>/dev/null || continue
    [ "$ppid" = "$pid" ] || continue
    comm=${comm#(tailwarden-}; comm=${comm%)}
    printf '%s=%s@%s ' "$cpid" "$comm" "$sfx"
  done
}
tw_procs() {  # $1 ns, $2 label: the broker in ns and its children
  local pid
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tailwardend ] && tw_procs_of "$pid" "$2"
  done
}

topo_up lan
IN_A="ip netns exec $NS_A" IN_B="ip netns exec $NS_B"
want veth && add_tunnel veth "$IN_A" "$IN_B" 198.18.0.3

if want wireguard-go; then
  # Interface names must differ: wireguard-go's UAPI socket directory is shared
  # across namespaces.
  wg_a=twga${TOPO_ID:2:6}
  wg_b=twgb${TOPO_ID:2:6}
  ka=$(wg genkey); kb=$(wg genkey)
  pa=$(echo "$ka" | wg pubkey); pb=$(echo "$kb" | wg pubkey)
  WG_PROCESS_FOREGROUND=1 ip netns exec "$NS_A" wireguard-go -f "$wg_a" >/dev/null 2>&1 &
  wpa=$!
  WG_PROCESS_FOREGROUND=1 ip netns exec "$NS_B" wireguard-go -f "$wg_b" >/dev/null 2>&1 &
  wpb=$!
  E2E_PIDS+=("$wpa" "$wpb")
  for _ in $(seq 100); do
    ip netns exec "$NS_A" ip link show "$wg_a" >/dev/null 2>&1 && ip netns exec "$NS_B" ip link show "$wg_b" >/dev/null 2>&1 && break
    sleep 0.05
  done
  echo "$ka" >"$WORK/ka"; echo "$kb" >"$WORK/kb"
  ip netns exec "$NS_A" wg set "$wg_a" listen-port 51820 private-key "$WORK/ka" peer "$pb" allowed-ips 100.64.99.2/32 endpoint 198.18.0.3:51820
  ip netns exec "$NS_B" wg set "$wg_b" listen-port 51820 private-key "$WORK/kb" peer "$pa" allowed-ips 100.64.99.1/32 endpoint 198.18.0.2:51820
  # wireguard-go's default MTU (1420) is left as it is.
  ip netns exec "$NS_A" ip addr add 100.64.99.1/24 dev "$wg_a"; ip netns exec "$NS_A" ip link set "$wg_a" up
  ip netns exec "$NS_B" ip addr add 100.64.99.2/24 dev "$wg_b"; ip netns exec "$NS_B" ip link set "$wg_b" up
  ip netns exec "$NS_A" ping -c 1 -W 2 100.64.99.2 >/dev/null
  add_tunnel wireguard-go "$IN_A" "$IN_B" 100.64.99.2 "$wpa=wireguard-go@a $wpb=wireguard-go@b"
fi

if want nebula; then
  (cd "$WORK" && nebula-cert ca -name tw-bench -out-crt ca.crt -out-key ca.key &&
    nebula-cert sign -ca-crt ca.crt -ca-key ca.key -name a -ip 100.64.98.1/24 -out-crt a.crt -out-key a.key &&
    nebula-cert sign -ca-crt ca.crt -ca-key ca.key -name b -ip 100.64.98.2/24 -out-crt b.crt -out-key b.key) >/dev/null
  for n in a b; do
    [ $n = a ] && peer=100.64.98.2 peer_ul=198.18.0.3 || peer=100.64.98.1 peer_ul=198.18.0.2
    cat >"$WORK/nebula-$n.yml" <<EOF
pki: {ca: $WORK/ca.crt, cert: $WORK/$n.crt, key: $WORK/$n.key}
static_host_map: {"$peer": ["$peer_ul:4242"]}
lighthouse: {am_lighthouse: false, hosts: []}
listen: {host: 0.0.0.0, port: 4242}
punchy: {punch: false}
tun: {dev: neb$n${TOPO_ID:2:6}}
logging: {level: warning}
firewall:
  outbound: [{port: any, proto: any, host: any}]
  inbound: [{port: any, proto: any, host: any}]
EOF
  done
  ip netns exec "$NS_A" nebula -config "$WORK/nebula-a.yml" >"$WORK/nebula-a.log" 2>&1 &
  npa=$!
  ip netns exec "$NS_B" nebula -config "$WORK/nebula-b.yml" >"$WORK/nebula-b.log" 2>&1 &
  npb=$!
  E2E_PIDS+=("$npa" "$npb")
  for _ in $(seq 50); do ip netns exec "$NS_A" ping -c 1 -W 1 100.64.98.2 >/dev/null 2>&1 && break; done
  add_tunnel nebula "$IN_A" "$IN_B" 100.64.98.2 "$npa=nebula@a $npb=nebula@b"
fi

if want tailscaled || want mixed; then
  if [ -x "$TS_BIN/interop.test" ] && [ -x "$TS_BIN/tailscaled" ]; then
    (cd "$TS_BIN" && TS_BIN=$TS_BIN TW_BIN=$BIN TW_THROUGHPUT_READY=$TS_READY \
      exec ./interop.test -test.run '^TestThroughputPair$' -test.v -test.timeout 30m) >"$WORK/tailscaled.log" 2>&1 &
    TS_PID=$!
    for _ in $(seq 600); do [ -s "$TS_READY" ] || ! kill -0 "$TS_PID" 2>/dev/null && break; sleep 0.1; done
    if [ -s "$TS_READY" ]; then
      # The fixture's namespaces are mounted only inside it: enter them by pid.
      { read -r ts_pid1 ts_ip1 ts_pid2 _; read -r _ _ tw_pid3 _; } <"$TS_READY"
      want tailscaled && add_tunnel tailscaled "nsenter -t $ts_pid2 -n" "nsenter -t $ts_pid1 -n" "$ts_ip1" \
        "$ts_pid2=tailscaled@a $ts_pid1=tailscaled@b"
      # The mixed pair: our node (a, the fixture's third node) and the same tailscaled (b).
      want mixed && [ -n "${tw_pid3:-}" ] && add_tunnel mixed "nsenter -t $tw_pid3 -n" "nsenter -t $ts_pid1 -n" \
        "$ts_ip1" "$(tw_procs_of "$tw_pid3" a)$ts_pid1=tailscaled@b"
    else
      echo "throughput: tailscaled pair did not come up:"; tail -20 "$WORK/tailscaled.log"
    fi
  else
    echo "throughput: no $TS_BIN/interop.test (tests/interop/run.sh builds it): tailscaled skipped"
  fi
fi

if want tailwarden; then
  e2e_init
  e2e_start_infra
  e2e_write_netmaps '["198.18.0.2:41641"]' '["198.18.0.3:41641"]'
  e2e_start_node a
  e2e_start_node b
  e2e_wait_path a b direct 10 >/dev/null
  ip netns exec "$NS_A" ping -c 1 -W 2 "$TAILNET_B" >/dev/null
  add_tunnel tailwarden "$IN_A" "$IN_B" "$TAILNET_B" "$(tw_procs "$NS_A" a)$(tw_procs "$NS_B" b)"
fi

# ---- measurement --------------------------------------------------------------------
for t in "${TUNNELS[@]}"; do
  ${T_SRV[$t]} iperf3 -s -B "${T_IP[$t]}" >/dev/null 2>&1 &
  E2E_PIDS+=($!)
  disown $!  # killed at the end: no "Killed" notice from the shell
done
sleep 0.5

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
RAW=$WORK/raw
: >"$RAW"
measure() {  # $1 tunnel $2 case $3 round
  local t=$1 c=$2 flags=()
  case $c in
    a2b-1) flags=() ;; b2a-1) flags=(-R) ;; a2b-4) flags=(-P 4) ;; b2a-4) flags=(-P 4 -R) ;;
  esac
  local -A before
  local kv pid
  for kv in ${T_PROCS[$t]}; do pid=${kv%%=*}; before[$pid]=$(ticks "$pid"); done
  local t0 t1 mbps
  t0=$(date +%s.%N)
  mbps=$(${T_CLI[$t]} iperf3 -c "${T_IP[$t]}" -t "$SECS" "${flags[@]}" -J 2>/dev/null |
    python3 -c "import json,sys; print(f\"{json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e6:.0f}\")" 2>/dev/null || echo 0)
  t1=$(date +%s.%N)
  local cpu=""
  for kv in ${T_PROCS[$t]}; do
    pid=${kv%%=*}
    cpu+="${kv#*=}:$(python3 -c "print(f'{($(ticks "$pid") - ${before[$pid]}) / $HZ / ($t1 - $t0) * 100:.0f}')") "
  done
  echo "$t $c $3 $mbps $cpu" >>"$RAW"
}

CASES=(a2b-1 b2a-1 a2b-4 b2a-4)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$RUNS"); do
  for c in "${CASES[@]}"; do
    for t in "${TUNNELS[@]}"; do measure "$t" "$c" "$r"; done
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
chacha=$(openssl speed -elapsed -seconds 2 -bytes 1420 -evp chacha20-poly1305 2>/dev/null |
  awk '/^ChaCha20-Poly1305/ {v=$NF; sub(/k$/, "", v); printf "%.0f", v * 1000 * 8 / 1e6}')
stop_ts

python3 - "$RAW" "$SECS" "$RUNS" "${chacha:-0}" "$load0" "$load1" <<'PY'
import statistics, sys, collections
raw, secs, runs, chacha, load0, load1 = sys.argv[1:7]
chacha = float(chacha)
rate = collections.defaultdict(list)
cpu = collections.defaultdict(lambda: collections.defaultdict(list))
order = []
for line in open(raw):
    f = line.split()
    t, c, mbps = f[0], f[1], float(f[3])
    if t not in order: order.append(t)
    rate[(t, c)].append(mbps)
    for kv in f[4:]:
        name, v = kv.rsplit(":", 1)
        cpu[(t, c)][name].append(float(v))
med = {k: statistics.median(v) for k, v in rate.items()}
cases = ["a2b-1", "b2a-1", "a2b-4", "b2a-4"]
title = {"a2b-1": "a->b 1 flow", "b2a-1": "b->a 1 flow", "a2b-4": "a->b 4 flows", "b2a-4": "b->a 4 flows"}
mtu = {"veth": "1500", "wireguard-go": "1420", "nebula": "1300", "tailscaled": "1280", "mixed": "1280",
       "tailwarden": "1280"}
print(f"\nTCP Mbit/s, median of {runs} interleaved {secs}s runs (load {load0} -> {load1});"
      f" one core's ChaCha20-Poly1305 (openssl, 1420 B): {chacha:.0f} Mbit/s")
hdr = f"{'tunnel (MTU)':22}" + "".join(f"{title[c]:>15}" for c in cases) + f"{'vs tailscaled':>15}{'vs wg-go':>13}{'vs chacha':>10}"
print(hdr)
for t in order:
    row = f"{t + ' (' + mtu.get(t, '?') + ')':22}" + "".join(f"{med.get((t, c), 0):>15.0f}" for c in cases)
    def ratio(ref):
        if (ref, "a2b-1") not in med or t == ref: return "" if t != ref else "1.00"
        vals = [med[(t, c)] / med[(ref, c)] for c in cases if med.get((ref, c))]
        return f"{min(vals):.2f}-{max(vals):.2f}" if vals else "n/a"
    row += f"{ratio('tailscaled'):>15}{ratio('wireguard-go'):>13}"
    row += f"{med.get((t, 'a2b-1'), 0) / chacha:>10.2f}" if chacha else f"{'':>10}"
    print(row)
print("\nCPU % of one core per process during the measurement (median; a = sender for a->b):")
for t in order:
    for c in cases:
        procs = cpu.get((t, c))
        if not procs: continue
        parts = ", ".join(f"{n} {statistics.median(v):.0f}" for n, v in sorted(procs.items()))
        total = sum(statistics.median(v) for v in procs.values())
        eff = med[(t, c)] / (total / 100) if total else 0
        print(f"  {t:13} {title[c]:13} total {total:4.0f}%  ({eff:5.0f} Mbit/s per core)  {parts}")
PY
