#!/usr/bin/env bash
# bench/run_tls.sh - the TLS echo benchmark (docs/bench.md, "TLS echo"): the
# TCP echo benchmark of bench/run_echo.sh with TLS 1.3 on every connection.
#
#   bench/run_tls.sh [--no-deps] BUILD_DIR
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench-tls builds the load generator, the epoll floor and our protocol
# server, then calls this).  This script makes a throwaway P-256
# certificate and builds our streams server and the Go peer into
# BUILD_DIR/bench/echo/; a server that cannot be built or run shows as n/a.
# First runs ASYNCIO_WITH_BENCH=1 scripts/install-deps.sh (skipped with
# --no-deps).
#
# Every server takes --tls CERT KEY, the load generator -T: each connection
# does its handshake before anything is timed, so the figures are the
# steady state of the record layer (AES-GCM on 64-byte messages), not
# handshakes.  Rows: 64-byte messages; 1 connection ping-pong, 50
# connections ping-pong, 50 connections 16 deep.  Each repetition runs every
# (row, server) once, servers in a rotating order; the figure is the median
# over repetitions.  The server runs on one core, the load generator on the
# other (taskset).
#
# Environment: BENCH_REPS (5); BENCH_SECONDS (0.5, the measured window);
# BENCH_WARMUP (0.25 s before it); BENCH_SERVERS (all: epoll ours-proto
# ours-streams uvloop-proto uvloop-streams asyncio-proto asyncio-streams
# go); BENCH_ROWS (pp1 pp50 pipe50); BENCH_SERVER_CPU (1) and
# BENCH_LOADGEN_CPU (0) the cores; BENCH_SPIN (0; 1 makes the load
# generator poll without sleeping).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
src=$here/echo
deps=1
build=
for a in "$@"; do
  case "$a" in
    --no-deps) deps=0 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    -*) echo "run_tls.sh: unknown option $a" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
[ -n "$build" ] || { echo "usage: bench/run_tls.sh [--no-deps] BUILD_DIR" >&2; exit 2; }
build=$(cd "$build" && pwd)
bin=$build/bench/echo
out=$build/bench/results/tls
for t in echo_loadgen echo_epoll echo_protocol; do
  [ -x "$bin/$t" ] || { echo "run_tls.sh: $bin/$t not built (cmake --build $build --target bench-tls)" >&2; exit 1; }
