#!/usr/bin/env bash
# bench/run_echo_cachegrind.sh - cache misses per message of the echo servers
# (docs/bench.md, "Cache lines per message").
#
#   bench/run_echo_cachegrind.sh BUILD_DIR [CONNS] [SECONDS]
#
# Runs the epoll floor, our protocol server and our streams server of the
# TCP echo benchmark one at a time under cachegrind's cache simulator, drives
# each with the load generator (CONNS connections, default 1000, ping-pong,
# 64-byte messages, for SECONDS seconds, default 3) and prints, per round
# trip, the server's user-space instructions, data reads and writes, and L1
# and last-level data misses.  The simulated caches are this machine's L1d
# (48 KiB, 12-way) and a 2 MiB 16-way L2 as the last level.
#
# Why: on this 2-core VM a change worth a few percent of server CPU drowns in
# the run-to-run noise of the timed benchmark, and the machine has no
# hardware counters.  The simulation is deterministic enough to rank layout
# changes: with a thousand connections nothing of a connection's state stays
# in L1 between two of its messages, so every distinct line a message
# touches is a miss.  Kernel work is not simulated (valgrind sees user space
# only); the counts include the connection setup, which weighs under 1% at
# the default length.  Needs valgrind (scripts/install-deps.sh with
# ASYNCIO_WITH_BENCH=1) and the bench-echo targets built in BUILD_DIR.
set -euo pipefail

build=${1:?usage: bench/run_echo_cachegrind.sh BUILD_DIR [CONNS] [SECONDS]}
conns=${2:-1000}
secs=${3:-3}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(cd "$build" && pwd)/bench/echo
command -v valgrind >/dev/null || { echo "run_echo_cachegrind.sh: valgrind not installed" >&2; exit 1; }
for t in echo_loadgen echo_epoll echo_protocol; do
  [ -x "$bin/$t" ] || { echo "run_echo_cachegrind.sh: $bin/$t not built (cmake --build $build --target bench-echo)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null | head -1)
if ! [ -x "$bin/echo_streams" ] || [ "$bin/echo_streams" -ot "$build/libasyncio.a" ]; then
  "${cc:-cc}" -O2 -g -std=gnu11 -I"$root/include" -o "$bin/echo_streams" "$root/bench/echo/echo_streams.c" \
    "$build/libasyncio.a" -lssl -lcrypto -lpthread -lm
fi

printf '%-14s %8s %8s %8s %8s %8s %8s\n' server Ir Dr Dw D1mr D1mw LLmiss
for s in echo_epoll echo_protocol echo_streams; do
  out=$tmp/$s.cg
  taskset -c 1 valgrind --tool=cachegrind --cache-sim=yes --D1=49152,12,64 --LL=2097152,16,64 \
    --cachegrind-out-file="$out" "$bin/$s" >"$tmp/port" 2>"$tmp/err" &
  vp=$!
  port=
  for _ in $(seq 300); do
    port=$(awk '$1 == "port" { print $2 }' "$tmp/port" 2>/dev/null)
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "run_echo_cachegrind.sh: $s did not start" >&2; cat "$tmp/err" >&2; kill $vp; exit 1; }
  lg=$(taskset -c 0 "$bin/echo_loadgen" -c "$conns" -d 1 -w 0.01 -t "$secs" 127.0.0.1 "$port")
  kill -TERM $vp
  wait $vp 2>/dev/null || true
  n=$(awk '$2 == "count" { print $3 }' <<<"$lg")
  # events: Ir I1mr ILmr Dr D1mr DLmr Dw D1mw DLmw
  awk -v s="$s" -v n="$n" '$1 == "summary:" {
    printf "%-14s %8.0f %8.0f %8.0f %8.2f %8.2f %8.3f\n", s, $2/n, $5/n, $8/n, $6/n, $9/n, ($7+$10)/n }' "$out"
done
echo "(per round trip; $conns connections, ${secs} s)"
