#!/usr/bin/env bash
# The operator surface end to end: two real nodes, a DERP relay with its
# STUN responder and a coturn STUN server in one network namespace. Checks
#   * every `--json` listing (status, ping, netcheck, endpoints, audit) against its
#     schema in docs/schemas/ (scripts/cli-json validate);
#   * netcheck's DERP region latency: measured from real STUN answers, the node that
#     answered, the relay connection, a STUN-less region reported as such; and the
#     human "DERP latency:" lines;
#   * the endpoints file: written at start, valid JSON identical to `endpoints
#     --json`, mode 0644 owned by root, rewritten when the set changes, and never
#     seen half-written by a reader polling it during the change.
# Needs root (namespaces); exits 77 (skipped) otherwise. Env: BIN (build/*/bin), SRC.
set -u
source "$(cd "$(dirname "$0")/../../e2e" && pwd)/signals.sh"
tw_signals_init "$0" "$@"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for b in tailwardend tailwarden tailwarden-netproc tailwarden-dataproc tailwarden-derper; do
  [ -x "$BIN/$b" ] || { echo "SKIP: $BIN/$b not built"; exit 77; }
done
command -v turnserver >/dev/null || { echo "SKIP: coturn not installed"; exit 77; }
"$(dirname "$0")/../../lib/child-accounts" >/dev/null || { echo "FAIL: test accounts (tests/lib/child-accounts)"; exit 1; }

NS="twop$$"
DIR=$(mktemp -d /tmp/tw-opjson-XXXXXX)
chmod 755 "$DIR"
PIDS=()
RELAY_IP=198.18.77.1 STUN2_IP=198.18.77.5
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
tw_on_exit cleanup

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
nsx() { ip netns exec "$NS" "$@"; }  # not for "&": $! would be the subshell, not the process
cli() { local n=$1; shift; "$BIN/tailwarden" --socket "$DIR/$n/admin.sock" "$@"; }
validate() { "$SRC/scripts/cli-json" validate "$@" && ok "$1 output matches docs/schemas/$1.schema.json ($2)" ||
  fail "$1 output does not match its schema ($2)"; }
# wait_for SECONDS COMMAND...: retries every 0.2 s.
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.2; done
}
pyq() { python3 -c "$1" "${@:2}"; }

ip netns add "$NS" || exit 1
nsx ip link set lo up
# Everything talks over local addresses (no dummy module needed).
nsx ip addr add "$RELAY_IP/32" dev lo
nsx ip addr add "$STUN2_IP/32" dev lo

# Infrastructure: DERP relay + its STUN responder; coturn as a second STUN server.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=derp.lab" \
  -addext "subjectAltName=DNS:derp.lab,IP:$RELAY_IP" -keyout "$DIR/derp.key" -out "$DIR/derp.crt" >/dev/null 2>&1
ip netns exec "$NS" "$BIN/tailwarden-derper" --listen "$RELAY_IP:3340" --stun-port 3478 --tls-cert "$DIR/derp.crt" \
  --tls-key "$DIR/derp.key" --key-file "$DIR/derp.server.key" >"$DIR/derper.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NS" turnserver --stun-only -L "$STUN2_IP" -p 3479 --no-cli --no-tls --no-dtls -n --log-file stdout \
  --pidfile "$DIR/coturn.pid" --db "$DIR/coturn.db" >"$DIR/coturn.log" 2>&1 &
PIDS+=($!)

for n in a b c w; do
  mkdir -p "$DIR/$n"
  "$BIN/tailwarden" keygen -o "$DIR/$n/keys" 2>"$DIR/$n/pub" >/dev/null || exit 1
done
pub() { grep "^$2 = " "$DIR/$1/pub" | sed 's/.* = //'; }

