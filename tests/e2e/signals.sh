#!/usr/bin/env bash
# Signal handling for every script that holds namespaces or processes (demo, e2e,
# benches). Source it first thing, before anything is started:
#   source "$HERE/signals.sh"; tw_signals_init "$0" "$@"
#   tw_on_exit 'cleanup commands'       runs on EXIT, also after INT, TERM and HUP
#   tw_hold                             waits until a signal arrives
#
# A non-interactive shell cannot trap a signal that was ignored when it started, and a
# job that a non-interactive shell puts in the background starts with SIGINT (and
# SIGQUIT) ignored. So tw_signals_init re-executes the script once with the default
# disposition restored (coreutils `env --default-signal`), which makes the traps work
# whoever started us. tw_hold sleeps in a background child and `wait`s for it: bash
# runs a trap as soon as `wait` is interrupted, not when a foreground sleep ends.

tw_signals_init() {
  if [ "${TW_SIGNALS_RESET:-}" != "$$" ]; then
    exec env --default-signal=INT,TERM,HUP,QUIT TW_SIGNALS_RESET=$$ "$BASH" "$@"
  fi
}

# Exit codes of a shell killed by the signal (128 + number), so callers can tell.
tw_on_exit() {
  # shellcheck disable=SC2064
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  trap 'exit 131' QUIT
}

tw_hold() {
  local sleeper
  while :; do
    sleep 3600 &
    sleeper=$!
    wait "$sleeper"
    kill "$sleeper" 2>/dev/null
  done
}
