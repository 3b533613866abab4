#!/usr/bin/env bash
# tailwarden-exitproc against real upstream proxies. Namespaces (addresses from
# 198.18.0.0/15 only):
#   cl   the client (198.18.6.2, .3), default route into ex
#   ex   the exit namespace: one veth to cl, nft redirects (TCP -> :7001, UDP 53 ->
#        :7053, other UDP -> :7002), no route anywhere else
#   hst  the exit host: exit_driver (the broker's part) runs here and dials the proxy;
#        it can also reach the internet directly, so a leak would succeed
#   px   the proxies: dante-server (SOCKS5, RFC 1929 username/password against a
#        system user made for this test) and tinyproxy (HTTP CONNECT, Basic auth)
#   in   the internet: python3 -m http.server, dnsmasq (UDP+TCP 53), hold_server.py (a
#        server that holds connections, and a server-paced 100 MiB download)
# Proves: curl by name through the exit reaches the web server, which sees only the
# proxy's address; the name was resolved by dnsmasq, which saw the query from the
# proxy; wrong credentials reset and count with no fallback; a killed proxy resets
# new connections and ends a running download within 1 s; other UDP is counted and
# dropped; 10,000 connection attempts hit the limits, are counted, and exitproc's
# memory stays bounded; garbage from a fake proxy resets flows and exitproc lives on.
# Needs root; exits 77 (skipped) otherwise. Env: EXITPROC, DRIVER.
set -u
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for b in danted tinyproxy dnsmasq nft curl python3 useradd chpasswd; do
  command -v "$b" >/dev/null || { echo "SKIP: $b not installed"; exit 77; }
done
[ -x "$EXITPROC" ] && [ -x "$DRIVER" ] || { echo "SKIP: binaries not built"; exit 77; }
HERE="$(cd "$(dirname "$0")" && pwd)"

T="t18$$"
CL="${T}cl" EX="${T}ex" HST="${T}h" PX="${T}px" IN="${T}in"
SUSER="tw18s$$"
SPASS="pw-$$-ok"
DIR=$(mktemp -d /tmp/tw-exit-XXXXXX)
chmod 755 "$DIR"
PIDS=()
DRIVER_PID="" DANTE_PID="" TINY_PID=""
cleanup() {
  for p in $DRIVER_PID $DANTE_PID $TINY_PID "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in $DRIVER_PID $DANTE_PID $TINY_PID "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for n in "$CL" "$EX" "$HST" "$PX" "$IN"; do ip netns del "$n" 2>/dev/null; done
  rm -rf "/etc/netns/$CL"
  userdel "$SUSER" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
wait_for() {
  local end=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -ge $end ] && return 1; sleep 0.1; done
}
stat_of() { awk -v k="$1" '$1 == k { print $2 }' "$DIR/stats" 2>/dev/null; }
# stat_ge KEY N: the driver's last ExitStats has KEY >= N.
stat_ge() { local v; v=$(stat_of "$1"); [ -n "$v" ] && [ "$v" -ge "$2" ]; }
in_ns() { local n=$1; shift; ip netns exec "$n" "$@"; }

# ---- namespaces and links ----
for n in "$CL" "$EX" "$HST" "$PX" "$IN"; do ip netns add "$n" || exit 1; in_ns "$n" ip link set lo up; done
link() {  # link NS1 IF1 ADDR1 NS2 IF2 ADDR2
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" || exit 1
  in_ns "$1" ip addr add "$3" dev "$2"; in_ns "$1" ip link set "$2" up
  in_ns "$4" ip addr add "$6" dev "$5"; in_ns "$4" ip link set "$5" up
}
link "$CL" c0 198.18.6.2/24 "$EX" e0 198.18.6.1/24
in_ns "$CL" ip addr add 198.18.6.3/24 dev c0
in_ns "$CL" ip route add default via 198.18.6.1
link "$HST" h0 198.18.5.1/24 "$PX" p0 198.18.5.2/24
link "$PX" p1 198.18.9.2/24 "$IN" i0 198.18.9.1/24
in_ns "$IN" ip addr add 198.18.9.80/24 dev i0
in_ns "$IN" ip addr add 198.18.9.53/24 dev i0
in_ns "$IN" ip route add default via 198.18.9.2
in_ns "$PX" sysctl -qw net.ipv4.ip_forward=1   # the exit host can reach the internet directly
in_ns "$HST" ip route add default via 198.18.5.2
in_ns "$EX" nft -f - <<NFT || { echo "FAIL: nft"; exit 1; }
table ip tailwarden_exit {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "e0" ip protocol tcp redirect to :7001
    iifname "e0" udp dport 53 redirect to :7053
    iifname "e0" ip protocol udp redirect to :7002
  }
}
NFT
# The client resolves through the exit (ip netns exec mounts this as resolv.conf).
mkdir -p "/etc/netns/$CL"
echo "nameserver 198.18.9.53" >"/etc/netns/$CL/resolv.conf"

