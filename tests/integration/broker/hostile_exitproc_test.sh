#!/usr/bin/env bash
# No exitproc message can crash the root broker or make it dial anything but the
# configured proxy. The real broker, with [exit] configured, spawns
# tests/integration/broker/hostile_exitproc.cc in place of tailwarden-exitproc (with the
# real netproc and dataproc): a flood of 2000 DialProxy requests, garbage, a message
# with an fd attached, an oversize datagram, and lying counters in ExitStats. The
# broker must stay up and answer, rate-limit the dials (burst 400, 200/s) to the one
# proxy address, refuse and count the violations (restarting exitproc), and keep the
# exit namespace. Needs root (network namespace); exits 77 otherwise. Env: BIN.
set -u
. "$(dirname "$0")/../../lib/check.sh"
tw_check_init hostile-exit tailwardend tailwarden tailwarden-netproc tailwarden-dataproc hostile_exitproc
tw_child_accounts
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)

NS="tw18h$$"
NSS+=("$NS")
cli() { "$BIN/tailwarden" --socket "$DIR/admin.sock" "$@"; }
metric() { cli metrics 2>/dev/null | awk -v n="tailwarden_$1" '$1==n {print $2; exit}'; }
report() { awk -v k="$1" '$1==k {print $2; exit}' "$DIR/libexec/hostile_exit.report" 2>/dev/null; }

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS" addr add 198.18.19.2/32 dev lo  # the proxy
ip -n "$NS" addr add 198.18.19.3/32 dev lo  # something else: must never be dialled

# The "proxy": accepts and holds connections, counts them; a listener on another
# address counts any connection that should never come.
cat >"$DIR/listen.py" <<'PY'
import socket, sys, threading, time
counts = {}
def serve(addr, name):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, 1080)); s.listen(4096)
    held = []
    while True:
        c, _ = s.accept(); held.append(c); counts[name] = counts.get(name, 0) + 1
for addr, name in ((sys.argv[2], "proxy"), (sys.argv[3], "other")):
    threading.Thread(target=serve, args=(addr, name), daemon=True).start()
while True:
    with open(sys.argv[1] + ".tmp", "w") as f:
        for k in ("proxy", "other"): f.write(f"{k} {counts.get(k, 0)}\n")
    import os; os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(0.2)
PY
ip netns exec "$NS" "$PY" "$DIR/listen.py" "$DIR/accepted" 198.18.19.2 198.18.19.3 >"$DIR/listen.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -s "$DIR/accepted" || { fail "the proxy listener did not start"; exit 1; }

mkdir -p "$DIR/libexec"
ln -s "$BIN/hostile_exitproc" "$DIR/libexec/tailwarden-exitproc"
ln -s "$BIN/tailwarden-netproc" "$DIR/libexec/tailwarden-netproc"
ln -s "$BIN/tailwarden-dataproc" "$DIR/libexec/tailwarden-dataproc"
chmod 777 "$DIR/libexec"
echo flood >"$DIR/libexec/hostile_exit.mode"
"$BIN/tailwarden" keygen -o "$DIR/keys" 2>"$DIR/pub" >/dev/null || exit 1
cat >"$DIR/netmap.json" <<JSON
{"self":{"name":"exit","node_key":"$(grep '^node_key = ' "$DIR/pub" | sed 's/.* = //')","addresses":["100.64.19.1/32"]},
 "peers":[]}
JSON
printf 'user:secret-pass\n' >"$DIR/creds"
chmod 600 "$DIR/creds"
cat >"$DIR/config.toml" <<TOML
state_dir = "$DIR"
key_file = "$DIR/keys"
netmap_file = "$DIR/netmap.json"
admin_socket = "$DIR/admin.sock"
child_user = "twtest"
[tun]
enabled = false
[exit]
mode = "proxy"
proxy = "socks5://198.18.19.2:1080"
credentials_file = "$DIR/creds"
dns_resolver = "198.18.19.53"
TOML
ip netns exec "$NS" env TW_LIBEXEC_DIR="$DIR/libexec" "$BIN/tailwardend" --config "$DIR/config.toml" \
  >"$DIR/log" 2>&1 &
BROKER=$!
PIDS+=($BROKER)
alive() { kill -0 "$BROKER" 2>/dev/null; }
status_ok() { cli status --json 2>/dev/null | grep -q '"ok": *true'; }
wait_for 20 status_ok || { fail "broker never answered status"; tail -20 "$DIR/log"; exit 1; }
ok "broker up with the hostile exitproc"

