# Shared frame of the root-only shell tests (integration and e2e): the skip rules,
# a scratch directory, the processes and namespaces a test made (removed on exit,
# by PID and by name only), and ok/fail bookkeeping. Source it, then:
#
#   tw_check_init NAME [BINARY...]   skip (77) unless root and every $BIN/BINARY exists;
#                                    makes $DIR (/tmp/tw-NAME-XXXXXX, mode 755)
#   PIDS+=($!)   NSS+=("$ns")        what cleanup kills / deletes
#   tw_extra_cleanup() { ...; }      optional: more to undo, run first
#   ok MSG / fail MSG                one line each; fail counts
#   wait_for SECONDS CMD...          polls CMD every 0.2 s until it succeeds
#   tw_finish                        PASS, or the failure count and where the logs are
#   tw_child_accounts                the children's test accounts (tests/lib/child-accounts);
#                                    configs say child_user = "twtest"
#
# KEEP=1 keeps $DIR (also set by tw_finish on failure).

tw_check_init() {
  local name=$1 b
  shift
  [ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
  for b in "$@"; do
    [ -x "$BIN/$b" ] || { echo "SKIP: $BIN/$b not built"; exit 77; }
  done
  DIR=$(mktemp -d "/tmp/tw-$name-XXXXXX")
  chmod 755 "$DIR"
  PIDS=()
  NSS=()
  FAILS=0
  trap tw_cleanup EXIT
  trap 'exit 1' INT TERM
}

tw_cleanup() {
  local p n
  declare -F tw_extra_cleanup >/dev/null && tw_extra_cleanup
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ ${#PIDS[@]} -gt 0 ] && sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null; done
  [ "${KEEP:-0}" = 1 ] || rm -rf "$DIR"
}

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

wait_for() {
  local end=$((SECONDS + $1))
  shift
  until "$@"; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.2
  done
}

tw_finish() {
  if [ "$FAILS" -eq 0 ]; then
    echo "PASS"
    exit 0
  fi
  echo "$FAILS failure(s); logs in $DIR"
  KEEP=1
  exit 1
}

tw_child_accounts() {
  "$(dirname "${BASH_SOURCE[0]}")/child-accounts" >/dev/null || { echo "FAIL: test accounts"; exit 1; }
}

# Test nodes' keys: `tailwarden keygen -o $DIR/<node>/keys` prints the public halves
# to $DIR/<node>/pub; tw_pub NODE FIELD reads one (node_key, disco_key).
tw_pub() { grep "^$2 = " "$DIR/$1/pub" | sed 's/.* = //'; }

# A netmap for node SELF with one direct peer PEER and no DERP map:
#   tw_pair_netmap SELF PEER SELF_TUN_ADDR PEER_TUN_ADDR PEER_UNDERLAY_IP
tw_pair_netmap() {
  cat <<JSON
{"self":{"name":"$1","node_key":"$(tw_pub "$1" node_key)","addresses":["$3/32"]},
 "peers":[{"name":"$2","node_key":"$(tw_pub "$2" node_key)","disco_key":"$(tw_pub "$2" disco_key)",
   "addresses":["$4/32"],"endpoints":["$5:41641"]}],
 "derp_map":{"Regions":{}}}
JSON
}