derp_map() {  # $1: extra regions
  cat <<JSON
{"Regions":{
 "900":{"RegionID":900,"RegionCode":"lab","RegionName":"Lab","Nodes":[
   {"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"$RELAY_IP","IPv6":"none",
    "STUNPort":3478,"DERPPort":3340,"InsecureForTests":true}]},
 "902":{"RegionID":902,"RegionCode":"relayonly","RegionName":"Relay only","Nodes":[
   {"Name":"902a","RegionID":902,"HostName":"derp.lab","IPv4":"$RELAY_IP","IPv6":"none",
    "STUNPort":-1,"DERPPort":3340,"InsecureForTests":true}]}$1}}
JSON
}
peer() {  # name ip
  echo "{\"name\":\"$1\",\"node_key\":\"$(pub "$1" node_key)\",\"disco_key\":\"$(pub "$1" disco_key)\",
   \"addresses\":[\"$2/32\"],\"endpoints\":[],\"home_derp\":900}"
}
netmap_a() {
  cat <<JSON
{"self":{"name":"a","node_key":"$(pub a node_key)","addresses":["100.64.0.1/32"],"home_derp":900},
 "peers":[$(peer b 100.64.0.2),$(peer c 100.64.0.3),
   {"name":"w","node_key":"$(pub w node_key)","wireguard_only":true,"addresses":["100.64.0.4/32"],
    "endpoints":["198.18.77.9:51820"]}],
 "derp_map":$(derp_map "$1")}
JSON
}
netmap_a "" >"$DIR/a/netmap.json"
cat >"$DIR/b/netmap.json" <<JSON
{"self":{"name":"b","node_key":"$(pub b node_key)","addresses":["100.64.0.2/32"],"home_derp":900},
 "peers":[$(peer a 100.64.0.1)],"derp_map":$(derp_map "")}
JSON
start_node() {  # name port [extra config]
  cat >"$DIR/$1/config.toml" <<TOML
state_dir = "$DIR/$1"
key_file = "$DIR/$1/keys"
netmap_file = "$DIR/$1/netmap.json"
listen_port = $2
admin_socket = "$DIR/$1/admin.sock"
child_user = "twtest"
# Both nodes, the relay and coturn share one namespace and talk over its own
# addresses, which the kernel egress allowlist never approves (tests/integration/
# egress covers the allowlist).
egress_allowlist = "unenforced"
derp_insecure_for_tests = true
$3
[tun]
enabled = false
TOML
  ip netns exec "$NS" "$BIN/tailwardend" --config "$DIR/$1/config.toml" >"$DIR/$1/log" 2>&1 &
  PIDS+=($!)
}
EPF="$DIR/a/endpoints.json"
start_node a 41641 "endpoints_file = \"$EPF\""
start_node b 41642 ""

running() { cli "$1" status --json 2>/dev/null | grep -q '"children_running": true'; }
wait_for 20 running a || { fail "node a did not come up"; tail -20 "$DIR/a/log"; exit 1; }
wait_for 20 running b || { fail "node b did not come up"; tail -20 "$DIR/b/log"; exit 1; }
ok "both nodes running"

# --- endpoints file: present from the start, root:root 0644, same JSON as the CLI.
[ -f "$EPF" ] && ok "endpoints file written at start" || fail "no endpoints file at start"
[ "$(stat -c '%a %u %g' "$EPF" 2>/dev/null)" = "644 0 0" ] && ok "endpoints file is 0644 root:root" ||
  fail "endpoints file mode/owner: $(stat -c '%a %u %g' "$EPF" 2>&1)"
has_endpoints() { cli a endpoints --json 2>/dev/null | grep -q '"endpoints":\["'; }
wait_for 20 has_endpoints || fail "node a advertised no endpoint within 20 s"
# The endpoint set may still be settling (a second STUN server answers, a reflexive
# address ages, a netmap was just applied): compare the file with the broker's answer
# once both have agreed on two consecutive reads, never one read of each racing an update.
# Leaves the last CLI answer in $1.
file_agrees_twice() {
  local out=$1 i
  for i in 1 2; do
    cli a endpoints --json >"$out" 2>/dev/null || return 1
    cmp -s "$out" "$EPF" || return 1
    [ "$i" = 2 ] || sleep 0.2
  done
}
wait_for 15 file_agrees_twice "$DIR/endpoints.jsonl" && ok "endpoints file == tailwarden endpoints --json" ||
  fail "endpoints file differs: $(cat "$EPF") vs $(cat "$DIR/endpoints.jsonl")"
validate endpoints "$DIR/endpoints.jsonl"
validate endpoints "$EPF"