done
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/*.log

reps=${BENCH_REPS:-5}
secs=${BENCH_SECONDS:-0.5}
warmup=${BENCH_WARMUP:-0.25}
servers=${BENCH_SERVERS:-epoll ours-proto ours-streams uvloop-proto uvloop-streams asyncio-proto asyncio-streams go}
rows=${BENCH_ROWS:-pp1 pp50 pipe50}
score=${BENCH_SERVER_CPU:-1}
lcore=${BENCH_LOADGEN_CPU:-0}
spin=${BENCH_SPIN:-0}
python=/usr/bin/python3

if [ "$deps" = 1 ]; then
  ASYNCIO_WITH_BENCH=1 ASYNCIO_SKIP_CROSS=1 "$root/scripts/install-deps.sh" ||
    echo "run_tls.sh: install-deps failed; peers that are missing show as n/a" >&2
fi

cache_get() { { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null || true; } | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run_tls.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi
cc=$(cache_get CMAKE_C_COMPILER)
cc=${cc:-cc}

# A throwaway certificate for CN=localhost (the load generator verifies nothing).
cert=$bin/tls-cert.pem
key=$bin/tls-key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
  -days 30 -keyout "$key" -out "$cert" >"$out/openssl-req.log" 2>&1 ||
  { echo "run_tls.sh: openssl req failed (see $out/openssl-req.log)" >&2; exit 1; }
tls=(--tls "$cert" "$key")

# ---- building the servers that CMake does not ------------------------------------
declare -A cmd why
note() { why[$1]=$2; echo "run_tls.sh: $1: $2 (n/a)" >&2; }

build_streams() {
  if "$cc" -O2 -std=gnu11 -I"$root/include" -o "$bin/echo_streams" "$src/echo_streams.c" \
       "$build/libasyncio.a" -lssl -lcrypto -lpthread -lm >"$out/build-streams.log" 2>&1; then
    cmd[ours-streams]="$bin/echo_streams ${tls[*]}"
  else
    note ours-streams "does not build (see $out/build-streams.log)"
  fi
}

build_go() {
  if ! command -v go >/dev/null; then note go "golang-go not installed"; return; fi
  local gd=$bin/go
  mkdir -p "$gd/cache" "$gd/path"
  if GOCACHE=$gd/cache GOPATH=$gd/path GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off GOFLAGS='' \
       go build -o "$bin/echo_go" "$src/echo_server.go" >"$out/build-go.log" 2>&1; then
    cmd[go]="env GOMAXPROCS=1 $bin/echo_go ${tls[*]}"
  else
    note go "does not build (see $out/build-go.log)"
  fi
}

py_peer() { # NAME KIND [--uvloop]
  local name=$1 kind=$2
  shift 2
  if ! [ -x "$python" ] || ! "$python" -c "import asyncio, ssl${1:+, uvloop}" 2>/dev/null; then
    note "$name" "$python${1:+ with uvloop} not available"
    return
  fi
  cmd[$name]="$python $src/echo_server.py $kind $* ${tls[*]}"
}

cmd[epoll]="$bin/echo_epoll ${tls[*]}"
cmd[ours-proto]="$bin/echo_protocol ${tls[*]}"
for s in $servers; do
  case "$s" in
    epoll|ours-proto) ;;
    ours-streams) build_streams ;;
    go) build_go ;;
    asyncio-proto) py_peer "$s" protocol ;;
    asyncio-streams) py_peer "$s" streams ;;
    uvloop-proto) py_peer "$s" protocol --uvloop ;;
    uvloop-streams) py_peer "$s" streams --uvloop ;;
    *) echo "run_tls.sh: unknown server $s (libuv, Tokio and Node have no TLS server here)" >&2; exit 2 ;;
  esac
done

row_conns() { case "$1" in pp1) echo 1 ;; pp50|pipe50) echo 50 ;; esac; }
row_depth() { case "$1" in pipe50) echo 16 ;; *) echo 1 ;; esac; }
row_label() {
  case "$1" in
    pp1) echo "1 conn ping-pong" ;; pp50) echo "50 conns ping-pong" ;; pipe50) echo "50 conns x 16 deep" ;;
  esac
}

# ---- one run -----------------------------------------------------------------------
tmp=$(mktemp -d)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# run_one SERVER ROW: appends "rps cpu_us_per_request loadgen_busy" to $out/SERVER.ROW.txt.
run_one() {
  local s=$1 row=$2
  local c d port=''
  c=$(row_conns "$row")
  d=$(row_depth "$row")
  rm -f "$tmp/port"
  # The server is exec'd by taskset (and env), so $! is its own pid.
  # shellcheck disable=SC2086
  taskset -c "$score" ${cmd[$s]} >"$tmp/port" 2>>"$out/$s.log" &
  server_pid=$!
  for _ in $(seq 200); do
    port=$(awk '$1 == "port" {print $2; exit}' "$tmp/port" 2>/dev/null || true)
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "run_tls.sh: $s did not start (see $out/$s.log)" >&2
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    return 1
  fi
  local lg=(taskset -c "$lcore" "$bin/echo_loadgen" -T -c "$c" -d "$d" -w "$warmup" -t "$secs" -p "$server_pid")
  [ "$spin" = 1 ] && lg+=(-b)
  local ok=1
  "${lg[@]}" 127.0.0.1 "$port" >"$tmp/lg" 2>>"$out/$s.log" || ok=0
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  if [ "$ok" = 0 ]; then
    echo "run_tls.sh: $s $row: load generator failed (see $out/$s.log)" >&2
    return 1
  fi
  local count cpu busy
  count=$(awk '$2 == "count" {print $3}' "$tmp/lg")
  cpu=$(awk '$2 == "server_cpu_us" {print $3}' "$tmp/lg")
  busy=$(awk '$2 == "loadgen_busy" {print $3}' "$tmp/lg")
  awk -v r="$(awk '$2 == "rps" {print $3}' "$tmp/lg")" -v u="${cpu:-nan}" -v c="$count" -v b="$busy" \
    'BEGIN {printf "%s %.4f %s\n", r, u / c, b}' >>"$out/$s.$row.txt"
}

active=()
for s in $servers; do [ -n "${cmd[$s]:-}" ] && active+=("$s"); done
[ ${#active[@]} -gt 0 ] || { echo "run_tls.sh: nothing to run" >&2; exit 1; }

start=$SECONDS
load0=$(cut -d' ' -f1-3 /proc/loadavg)
nact=${#active[@]}
for rep in $(seq "$reps"); do
  echo "run_tls.sh: repetition $rep of $reps..." >&2
  for row in $rows; do
    for k in $(seq 0 $((nact - 1))); do
      s=${active[$(((k + rep - 1) % nact))]}
      run_one "$s" "$row" || true
    done
  done
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the tables ----------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
col() { awk -v k="$1" '{print $k}' "$2" 2>/dev/null | grep -v nan | median || true; }
declare -A rps cpu busy
# shellcheck disable=SC2034 # read through the nameref in table()
for s in $servers; do
  for row in $rows; do
    f=$out/$s.$row.txt
    rps[$s.$row]=$(col 1 "$f")
    cpu[$s.$row]=$(col 2 "$f")
    busy[$s.$row]=$(col 3 "$f")
  done
done

krps() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {printf "%.1fk", v / 1000}' || echo n/a; }
fix() { [ -n "$1" ] && awk -v v="$1" -v p="$2" 'BEGIN {printf "%." p "f", v}' || echo n/a; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}' || echo ""; }

cpu_name=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo
echo "TLS echo, 64-byte messages, $(openssl version | cut -d' ' -f1-2): ${cpu_name:-unknown CPU} ($(nproc) CPUs), Linux $(uname -r)"
echo "server on CPU $score, load generator on CPU $lcore$([ "$spin" = 1 ] && echo ' (spinning)');" \
  "median of $reps interleaved repetitions, ${secs} s windows after ${warmup} s warm-up"
echo "build ${build_type:-?}, $("$cc" --version 2>/dev/null | head -1); load average before $load0, after $load1"
echo "peers: Python $("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)" \
  "($("$python" -c 'import ssl; print(ssl.OPENSSL_VERSION)' 2>/dev/null || echo n/a))," \
  "uvloop $("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)," \
  "$(go env GOVERSION 2>/dev/null || echo go n/a) (crypto/tls, GOMAXPROCS=1)"
echo
hdr() {
  printf '%-16s' "$1"
  for row in $rows; do printf ' %22s' "$(row_label "$row")"; done
  echo
}
table() { # TITLE ARRAY FORMAT(krps|fix:P) RATIO(0/1)
  local title=$1 fmt=$3 withratio=$4 s row v base cell
  local -n arr=$2
  echo "$title"
  hdr server
  for s in $servers; do
    printf '%-16s' "$s"
    for row in $rows; do
      v=${arr[$s.$row]:-}
      base=${arr[epoll.$row]:-}
      case "$fmt" in krps) cell=$(krps "$v") ;; fix:*) cell=$(fix "$v" "${fmt#fix:}") ;; esac
      [ "$withratio" = 1 ] && [ -n "$v" ] && cell="$cell $(ratio "$v" "$base")"
      printf ' %22s' "$cell"
    done
    echo
  done
  echo
}
table "round trips per second (ratio to the epoll + OpenSSL floor; higher is better)" rps krps 1
table "server CPU microseconds per round trip (ratio to the floor; lower is better)" cpu fix:2 1
table "load generator busy, percent of its core" busy fix:0 0
for s in $servers; do [ -n "${why[$s]:-}" ] && echo "n/a: $s: ${why[$s]}"; done
echo "raw figures: $out (took $((SECONDS - start)) s)"