# Sanity: the exit namespace has no way out, the exit host has one.
in_ns "$EX" ip route get 198.18.9.80 >/dev/null 2>&1 && fail "the exit namespace has a route to the internet"
in_ns "$HST" ip route get 198.18.9.80 >/dev/null 2>&1 || fail "the exit host cannot reach the internet (a leak would not show)"

# ---- the internet ----
mkdir -p "$DIR/www"
echo "hello from the internet $$" >"$DIR/www/hello.txt"
(cd "$DIR/www" && exec ip netns exec "$IN" python3 -u -m http.server 8000 --bind 198.18.9.80 >"$DIR/web.log" 2>&1) &
PIDS+=($!)
ip netns exec "$IN" dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces --listen-address=198.18.9.53 \
  --except-interface=lo --address=/example.test/198.18.9.80 --log-queries=extra --log-facility="$DIR/dnsmasq.log" \
  --pid-file="$DIR/dnsmasq.pid" --user=root &
PIDS+=($!)
ip netns exec "$IN" python3 -u "$HERE/hold_server.py" 198.18.9.80 9000 9001 "$DIR/held" &
PIDS+=($!)

# ---- the proxies ----
useradd --no-create-home --shell /usr/sbin/nologin "$SUSER" || { echo "FAIL: useradd"; exit 1; }
echo "$SUSER:$SPASS" | chpasswd || { echo "FAIL: chpasswd"; exit 1; }
cat >"$DIR/danted.conf" <<CONF
logoutput: $DIR/danted.log
internal: 198.18.5.2 port = 1080
external: 198.18.9.2
clientmethod: none
socksmethod: username
user.privileged: root
user.unprivileged: nobody
client pass { from: 198.18.5.0/24 to: 0.0.0.0/0 }
socks pass { from: 198.18.5.0/24 to: 0.0.0.0/0 log: connect disconnect error }
CONF
start_dante() {
  ip netns exec "$PX" danted -f "$DIR/danted.conf" -p "$DIR/danted.pid" -N 2 &
  DANTE_PID=$!
  wait_for 10 in_ns "$PX" bash -c 'exec 3<>/dev/tcp/198.18.5.2/1080' 2>/dev/null || fail "danted did not start"
}
start_dante
cat >"$DIR/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port 3128
Listen 198.18.5.2
Bind 198.18.9.2
Timeout 60
LogFile "$DIR/tinyproxy.log"
LogLevel Info
PidFile "$DIR/tinyproxy.pid"
MaxClients 300
Allow 198.18.5.0/24
BasicAuth tinyuser tiny-pass-$$
DisableViaHeader Yes
CONF
chmod 644 "$DIR/tinyproxy.conf"
touch "$DIR/tinyproxy.log" && chmod 666 "$DIR/tinyproxy.log"
ip netns exec "$PX" tinyproxy -d -c "$DIR/tinyproxy.conf" &
TINY_PID=$!
PIDS+=($!)
ip netns exec "$PX" python3 -u "$HERE/garbage_proxy.py" 198.18.5.2 1081 &
PIDS+=($!)
wait_for 10 in_ns "$PX" bash -c 'exec 3<>/dev/tcp/198.18.5.2/3128' 2>/dev/null || fail "tinyproxy did not start"
wait_for 10 in_ns "$IN" bash -c 'exec 3<>/dev/tcp/198.18.9.80/8000' 2>/dev/null || fail "web server did not start"

