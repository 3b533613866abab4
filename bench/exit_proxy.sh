#!/usr/bin/env bash
# The exit node's benchmark (issue scenario 6): runs tests/e2e/exit_proxy_e2e.sh with
# EXIT_BENCH=1, which adds, after its first scenario, a download of EXIT_BENCH_MB MiB
# (default 1024) through exit + SOCKS5 proxy and the same client's download straight
# from the exit node's tunnel address, 3 interleaved rounds, and prints a table with the
# ratio and the connection set-up the exit adds over the proxy's own.
#   bench/exit_proxy.sh [BIN]     BIN: build/release/bin by default (build it first)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-$PWD/build/release/bin}
export BIN EXIT_BENCH=1
exec tests/e2e/exit_proxy_e2e.sh
