#!/usr/bin/env bash
# No child message can crash or block the root broker. The real broker
# spawns tests/integration/broker/hostile_child.cc in place of netproc (with the
# real dataproc): malformed status/ping/metrics replies (wrong JSON shapes, bytes
# that are not UTF-8), a flood of 500 DERP dial requests and 500 endpoint updates,
# and replies carrying the other child's request ids. The broker must stay up and
# answer, throttle the floods, and refuse and count the violations (restarting the
# children). Needs root (network namespace); exits 77 otherwise. Env: BIN.
set -u
. "$(dirname "$0")/../../lib/check.sh"
tw_check_init hostile tailwardend tailwarden tailwarden-dataproc hostile_child
tw_child_accounts

NS="tw15h$$"
NSS+=("$NS")
cli() { "$BIN/tailwarden" --socket "$DIR/a/admin.sock" "$@"; }
metric() { cli metrics 2>/dev/null | sed -n "s/^tailwarden_$1 \([0-9]*\)$/\1/p" | head -1; }

ip netns add "$NS" || exit 1
ip -n "$NS" link set lo up
ip -n "$NS" addr add 198.18.17.1/32 dev lo  # the DERP node: nothing listens there

mkdir -p "$DIR/a" "$DIR/b" "$DIR/libexec"
ln -s "$BIN/hostile_child" "$DIR/libexec/tailwarden-netproc"
ln -s "$BIN/tailwarden-dataproc" "$DIR/libexec/tailwarden-dataproc"
chmod 777 "$DIR/libexec"  # the hostile child (root, unsandboxed) writes its report here
for n in a b; do "$BIN/tailwarden" keygen -o "$DIR/$n/keys" 2>"$DIR/$n/pub" >/dev/null || exit 1; done
cat >"$DIR/a/netmap.json" <<JSON
{"self":{"name":"a","node_key":"$(tw_pub a node_key)","addresses":["100.64.17.1/32"],"home_derp":900},
 "peers":[{"name":"b","node_key":"$(tw_pub b node_key)","disco_key":"$(tw_pub b disco_key)",
   "addresses":["100.64.17.2/32"],"endpoints":["198.18.17.2:41641"],"home_derp":900}],
 "derp_map":{"Regions":{"900":{"RegionID":900,"RegionCode":"lab","Nodes":[
   {"Name":"900a","RegionID":900,"HostName":"derp.lab","IPv4":"198.18.17.1","IPv6":"none",
    "STUNPort":-1,"DERPPort":3340}]}}}}
JSON
cat >"$DIR/a/config.toml" <<TOML
state_dir = "$DIR/a"
key_file = "$DIR/a/keys"
netmap_file = "$DIR/a/netmap.json"
admin_socket = "$DIR/a/admin.sock"
child_user = "twtest"
endpoints_file = "$DIR/a/endpoints.json"
[tun]
enabled = false
TOML
ip netns exec "$NS" env TW_LIBEXEC_DIR="$DIR/libexec" "$BIN/tailwardend" --config "$DIR/a/config.toml" \
  >"$DIR/a/log" 2>&1 &
BROKER=$!
PIDS+=($BROKER)

alive() { kill -0 "$BROKER" 2>/dev/null; }
status_ok() { cli status --json 2>/dev/null | grep -q '"ok": *true'; }
wait_for 20 status_ok || { fail "broker never answered status"; tail -20 "$DIR/a/log"; exit 1; }
ok "broker up with the hostile netproc"

# The real dataproc: an empty, read-only root and hard resource limits. A dataproc seen
# right after its spawn (the hostile netproc makes the broker restart both) may not
# have reached its sandbox yet: wait until it has set its limits, at most 5 s.
SAN=0
grep -qa -m1 -e __asan_init -e __tsan_init "$BIN/tailwarden-dataproc" && SAN=1
dataproc_limited() {  # limits set and (not a sanitizer build) the root emptied, in that order
  DPID=$(pgrep -P "$BROKER" -f tailwarden-dataproc | head -1)
  [ -n "$DPID" ] && { [ $SAN = 1 ] || [ -z "$(ls -A "/proc/$DPID/root/" 2>/dev/null)" ]; } && awk '/^Max core file size/{c=$5} /^Max open files/{n=$4; h=$5} /^Max processes/{p=$3}
       END{exit !(c=="0" && n==h && n+0<=1024 && p+0<=512)}' "/proc/$DPID/limits" 2>/dev/null
}
wait_for 5 dataproc_limited
if [ -n "$DPID" ]; then
  ents=$(ls -A "/proc/$DPID/root/" 2>&1)
  if [ $SAN = 1 ]; then
    ok "sanitizer build: the children keep the file system by design (their runtime reads /proc/self/maps)"
  else
    [ -z "$ents" ] && ok "dataproc's root is empty" || fail "dataproc's root shows: ${ents:0:200}"
  fi
  dataproc_limited &&
    ok "dataproc's limits: no core, bounded files and processes" ||
    fail "dataproc's limits: $(grep -E 'core|open files|processes' "/proc/$DPID/limits" | tr -s ' ')"