# ---- the exit ----
start_driver() {  # start_driver ARGS...: exitproc with a fresh driver
  stop_driver
  rm -f "$DIR/stats"
  ip netns exec "$HST" "$DRIVER" --exitproc "$EXITPROC" --exit-netns "/run/netns/$EX" --stats-file "$DIR/stats" \
    --pid-file "$DIR/exitproc.pid" --dns 198.18.9.53 "$@" 2>>"$DIR/exit.log" &
  DRIVER_PID=$!
  wait_for 10 test -s "$DIR/stats" || { fail "exit driver did not start"; tail -20 "$DIR/exit.log"; }
}
stop_driver() {
  [ -n "$DRIVER_PID" ] || return 0
  kill "$DRIVER_PID" 2>/dev/null; wait "$DRIVER_PID" 2>/dev/null; DRIVER_PID=""
}
client_curl() { in_ns "$CL" curl -sS --max-time 10 "$@"; }
web_lines() { grep -c '"GET ' "$DIR/web.log"; }

echo "== SOCKS5 (dante, username/password), by name =="
start_driver --kind socks5 --proxy 198.18.5.2:1080 --user "$SUSER" --pass "$SPASS"
body=$(client_curl "http://example.test:8000/hello.txt" 2>"$DIR/curl.err")
if [ "$body" = "hello from the internet $$" ]; then ok "curl by name through the exit and dante"; else fail "curl via socks5: '$body' $(cat "$DIR/curl.err")"; fi
grep -q '^198.18.9.2 .*GET /hello.txt' "$DIR/web.log" && ok "web server saw the proxy's address" || fail "web server log: $(tail -2 "$DIR/web.log")"
grep -vq '^198.18.9.2 ' <(grep '"GET ' "$DIR/web.log") && fail "web server saw another address: $(grep -v '^198.18.9.2 ' "$DIR/web.log" | head -2)"
grep -q 'query\[A\] example.test from 198.18.9.2' "$DIR/dnsmasq.log" && ok "dnsmasq got the query over the proxy (from 198.18.9.2)" ||
  fail "dnsmasq log: $(grep query "$DIR/dnsmasq.log" | tail -2)"
grep -q 'from 198.18.6\.\|from 198.18.5\.' "$DIR/dnsmasq.log" && fail "dnsmasq saw a query not from the proxy"
wait_for 3 stat_ge dns_ok 1 && ok "dns_ok counted ($(stat_of dns_ok))" || fail "dns_ok $(stat_of dns_ok)"
wait_for 3 stat_ge handshakes_ok 2 && [ "$(stat_of proxy_ok)" = 1 ] && ok "handshakes counted, proxy_ok" || fail "handshakes_ok $(stat_of handshakes_ok) proxy_ok $(stat_of proxy_ok)"
grep -q "$SPASS" "$DIR/exit.log" "$DIR/stats" && fail "the password appears in exitproc's log or stats"

echo "== throughput and setup latency (reported, not asserted) =="
truncate -s 256M "$DIR/www/big.bin"
via_exit=$(in_ns "$CL" curl -s -o /dev/null -w '%{speed_download} %{time_starttransfer}' "http://198.18.9.80:8000/big.bin")
via_proxy=$(in_ns "$HST" curl -s -o /dev/null -w '%{speed_download} %{time_starttransfer}' \
  --socks5 198.18.5.2:1080 --proxy-user "$SUSER:$SPASS" "http://198.18.9.80:8000/big.bin")
echo "256 MiB through exit+dante: ${via_exit% *} B/s, first byte after ${via_exit#* } s"
echo "256 MiB through dante alone (from the exit host): ${via_proxy% *} B/s, first byte after ${via_proxy#* } s"
rm -f "$DIR/www/big.bin"