# --- ping: pongs from b, a timeout from c (never started; exit status 1).
pong() { cli a ping b -c 2 --json >"$DIR/ping_b.jsonl" 2>/dev/null && grep -q '"via"' "$DIR/ping_b.jsonl"; }
wait_for 30 pong && ok "ping b: $(head -1 "$DIR/ping_b.jsonl")" || fail "no pong from b"
[ "$(wc -l <"$DIR/ping_b.jsonl")" -eq 2 ] && ok "ping -c 2 printed 2 replies" || fail "ping -c 2 printed $(wc -l <"$DIR/ping_b.jsonl") lines"
cli a ping c -c 1 --json >"$DIR/ping_c.jsonl" 2>/dev/null && fail "ping to a silent peer exited 0"
grep -q '"timeout":true' "$DIR/ping_c.jsonl" && ok "ping c timed out" || fail "ping c: $(cat "$DIR/ping_c.jsonl")"
validate ping "$DIR/ping_b.jsonl" "$DIR/ping_c.jsonl"

# --- netcheck: DERP latency from the relay's STUN responder; relay-only region.
lab_measured() {
  cli a netcheck --json >"$DIR/netcheck.json" 2>/dev/null &&
    pyq 'import json,sys; d=json.load(open(sys.argv[1]))["derp"]; sys.exit(0 if d and d[0]["stun"]=="measured" and d[0]["connected"] else 1)' "$DIR/netcheck.json"
}
wait_for 30 lab_measured || fail "netcheck: lab never measured and connected: $(cat "$DIR/netcheck.json")"
validate netcheck "$DIR/netcheck.json"
pyq '
import json, sys
r = json.load(open(sys.argv[1]))
d = {x["region"]: x for x in r["derp"]}
lab, ro = d["lab"], d["relayonly"]
assert [x["region"] for x in r["derp"]] == ["lab", "relayonly"], r["derp"]
assert lab["node"] == "900a" and lab["stun_server"] == "198.18.77.1:3478", lab
assert lab["home"] and lab["connected"] and 0 < lab["min_latency_ms"] <= lab["latency_ms"] < 1000, lab
assert ro["stun"] == "no_stun" and "latency_ms" not in ro and not ro["home"], ro
' "$DIR/netcheck.json" && ok "netcheck: lab measured via 900a, home and connected; relayonly no_stun" ||
  fail "netcheck DERP section: $(cat "$DIR/netcheck.json")"
cli a netcheck >"$DIR/netcheck.txt"
grep -q "DERP latency:" "$DIR/netcheck.txt" &&
  grep -Eq $'^\t\t- lab: [0-9.]+ms \\(Lab\\) via 900a, min [0-9.]+ms, .* \\[home, connected\\]$' "$DIR/netcheck.txt" &&
  grep -q $'^\t\t- relayonly: no STUN endpoint (Relay only)$' "$DIR/netcheck.txt" &&
  grep -q $'^\t\\* Nearest DERP: Lab$' "$DIR/netcheck.txt" && ok "netcheck text shows DERP latency lines" ||
  fail "netcheck text: $(cat "$DIR/netcheck.txt")"

# --- status and audit.
cli a status --json >"$DIR/status.json"
validate status "$DIR/status.json"
pyq '
import json, sys
s = json.load(open(sys.argv[1]))
p = {x["name"]: x for x in s["peers"]}
assert sorted(p) == ["b", "c", "w"], p
assert p["w"]["wireguard_only"] and p["w"]["path"] == "direct", p["w"]
assert p["b"]["path"] in ("direct", "derp") and p["c"]["path"] in ("derp", "none"), p
assert s["self"]["home_derp"] == "lab" and not s["self"]["inert"] and s["self"]["endpoints"], s["self"]
' "$DIR/status.json" && ok "status lists b, c and the wireguard_only w" || fail "status content: $(cat "$DIR/status.json")"
cli a status >"$DIR/status.txt"
grep -q "^# endpoints: 198.18.77.1:41641" "$DIR/status.txt" && grep -q "^# home DERP: lab$" "$DIR/status.txt" &&
  ok "status header: endpoints and home DERP" || fail "status header: $(head -4 "$DIR/status.txt")"
cli a audit --json >"$DIR/audit.json"
validate audit "$DIR/audit.json"

