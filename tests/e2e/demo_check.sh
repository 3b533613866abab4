#!/usr/bin/env bash
# Runs the demo on this build's binaries and checks its summary as CI does
# (tests/e2e/demo_summary_check.py).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
[ "$(id -u)" -eq 0 ] || { echo "SKIP: demo needs root"; exit 0; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 300 "$HERE/demo.sh" --summary-json "$out" || { echo "FAIL: demo exited $?"; exit 1; }
python3 "$HERE/demo_summary_check.py" "$out"