echo "== other UDP is counted and dropped =="
in_ns "$CL" python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); [s.sendto(b"x", ("198.18.9.80", 9999)) for _ in range(5)]'
wait_for 3 stat_ge udp_dropped 5 && ok "udp_dropped $(stat_of udp_dropped)" || fail "udp_dropped $(stat_of udp_dropped)"

echo "== proxy killed: running download and new connections fail within 1 s =="
ip netns exec "$CL" curl -s -o /dev/null "http://198.18.9.80:9001/big" &
DL=$!
sleep 1.5
kill -0 $DL 2>/dev/null || fail "the download ended before the proxy was killed"
t0=$(date +%s%N)
# Every dante process (the mother and its negotiate/request/io children) in the proxy
# namespace dies at once, as in a crash of the proxy host's daemon.
for p in $(ip netns pids "$PX"); do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = danted ] && kill -9 "$p"
done
DANTE_PID=""
wait $DL 2>/dev/null; dl_rc=$?
t1=$(date +%s%N)
ms=$(((t1 - t0) / 1000000))
[ $dl_rc -ne 0 ] && [ $ms -le 1000 ] && ok "download failed ${ms} ms after the proxy died (curl rc $dl_rc)" || fail "download: rc $dl_rc after ${ms} ms"
before=$(web_lines)
t0=$(date +%s%N)
client_curl -o /dev/null "http://198.18.9.80:8000/hello.txt" 2>"$DIR/curl.err"; rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
[ $rc -ne 0 ] && [ $ms -le 1000 ] && ok "new connection refused in ${ms} ms (curl rc $rc: $(head -c 80 "$DIR/curl.err"))" || fail "new connection with dead proxy: rc $rc in ${ms} ms"
wait_for 3 stat_ge refused_dial_failed 1 && ok "dial_failed counted" || fail "refused_dial_failed $(stat_of refused_dial_failed)"
[ "$(web_lines)" = "$before" ] || fail "the web server got a request while the proxy was dead"
start_dante
body=$(client_curl "http://198.18.9.80:8000/hello.txt" 2>&1)
[ "$body" = "hello from the internet $$" ] && ok "proxy back: works again" || fail "after restart: $body"

echo "== SOCKS5 wrong password: reset, counted, no fallback =="
start_driver --kind socks5 --proxy 198.18.5.2:1080 --user "$SUSER" --pass "wrong-$$"
before=$(web_lines)
client_curl -o /dev/null "http://198.18.9.80:8000/hello.txt" 2>"$DIR/curl.err"; rc=$?
[ $rc -ne 0 ] && ok "refused (curl rc $rc: $(head -c 60 "$DIR/curl.err"))" || fail "wrong password still connected"
wait_for 3 stat_ge refused_auth_refused 1 && ok "auth_refused counted" || fail "refused_auth_refused $(stat_of refused_auth_refused)"
[ "$(stat_of proxy_ok)" = 0 ] || fail "proxy_ok after an auth refusal"
[ "$(web_lines)" = "$before" ] && ok "no request reached the web server" || fail "a request reached the web server"

echo "== HTTP CONNECT (tinyproxy, Basic auth) =="
start_driver --kind http --proxy 198.18.5.2:3128 --user tinyuser --pass "tiny-pass-$$"
before=$(web_lines)
body=$(client_curl "http://example.test:8000/hello.txt" 2>"$DIR/curl.err")
[ "$body" = "hello from the internet $$" ] && ok "curl by name through the exit and tinyproxy" || fail "curl via http: '$body' $(cat "$DIR/curl.err")"
[ "$(web_lines)" -gt "$before" ] && tail -1 "$DIR/web.log" | grep -q '^198.18.9.2 ' && ok "web server saw the proxy's address" || fail "web log: $(tail -1 "$DIR/web.log")"
grep -c 'query\[A\] example.test from 198.18.9.2' "$DIR/dnsmasq.log" | grep -qv '^[01]$' && ok "DNS through tinyproxy too" || fail "no second DNS query via the proxy"
start_driver --kind http --proxy 198.18.5.2:3128 --user tinyuser --pass "nope"
client_curl -o /dev/null "http://198.18.9.80:8000/hello.txt" 2>/dev/null && fail "wrong Basic auth still connected"
wait_for 3 stat_ge refused_auth_refused 1 && ok "tinyproxy's refusal (401) counted as auth_refused" || fail "refused_auth_refused $(stat_of refused_auth_refused)"