# --- endpoints file follows a change; a reader polling it never sees a partial file.
before=$(cat "$EPF")
"$BIN/tailwarden" --socket "$DIR/a/admin.sock" endpoints --watch --json >"$DIR/watch.jsonl" 2>&1 &
WATCH=$!
PIDS+=($WATCH)
python3 - "$EPF" "$DIR/stop-reader" >"$DIR/reader.out" <<'PY' &
import json, os, sys
path, stop = sys.argv[1], sys.argv[2]
good = bad = 0
open(stop + ".ready", "w").close()
while not os.path.exists(stop):
    try:
        with open(path) as f:
            json.loads(f.read())
        good += 1
    except Exception as e:
        bad += 1
        print("bad read:", e, file=sys.stderr)
print(good, bad)
PY
READER=$!
PIDS+=($READER)
wait_for 20 test -f "$DIR/stop-reader.ready" || fail "the file reader did not start"
netmap_a ',
 "901":{"RegionID":901,"RegionCode":"lab2","RegionName":"Lab 2","Nodes":[
   {"Name":"901a","RegionID":901,"HostName":"derp2.lab","IPv4":"'$STUN2_IP'","IPv6":"none",
    "STUNPort":3479,"DERPPort":3340,"InsecureForTests":true}]}' >"$DIR/a/netmap2.json"
cli a netmap apply "$DIR/a/netmap2.json" || fail "netmap apply"
changed() { grep -q "$STUN2_IP:41641" "$EPF"; }
wait_for 20 changed && ok "endpoints file rewritten with the new endpoint: $(cat "$EPF")" ||
  fail "endpoints file did not change: $(cat "$EPF")"
sleep 0.5
touch "$DIR/stop-reader"
wait "$READER"
read -r good bad <"$DIR/reader.out"
[ "${bad:-1}" -eq 0 ] && [ "${good:-0}" -gt 50 ] && ok "reader: $good complete reads, 0 partial" ||
  fail "reader saw $bad bad reads of $((good + bad))"
[ "$(cat "$EPF")" != "$before" ] || fail "endpoints file unchanged"
[ "$(stat -c '%a %u' "$EPF")" = "644 0" ] || fail "mode after rewrite: $(stat -c '%a %u' "$EPF")"
wait_for 15 file_agrees_twice "$DIR/endpoints2.jsonl" && ok "rewritten file == endpoints --json (settled)" ||
  fail "rewritten file differs: file $(cat "$EPF") vs endpoints --json $(cat "$DIR/endpoints2.jsonl")"
kill "$WATCH" 2>/dev/null
wait "$WATCH" 2>/dev/null
[ "$(wc -l <"$DIR/watch.jsonl")" -ge 2 ] && ok "endpoints --watch printed $(wc -l <"$DIR/watch.jsonl") sets" ||
  fail "endpoints --watch: $(cat "$DIR/watch.jsonl")"
validate endpoints "$DIR/watch.jsonl"
[ -z "$(ls -A "$DIR/a" | grep '^\.endpoints')" ] || fail "temporary files left: $(ls -A "$DIR/a")"

# Two STUN servers answered: netcheck now says whether the mapping varies.
two_stun() {
  cli a netcheck --json >"$DIR/netcheck2.json" 2>/dev/null && grep -q mapping_varies_by_dest_ip "$DIR/netcheck2.json"
}
wait_for 20 two_stun && ok "netcheck with two STUN servers" || fail "netcheck2: $(cat "$DIR/netcheck2.json")"
validate netcheck "$DIR/netcheck2.json"
pyq 'import json,sys; r=json.load(open(sys.argv[1])); assert [x["region"] for x in r["derp"]][-1] == "relayonly" and {x["region"] for x in r["derp"] if x["stun"]=="measured"} >= {"lab","lab2"}, r["derp"]' \
  "$DIR/netcheck2.json" && ok "netcheck: lab and lab2 measured, relay-only last" || fail "netcheck2 derp: $(cat "$DIR/netcheck2.json")"

if [ "$FAILS" -ne 0 ]; then
  echo "$FAILS check(s) failed; logs:"
  tail -15 "$DIR/a/log"
  exit 1
fi
echo "all operator JSON checks passed"
