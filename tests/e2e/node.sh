#!/usr/bin/env bash
# Starting tailwarden nodes, the DERP relay and the STUN server inside the namespaces
# of topology.sh. Source topology.sh first, then this file.
#   e2e_init                      work dir, keys, relay cert; needs $BIN (build/*/bin)
#   e2e_start_infra               coturn (STUN) and tailwarden-derper on $INET_IP
#   e2e_write_netmaps [ep_a ep_b] netmaps for a and b (optional static endpoints)
#   e2e_start_node a|b            tailwardend in $NS_A / $NS_B
#   e2e_cli a|b ARGS...           tailwarden CLI against that node's admin socket
#   e2e_wait_path a|b PEER KIND T wait until the peer's path is KIND (direct|derp)
#   e2e_wait_ready N... T         wait until each node is ready: children answer, peers
#                                 loaded, home DERP connected
#   e2e_capture_start NAME NS IFACE DIR FILTER   tcpdump to $E2E_DIR/NAME.pcap
#   e2e_capture_stop NAME         flushes and stops that capture
#   e2e_pid N broker|netproc|dataproc   a node's process ids, from status --json
#   e2e_mem_kb PID                "VmRSS RssAnon RssShmem" of a process in KiB
#   e2e_memfd_kb PID              KiB of memfd (IPC ring) mappings of a process
#   e2e_cleanup                   stops what we started (by PID) and removes namespaces
set -u

# The system interpreter, not a version-manager shim: a pyenv shim costs ~2 s per
# start on a loaded machine, which would swamp every timing taken around it. As a
# function, it serves every script that sources this file.
E2E_PY=${E2E_PYTHON:-$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)}
python3() { "$E2E_PY" "$@"; }

E2E_PIDS=()
TAILNET_A=100.64.0.1
TAILNET_B=100.64.0.2
DERP_PORT=3340
STUN_PORT=3478

e2e_init() {
  # The children's accounts (child_user = "twtest": one uid per child).
  "$(dirname "${BASH_SOURCE[0]}")/../lib/child-accounts" >/dev/null || { echo "FAIL: test accounts"; exit 1; }
  E2E_DIR=$(mktemp -d /tmp/tw-e2e-XXXXXX)
  chmod 755 "$E2E_DIR"
  for n in a b; do
    mkdir -p "$E2E_DIR/$n"
    "$BIN/tailwarden" keygen -o "$E2E_DIR/$n/keys" 2>"$E2E_DIR/$n/pub" >/dev/null
  done
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=derp.lab" -addext "subjectAltName=DNS:derp.lab,IP:$INET_IP" \
    -keyout "$E2E_DIR/derp.key" -out "$E2E_DIR/derp.crt" >/dev/null 2>&1
}

_pub() { grep "^$2 = " "$E2E_DIR/$1/pub" | sed 's/.* = //'; }

e2e_start_infra() {
  ip netns exec "$NS_INET" turnserver --stun-only -L "$INET_IP" -p "$STUN_PORT" --no-cli --no-tls \
    --no-dtls -n --log-file stdout --simple-log >"$E2E_DIR/coturn.log" 2>&1 &
  E2E_PIDS+=($!)
  ip netns exec "$NS_INET" "$BIN/tailwarden-derper" --listen "$INET_IP:$DERP_PORT" \
    --tls-cert "$E2E_DIR/derp.crt" --tls-key "$E2E_DIR/derp.key" --key-file "$E2E_DIR/derp.server.key" \
    >"$E2E_DIR/derper.log" 2>&1 &
  E2E_PIDS+=($!)
  sleep 0.3
}

_derp_map() {
  cat <<JSON
{"Regions":{"900":{"RegionID":900,"RegionCode":"lab","RegionName":"Lab","Nodes":[
  {"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"$INET_IP","IPv6":"none",
   "STUNPort":$STUN_PORT,"DERPPort":$DERP_PORT,"InsecureForTests":true}]}}}
JSON
}

# $1 self, $2 peer; $3 optional endpoints JSON array for the peer
_netmap() {
  local self=$1 peer=$2 eps=${3:-[]}
  local self_ip peer_ip
  [ "$self" = a ] && self_ip=$TAILNET_A peer_ip=$TAILNET_B || self_ip=$TAILNET_B peer_ip=$TAILNET_A
  cat <<JSON
{"self":{"name":"$self","node_key":"$(_pub "$self" node_key)","addresses":["$self_ip/32"],"home_derp":900},
 "peers":[{"name":"$peer","node_key":"$(_pub "$peer" node_key)","disco_key":"$(_pub "$peer" disco_key)",
   "addresses":["$peer_ip/32"],"endpoints":$eps,"home_derp":900}],
 "derp_map":$(_derp_map)}
JSON
}

e2e_write_netmaps() {
  _netmap a b "${2:-[]}" >"$E2E_DIR/a/netmap.json.tmp" && mv "$E2E_DIR/a/netmap.json.tmp" "$E2E_DIR/a/netmap.json"
  _netmap b a "${1:-[]}" >"$E2E_DIR/b/netmap.json.tmp" && mv "$E2E_DIR/b/netmap.json.tmp" "$E2E_DIR/b/netmap.json"
}

e2e_start_node() {
  local n=$1 ns
  [ "$n" = a ] && ns=$NS_A || ns=$NS_B
  cat >"$E2E_DIR/$n/config.toml" <<TOML
state_dir = "$E2E_DIR/$n"
key_file = "$E2E_DIR/$n/keys"
netmap_file = "$E2E_DIR/$n/netmap.json"
listen_port = 41641
admin_socket = "$E2E_DIR/$n/admin.sock"
child_user = "twtest"
log_level = "${E2E_LOG_LEVEL:-info}"
derp_insecure_for_tests = true
[tun]
enabled = true
name = "tw0"
mtu = 1280
TOML
  ip netns exec "$ns" "$BIN/tailwardend" --config "$E2E_DIR/$n/config.toml" >"$E2E_DIR/$n/log" 2>&1 &
  E2E_PIDS+=($!)
  eval "E2E_PID_$n=$!"
}