else
  fail "no dataproc child of the broker"
fi

# Malformed replies, one shape after another: status merges them, ping and metrics
# relay them; every answer is valid JSON and the broker stays up.
for i in 1 2 3 4 5 6; do
  out=$(cli status --json 2>&1)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["ok"] is True' "$out" 2>/dev/null ||
    fail "status #$i is not an ok JSON answer: ${out:0:200}"
done
alive && ok "six malformed status replies: broker up, every answer ok" || fail "broker died on a status reply"
for i in 1 2 3 4; do cli ping b -c 1 --json >/dev/null 2>&1; done
alive && ok "four malformed ping replies: broker up" || fail "broker died on a ping reply"
for i in 1 2 3; do cli metrics >"$DIR/metrics.$i" 2>&1; done
alive && grep -q "^# dataproc" "$DIR/metrics.3" && ok "metrics with bytes that are not UTF-8: answered" ||
  fail "metrics: $(head -3 "$DIR/metrics.3")"
cli netcheck --json >/dev/null 2>&1
alive && ok "netcheck with an array for an object: broker up" || fail "broker died on netcheck"

asked=$(awk '$1=="status_requests"{print $2}' "$DIR/libexec/hostile.report" 2>/dev/null)
[ "${asked:-0}" -ge 6 ] && ok "the hostile netproc was asked $asked times (its malformed replies were read)" ||
  fail "the hostile netproc was asked '${asked:-}' times: the malformed replies were never exercised"

# The floods: throttled and counted.
sleep 2
throttled=$(metric derp_dials_throttled_total)
coalesced=$(metric endpoints_updates_coalesced_total)
dialled=$(awk '$1=="dial_failed_other"||$1=="dial_conn"{s+=$2} END{print s+0}' "$DIR/libexec/hostile.report" 2>/dev/null)
echo "derp_dials_throttled_total=$throttled endpoints_updates_coalesced_total=$coalesced dials_attempted=$dialled"
[ "${throttled:-0}" -ge 400 ] && ok "DERP dial flood: $throttled of 500 refused" || fail "DERP dials throttled: '${throttled:-}'"
[ "${dialled:-99}" -le 10 ] && ok "DERP dial flood: only $dialled dials made" || fail "DERP dials made: ${dialled:-}"
[ "${coalesced:-0}" -ge 400 ] && ok "endpoint flood: $coalesced of 500 updates coalesced" ||
  fail "endpoint updates coalesced: '${coalesced:-}'"
published=$(grep -c 'endpoints: \[' "$DIR/a/log")
[ "$published" -le 6 ] && ok "endpoint flood: $published publications" || fail "endpoints published $published times"
python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$DIR/a/endpoints.json" 2>/dev/null &&
  ok "endpoints file is whole JSON" || fail "endpoints file: $(cat "$DIR/a/endpoints.json" 2>&1)"

# Replies with dataproc's request id and a made-up one: a protocol violation,
# refused, counted, the children restarted; the broker keeps answering.
restarts_before=$(metric child_restarts_total)
echo wrong-id >"$DIR/libexec/hostile.mode"
cli status --json >/dev/null 2>&1
sleep 1
violations=$(metric child_protocol_violations_total)
[ "${violations:-0}" -ge 1 ] && ok "replies with another child's request id: $violations violation(s) counted" ||
  fail "child_protocol_violations_total: '${violations:-}'"
grep -q "protocol violation by netproc: StatusReply for request id" "$DIR/a/log" &&
  ok "the violation is logged" || fail "no violation in the log"
restarts_after=$(metric child_restarts_total)
[ "${restarts_after:-0}" -gt "${restarts_before:-0}" ] && ok "children restarted after the violation" ||
  fail "child_restarts_total $restarts_before -> $restarts_after"
echo ok >"$DIR/libexec/hostile.mode"
wait_for 20 status_ok || fail "no status after the wrong-id restart"

# Garbage on the netproc<->dataproc link: dataproc refuses it, and both children are
# restarted (the seal service must never be left silently dead).
restarts_before=$(metric child_restarts_total)
echo peer-garbage >"$DIR/libexec/hostile.mode"
restarted() { cli status --json >/dev/null 2>&1; [ "$(metric child_restarts_total)" -gt "${restarts_before:-0}" ]; }
wait_for 10 restarted &&
  ok "garbage on the children's link: both restarted" ||
  fail "child_restarts_total stayed ${restarts_before:-} after garbage on the children's link"
echo ok >"$DIR/libexec/hostile.mode"
grep -q "hostile: [0-9]* bytes of garbage to dataproc" "$DIR/a/log" && ok "the garbage was sent" || fail "the garbage was never sent"
grep -q "netproc link closed (protocol violation.*); exiting so both children restart" "$DIR/a/log" &&
  ok "dataproc logged the broken link and exited" || fail "dataproc did not log the broken link"
wait_for 20 status_ok && alive && ok "broker answers status after all of it" || fail "broker gone or silent at the end"

tw_finish