# The flood: every answer arrives, a bounded number are dials, all to the proxy.
flood_done() { [ $(( $(report conns) + $(report failed_rate) + $(report failed_other) )) -ge 2000 ] 2>/dev/null; }
t0=$SECONDS
wait_for 30 flood_done || fail "the flood was not answered: $(cat "$DIR/libexec/hostile_exit.report" 2>&1)"
elapsed=$((SECONDS - t0 + 1))
conns=$(report conns) rate=$(report failed_rate) other=$(report failed_other)
echo "DialProxy flood: $conns connected, $rate refused by the limit, $other failed otherwise (within ${elapsed}s)"
[ "$(report setup_fds)" = 3 ] && ok "ExitSetup carried the 3 listener fds" || fail "setup fds: $(report setup_fds)"
max=$((400 + 200 * elapsed))
[ "${conns:-0}" -ge 1 ] && [ "${conns:-0}" -le "$max" ] && ok "dials bounded by the rate limit: $conns <= $max" ||
  fail "dials: '$conns' (limit $max)"
[ "${rate:-0}" -ge 1 ] && ok "$rate dial requests refused by the rate limit" || fail "no dial refused: '$rate'"
peers=$(grep -c '^peer ' "$DIR/libexec/hostile_exit.report")
grep -q '^peer 198.18.19.2:1080$' "$DIR/libexec/hostile_exit.report" && [ "$peers" -eq 1 ] &&
  ok "every fd handed over is connected to the proxy 198.18.19.2:1080 and nothing else" ||
  fail "peers: $(grep '^peer ' "$DIR/libexec/hostile_exit.report")"
refused=$(metric exit_proxy_dials_refused_total)
[ "${refused:-0}" -ge "${rate:-1}" ] && ok "exit_proxy_dials_refused_total=$refused" || fail "refused metric '$refused' < $rate"
sleep 0.5
accepted_other=$(awk '$1=="other"{print $2}' "$DIR/accepted")
accepted_proxy=$(awk '$1=="proxy"{print $2}' "$DIR/accepted")
[ "${accepted_other:-1}" -eq 0 ] && ok "nothing dialled the other address" || fail "other address got $accepted_other"
[ "${accepted_proxy:-0}" -eq "$conns" ] && ok "the proxy accepted exactly the $conns dials" ||
  fail "proxy accepted $accepted_proxy, exitproc got $conns"

# Lying counters: status and metrics still answer valid JSON / text.
out=$(cli status --json 2>&1)
"$PY" -c '
import json,sys
j=json.loads(sys.argv[1]); e=j["exit"]
assert j["ok"] is True and e["flows_open"]==2**64-1, e
assert all(32 <= ord(c) < 127 for c in e.get("last_proxy_error","")), e
assert "secret-pass" not in sys.argv[1]' "$out" && ok "lying ExitStats: status answers, the error text is sanitised" ||
  fail "status with lying stats: ${out:0:400}"
cli metrics >"$DIR/metrics.txt" 2>&1 && grep -q '^tailwarden_exit_flows_open 18446744073709551615$' "$DIR/metrics.txt" &&
  ok "metrics relay the (lying) counters" || fail "metrics: $(grep exit_flows "$DIR/metrics.txt")"
grep -q "secret-pass" "$DIR/log" && fail "the proxy password appears in the broker log"

# Protocol violations: each refused, counted, exitproc restarted, the namespace kept.
for mode in garbage fds oversize; do
  before=$(metric exit_link_violations_total)
  echo "$mode" >"$DIR/libexec/hostile_exit.mode"
  violated() { [ "$(metric exit_link_violations_total)" -gt "${before:-0}" ] 2>/dev/null; }
  if wait_for 15 violated; then
    ok "$mode: refused and counted (violations $before -> $(metric exit_link_violations_total))"
  else
    fail "$mode: no violation counted"
  fi
  echo idle >"$DIR/libexec/hostile_exit.mode"
  running() { cli status --json 2>/dev/null | "$PY" -c 'import json,sys; e=json.load(sys.stdin)["exit"]; sys.exit(0 if e["state"]=="running" and e["pid"]>0 else 1)' 2>/dev/null; }
  wait_for 40 running || fail "exitproc not restarted after $mode"
  alive || { fail "broker died after $mode"; break; }
done
restarts=$(metric exit_restarts_total)
[ "${restarts:-0}" -ge 3 ] && ok "exitproc restarted $restarts times" || fail "exit_restarts_total: '$restarts'"
cli audit >"$DIR/audit.txt" 2>&1
grep -Eq "exit namespace has only lo and tw-exit +pass" "$DIR/audit.txt" &&
  grep -Eq "exit namespace routes only into tw-exit +pass" "$DIR/audit.txt" &&
  ok "the exit namespace survived every restart unchanged" || fail "audit: $(grep exit "$DIR/audit.txt")"
wait_for 10 status_ok && alive && ok "broker answers status after all of it" || fail "broker gone or silent at the end"

tw_finish