echo "== a fake proxy answering garbage =="
start_driver --kind socks5 --proxy 198.18.5.2:1081 --user "$SUSER" --pass "$SPASS"
for i in 1 2 3; do client_curl -o /dev/null "http://198.18.9.80:8000/hello.txt" 2>/dev/null && fail "garbage proxy connected"; done
wait_for 3 stat_ge refused_proxy_handshake 3 && ok "garbage counted as proxy_handshake ($(stat_of refused_proxy_handshake))" || fail "refused_proxy_handshake $(stat_of refused_proxy_handshake)"
kill -0 "$(cat "$DIR/exitproc.pid")" 2>/dev/null && ok "exitproc survived" || fail "exitproc died on garbage"
start_driver --kind http --proxy 198.18.5.2:1081
client_curl -o /dev/null "http://198.18.9.80:8000/hello.txt" 2>/dev/null && fail "garbage http proxy connected"
wait_for 3 stat_ge refused_proxy_handshake 1 && kill -0 "$(cat "$DIR/exitproc.pid")" && ok "http garbage counted, exitproc alive" || fail "http garbage"

echo "== 10,000 connection attempts =="
start_driver --kind socks5 --proxy 198.18.5.2:1080 --user "$SUSER" --pass "$SPASS" --max-flows 200 --max-per-source 120
EPID=$(cat "$DIR/exitproc.pid")
rss0=$(awk '/VmRSS/ { print $2 }' "/proc/$EPID/status")
out=$(in_ns "$CL" python3 "$HERE/flood_client.py" 198.18.9.80 9000 10000 198.18.6.2,198.18.6.2,198.18.6.3)
echo "flood: $out"
open=$(echo "$out" | sed -n 's/.*open=\([0-9]*\).*/\1/p')
rss1=$(awk '/VmRSS/ { print $2 }' "/proc/$EPID/status")
wait_for 5 stat_ge refused_limit_total 1 && ok "limit_total hit ($(stat_of refused_limit_total))" || fail "refused_limit_total $(stat_of refused_limit_total)"
stat_ge refused_limit_per_source 1 && ok "limit_per_source hit ($(stat_of refused_limit_per_source))" || fail "refused_limit_per_source $(stat_of refused_limit_per_source)"
[ -n "$open" ] && [ "$open" -le 200 ] && [ "$open" -ge 100 ] && ok "$open flows held (limit 200)" || fail "open flows: $open"
total=$(( $(stat_of flows_total) + $(stat_of refused_limit_total) + $(stat_of refused_limit_per_source) ))
[ "$total" -ge 9000 ] && ok "$total attempts accounted for" || fail "only $total attempts accounted for"
echo "exitproc VmRSS: ${rss0} kB before, ${rss1} kB under load"
[ -n "$rss1" ] && [ "$rss1" -lt 65536 ] && ok "VmRSS ${rss1} kB < 64 MiB" || fail "VmRSS ${rss1} kB"
wait_for 10 stat_ge flows_open 0 && [ "$(stat_of flows_open)" -le 200 ] || fail "flows_open $(stat_of flows_open)"
body=$(client_curl "http://198.18.9.80:8000/hello.txt" 2>&1)
[ "$body" = "hello from the internet $$" ] && ok "works after the flood" || fail "after flood: $body"
kill -0 "$EPID" 2>/dev/null || fail "exitproc died in the flood"
stop_driver

echo
if [ $FAILS -ne 0 ]; then
  echo "exitproc_proxies: $FAILS failure(s)"; tail -30 "$DIR/exit.log"; exit 1
fi
echo "exitproc_proxies: all passed"
