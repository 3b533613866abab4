#!/usr/bin/env bash
# `demo --hold` started the way a script or service manager starts it (in the background
# of a non-interactive shell, so SIGINT is ignored on entry) must stop cleanly:
#   1. SIGTERM to the demo process;
#   2. SIGINT to its whole process group;
#   3. SIGHUP to the demo process.
# Each time: exit within 10 s, and no namespace, nft table or process of that run left.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:?set BIN}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 0; }
PY=$([ -x /usr/bin/python3 ] && echo /usr/bin/python3 || command -v python3)
WORK=$(mktemp -d /tmp/tw-sigtest-XXXXXX)
FAILS=0
LEFT_PIDS=()
trap 'for p in "${LEFT_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

# run_case NAME SIGNAL TARGET(pid|group)
run_case() {
  local name=$1 sig=$2 target=$3 out="$WORK/$1.out"
  local tables_before
  tables_before=$(nft list tables 2>/dev/null | sort)
  # setsid: its own process group, like a job of a shell with job control; `set +m`
  # background start in a subshell makes SIGINT ignored on entry, the case that broke.
  setsid bash -c 'trap "" INT; exec "$0" "$@"' "$HERE/demo.sh" --direct-only --hold >"$out" 2>&1 &
  local pid=$!
  LEFT_PIDS+=("$pid")
  local i
  for i in $(seq 600); do
    [ "$(grep -c '"node"' "$out")" -ge 2 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$(grep -c '"node"' "$out")" -lt 2 ]; then
    fail "$name: demo did not reach the hold (output follows)"; tail -20 "$out"; return
  fi
  # Everything this run started: the processes inside its namespaces, and the node pids.
  local nss pids=()
  nss=$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^twd${pid}-" || true)
  for ns in $nss; do pids+=($(ip netns pids "$ns")); done
  pids+=($(grep '"node"' "$out" | "$PY" -c 'import json,sys
for l in sys.stdin:
    p = json.loads(l)["pids"]; print(p["broker"], p["netproc"], p["dataproc"])'))
  [ -n "$nss" ] || { fail "$name: no namespace twd${pid}-* while holding"; return; }
  local t0=$SECONDS
  if [ "$target" = group ]; then kill -s "$sig" -- "-$pid"; else kill -s "$sig" "$pid"; fi
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    fail "$name: still running 10 s after SIG$sig"
    kill -9 -- "-$pid" 2>/dev/null
  else
    ok "$name: exited $((SECONDS - t0)) s after SIG$sig"
  fi
  wait "$pid" 2>/dev/null
  local left_ns left_p=() p
  left_ns=$(ip netns list 2>/dev/null | awk '{print $1}' | grep "^twd${pid}-" || true)
  [ -z "$left_ns" ] && ok "$name: no namespace left" || fail "$name: namespaces left: $left_ns"
  # Children leave by PDEATHSIG when their broker dies: give the kernel a moment.
  for i in $(seq 20); do
    left_p=()
    for p in "${pids[@]}"; do [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && left_p+=("$p"); done
    [ ${#left_p[@]} -eq 0 ] && break
    sleep 0.1
  done
  if [ ${#left_p[@]} -eq 0 ]; then
    ok "$name: none of its ${#pids[@]} processes left"
  else
    fail "$name: processes left: $(ps -o pid=,ppid=,stat=,args= -p "$(IFS=,; echo "${left_p[*]}")")"
    for p in "${left_p[@]}"; do LEFT_PIDS+=("$p"); done
  fi
  [ "$(nft list tables 2>/dev/null | sort)" = "$tables_before" ] && ok "$name: host nft tables unchanged" ||
    fail "$name: host nft tables changed"
}

run_case sigterm TERM pid
run_case sigint-group INT group
run_case sighup HUP pid
[ "$FAILS" -eq 0 ] && echo "all signal checks passed" || { echo "$FAILS check(s) failed"; exit 1; }
