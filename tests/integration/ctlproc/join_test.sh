#!/usr/bin/env bash
# A tailwardend joins Tailscale's testcontrol (tests/interop/controlserver) with an
# auth key, through its sandboxed ctlproc: the broker dials control, ctlproc
# registers and follows the map, the broker applies the maps as new netmap
# generations; `tailwarden status --json` shows the control state (and matches its
# schema); our disco key reaches control; a control outage keeps the last map in
# force, and a restarted control server (new key, empty state) is rejoined.
# Everything runs in a network namespace with only a loopback interface.
# Needs root; exits 77 (skipped) otherwise. Env: BIN (build/*/bin), SRC, CONTROLSERVER
# (built here with GO when set).
set -u
. "$(dirname "$0")/../../lib/check.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
if [ -n "${GO:-}" ] && [ -x "$GO" ]; then
  (cd "$SRC/tests/interop/controlserver" && GOFLAGS=-mod=readonly "$GO" build -o "$CONTROLSERVER" .) ||
    { echo "FAIL: go build of tests/interop/controlserver"; exit 1; }
fi
[ -x "$CONTROLSERVER" ] || { echo "SKIP: $CONTROLSERVER not built (needs Go)"; exit 77; }

tw_check_init join tailwardend tailwarden tailwarden-netproc tailwarden-dataproc tailwarden-ctlproc
tw_child_accounts
NS="tw17j$$"
NSS+=("$NS")
CS_PID=""
tw_extra_cleanup() { [ -n "$CS_PID" ] && PIDS+=("$CS_PID"); }
cli() { "$BIN/tailwarden" --socket "$DIR/admin.sock" "$@"; }
status_json() { cli status --json 2>/dev/null; }
jq_status() { status_json | python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" 2>/dev/null; }

ip netns add "$NS" || exit 1
ip netns exec "$NS" ip link set lo up

# The control server, with a command channel on a fifo.
start_control() {
  rm -f "$DIR/cs.in"
  mkfifo "$DIR/cs.in"
  ip netns exec "$NS" "$CONTROLSERVER" -listen 127.0.0.1:9917 -authkey tskey-join17 <"$DIR/cs.in" >"$DIR/cs.out" 2>"$DIR/cs.log" &
  CS_PID=$!
  exec 7>"$DIR/cs.in"
  wait_for 20 grep -q '^URL ' "$DIR/cs.out" || { fail "controlserver did not start"; cat "$DIR/cs.log"; exit 1; }
}
cs() {  # cs COMMAND: prints the answer line
  local before; before=$(wc -l <"$DIR/cs.out")
  echo "$*" >&7
  wait_for 5 test "$(wc -l <"$DIR/cs.out")" -gt "$before"
  tail -1 "$DIR/cs.out"
}
start_control
FAKE=$(cs addfake | sed 's/^FAKE //')
case "$FAKE" in nodekey:*) ok "a Go-made peer exists in control ($FAKE)" ;; *) fail "addfake: $FAKE"; exit 1 ;; esac

"$BIN/tailwarden" keygen -o "$DIR/keys" 2>"$DIR/pub" >/dev/null || exit 1
pub() { grep "^$1 = " "$DIR/pub" | sed 's/.* = //'; }
grep -q '^machine_key = mkey:' "$DIR/pub" && ok "keygen made a machine key" || fail "keygen printed no machine_key"
# The bootstrap map: ourselves only, until control sends the real one.
cat >"$DIR/netmap.json" <<JSON
{"self":{"name":"boot","node_key":"$(pub node_key)","addresses":["100.64.99.1/32"]},"peers":[]}
JSON
printf 'tskey-join17\n' >"$DIR/authkey"
chmod 600 "$DIR/authkey"
cat >"$DIR/config.toml" <<TOML
state_dir = "$DIR"
key_file = "$DIR/keys"
netmap_file = "$DIR/netmap.json"
admin_socket = "$DIR/admin.sock"
child_user = "twtest"
control_url = "http://127.0.0.1:9917"
auth_key_file = "$DIR/authkey"
hostname = "tw17join"
[tun]
enabled = false
TOML
ip netns exec "$NS" "$BIN/tailwardend" --config "$DIR/config.toml" >"$DIR/node.log" 2>&1 &
PIDS+=($!)