e2e_cli() {
  local n=$1
  shift
  "$BIN/tailwarden" --socket "$E2E_DIR/$n/admin.sock" "$@"
}

# Prints the path kind of PEER as node N sees it (direct|derp|none|?).
e2e_path() {
  e2e_cli "$1" status --json 2>/dev/null |
    python3 -c "import json,sys
try:
  s=json.load(sys.stdin); print(next((p.get('path','?') for p in s['peers'] if p['name']=='$2'),'?'))
except Exception: print('?')"
}

# e2e_wait_path N PEER KIND TIMEOUT_S [SINCE]: prints the seconds it took, or fails.
# One process polls status every 20 ms, so the figure is not the cost of the polling.
# With SINCE (a `date +%s.%N` stamp) it also prints the seconds from SINCE until the
# path was seen, so the start-up of the poller is not counted either.
e2e_wait_path() {
  python3 - "$BIN/tailwarden" "$E2E_DIR/$1/admin.sock" "$2" "$3" "$4" "${5:-}" <<'PY'
import json, subprocess, sys, time
cli, sock, peer, kind, timeout, since = sys.argv[1:7]
start = time.time()
while True:
    try:
        out = subprocess.run([cli, "--socket", sock, "status", "--json"], capture_output=True,
                             timeout=5).stdout
        path = next((p.get("path") for p in json.loads(out)["peers"] if p["name"] == peer), None)
    except Exception:
        path = None
    if path == kind:
        now = time.time()
        print(f"{now - start:.2f}" + (f" {now - float(since):.2f}" if since else ""))
        sys.exit(0)
    if time.time() - start > float(timeout):
        print("timeout")
        sys.exit(1)
    time.sleep(0.02)
PY
}

# e2e_wait_ready NODE... TIMEOUT_S: prints the seconds until every NODE is ready (both
# children answer status, the netmap's peers are loaded and the home DERP region is
# connected, so the node can reach and be reached by every peer), or fails.
e2e_wait_ready() {
  local args=("$@") n socks=()
  local timeout=${args[-1]}
  unset 'args[-1]'
  for n in "${args[@]}"; do socks+=("$E2E_DIR/$n/admin.sock"); done
  python3 - "$BIN/tailwarden" "$timeout" "${socks[@]}" <<'PY'
import json, subprocess, sys, time
cli, timeout, socks = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
start = time.time()
pending = list(socks)
while pending:
    sock = pending[0]
    try:
        out = subprocess.run([cli, "--socket", sock, "status", "--json"], capture_output=True,
                             timeout=5).stdout
        s = json.loads(out)
        if s["self"]["children_running"] and s["peers"]:
            nc = json.loads(subprocess.run([cli, "--socket", sock, "netcheck", "--json"],
                                           capture_output=True, timeout=5).stdout)
            if any(r.get("home") and r.get("connected") for r in nc["derp"]):
                pending.pop(0)
                continue
    except Exception:
        pass
    if time.time() - start > timeout:
        print("timeout")
        sys.exit(1)
    time.sleep(0.02)
print(f"{time.time() - start:.2f}")
PY
}

# e2e_capture_start NAME NS IFACE DIRECTION FILTER: a packet capture (tcpdump, packet-
# buffered so the file is complete the moment it stops) of DIRECTION (in|out|inout)
# on IFACE inside NS; returns once tcpdump is listening.
e2e_capture_start() {
  local name=$1 ns=$2 ifc=$3 dir=$4 filter=$5
  ip netns exec "$ns" tcpdump -i "$ifc" -Q "$dir" -U --immediate-mode -n -Z root -w "$E2E_DIR/$name.pcap" "$filter" \
    2>"$E2E_DIR/$name.tcpdump.log" &
  local pid=$!
  E2E_PIDS+=("$pid")
  eval "E2E_CAP_$name=$pid"
  for _ in $(seq 200); do
    grep -q "listening on" "$E2E_DIR/$name.tcpdump.log" 2>/dev/null && return 0
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  echo "capture $name did not start: $(cat "$E2E_DIR/$name.tcpdump.log")" >&2
  return 1
}

e2e_capture_stop() {
  local pid
  eval "pid=\${E2E_CAP_$1:-}"
  [ -n "$pid" ] || return 0
  kill -INT "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  eval "E2E_CAP_$1="
}

e2e_pid() {
  e2e_cli "$1" status --json 2>/dev/null |
    python3 -c "import json,sys; print(json.load(sys.stdin)['self']['pids']['$2'])" 2>/dev/null
}

# e2e_mem_kb PID: "VmRSS RssAnon RssShmem" of a process, in KiB.
e2e_mem_kb() {
  awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssShmem:/ {s=$2} END {print r+0, a+0, s+0}' "/proc/$1/status" 2>/dev/null
}

# e2e_memfd_kb PID: the size of every memfd a process maps (the IPC rings), in KiB.
e2e_memfd_kb() {
  local range rest total=0
  while read -r range rest; do
    case "$rest" in *memfd:*) total=$((total + 16#${range#*-} - 16#${range%-*})) ;; esac
  done <"/proc/$1/maps"
  echo $((total / 1024))
}

e2e_cleanup() {
  for pid in "${E2E_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  sleep 0.2
  for pid in "${E2E_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  E2E_PIDS=()
  topo_down
}