connected() { [ "$(jq_status 'd["control"]["state"]')" = connected ]; }
has_fake() { status_json | grep -q "\"$FAKE\""; }
if wait_for 30 connected && wait_for 10 has_fake; then
  ok "joined: control state connected, the Go-made peer is in our netmap"
else
  fail "did not join: $(status_json | head -c 600)"; tail -30 "$DIR/node.log"
fi
GEN=$(jq_status 'd["netmap_generation"]')
[ "${GEN:-0}" -ge 2 ] && ok "control map applied as netmap generation $GEN" || fail "netmap generation $GEN"
ADDR=$(jq_status 'd["self"]["address"]')
case "$ADDR" in 100.64.0.*) ok "our address comes from control: $ADDR" ;; *) fail "self address $ADDR" ;; esac
status_json >"$DIR/status.json"
"$SRC/scripts/cli-json" validate status "$DIR/status.json" >/dev/null 2>&1 &&
  ok "status --json with control matches docs/schemas/status.schema.json" || fail "status --json does not match its schema"
NODE=$(cs node "$(pub node_key)")
echo "$NODE" | grep -q "\"DiscoKey\":\"$(pub disco_key)\"" && ok "our disco key reached control" ||
  fail "control has no disco key for us: $NODE"
CTLPID=$(jq_status 'd["control"]["pid"]')
if [ -n "$CTLPID" ] && [ -r "/proc/$CTLPID/status" ]; then
  grep -q 'Seccomp:[[:space:]]2' "/proc/$CTLPID/status" && grep -q 'NoNewPrivs:[[:space:]]1' "/proc/$CTLPID/status" &&
    ok "ctlproc (pid $CTLPID) runs with NoNewPrivs and seccomp" || fail "ctlproc is not sandboxed"
  [ "$(readlink /proc/$CTLPID/ns/net)" != "$(readlink /proc/self/ns/net)" ] &&
    [ "$(readlink /proc/$CTLPID/ns/net)" != "$(ip netns exec "$NS" readlink /proc/self/ns/net)" ] &&
    ok "ctlproc lives in its own network namespace" || fail "ctlproc shares a network namespace"
else
  fail "no ctlproc pid in status"
fi

cli audit --json >"$DIR/audit.json" 2>/dev/null
python3 - "$DIR/audit.json" <<'PY' && ok "audit covers ctlproc and lists the control address as an allowed TCP destination" || fail "audit: $(head -c 800 "$DIR/audit.json")"
import json, sys
d = json.load(open(sys.argv[1]))
rows = d["rows"]
assert any(r["process"] == "broker" and "control" in r["check"] and r["detail"] == "127.0.0.1:9917" for r in rows)
ctl = [r for r in rows if r["process"] == "ctlproc"]
assert len(ctl) >= 3 and all(r["pass"] for r in ctl), ctl
PY
"$SRC/scripts/cli-json" validate audit "$DIR/audit.json" >/dev/null 2>&1 &&
  ok "audit --json with ctlproc matches its schema" || fail "audit --json does not match its schema"

# Outage: the control server goes away; the node keeps its last map.
kill "$CS_PID"; wait "$CS_PID" 2>/dev/null; exec 7>&-; CS_PID=""
not_connected() { [ "$(jq_status 'd["control"]["state"]')" != connected ]; }
wait_for 10 not_connected && ok "control outage shows: $(jq_status 'd["control"]["state"]') ($(jq_status 'd["control"].get("error","")'))" ||
  fail "status still says connected after control died"
has_fake && ok "the last map stays in force during the outage" || fail "peers lost during the outage"

# A new control server (new key, empty state): ctlproc fetches the key again and rejoins.
start_control
if wait_for 60 connected; then
  ok "rejoined the restarted control server (reconnects: $(jq_status 'd["control"]["reconnects"]'))"
else
  fail "did not rejoin: $(status_json | head -c 400)"; tail -20 "$DIR/node.log"
fi

tw_finish
