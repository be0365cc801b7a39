#!/usr/bin/env bash
# bench/run_echo.sh - the TCP echo benchmark of issue 5 (docs/bench.md,
# "TCP echo (issue 5)").
#
#   bench/run_echo.sh [--no-deps] [--tls] BUILD_DIR
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench-echo builds the load generator, the epoll floor and our protocol
# server, then calls this).  This script builds the other servers itself
# into BUILD_DIR/bench/echo/ (our streams server, libuv, Tokio offline
# against Debian's crate sources, Go offline); one that cannot be built or
# run shows as n/a.  First runs ASYNCIO_WITH_BENCH=1
# scripts/install-deps.sh (skipped with --no-deps).
#
# Rows: 64-byte messages; 1 connection ping-pong, 50 connections ping-pong,
# 50 connections 16 deep, 1,000 connections ping-pong.  Each repetition runs
# every (row, server) once, servers in a rotating order; the figure is the
# median over repetitions.  The server runs on one core, the load generator
# on the other (taskset).  A last pass per (row, server), not timed, counts
# the server's system calls with perf stat (when perf works).
#
# Environment: BENCH_REPS (5); BENCH_SECONDS (0.5, the measured window);
# BENCH_WARMUP (0.25 s before it); BENCH_SYSCALL_SECONDS (1.5, the window
# of the perf pass, longer so that the requests in flight at its edges
# weigh less); BENCH_SERVERS (all: epoll ours-proto
# ours-streams libuv tokio uvloop-proto uvloop-streams asyncio-proto
# asyncio-streams go node); BENCH_ROWS (pp1 pp50 pipe50 pp1000);
# BENCH_SYSCALLS (1: the perf pass; 0 skips it); BENCH_SERVER_CPU (1) and
# BENCH_LOADGEN_CPU (0) the cores; BENCH_SPIN (0; 1 makes the load
# generator poll without sleeping).
#
# --tls (what bench/run_tls.sh runs; docs/bench.md, "TLS echo"): the same
# with TLS 1.3 on every connection.  A throwaway P-256 certificate is made,
# every server gets --tls CERT KEY and the load generator -T (handshakes
# come before anything is timed).  Servers default to those with a TLS
# mode (not libuv, Tokio, Node), rows to pp1 pp50 pipe50, BENCH_SYSCALLS to
# 0; results go to BUILD_DIR/bench/results/tls.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
src=$here/echo
deps=1
tlsmode=0
build=
for a in "$@"; do
  case "$a" in
    --no-deps) deps=0 ;;
    --tls) tlsmode=1 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    -*) echo "run_echo.sh: unknown option $a" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
[ -n "$build" ] || { echo "usage: bench/run_echo.sh [--no-deps] [--tls] BUILD_DIR" >&2; exit 2; }
build=$(cd "$build" && pwd)
bin=$build/bench/echo
out=$build/bench/results/$([ "$tlsmode" = 1 ] && echo tls || echo echo)
for t in echo_loadgen echo_epoll echo_protocol; do
  [ -x "$bin/$t" ] || { echo "run_echo.sh: $bin/$t not built (cmake --build $build --target bench-echo)" >&2; exit 1; }
done
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/*.log

reps=${BENCH_REPS:-5}
secs=${BENCH_SECONDS:-0.5}
warmup=${BENCH_WARMUP:-0.25}
sys_secs=${BENCH_SYSCALL_SECONDS:-1.5}
if [ "$tlsmode" = 1 ]; then
  servers=${BENCH_SERVERS:-epoll ours-proto ours-streams uvloop-proto uvloop-streams asyncio-proto asyncio-streams go}
  rows=${BENCH_ROWS:-pp1 pp50 pipe50}
  do_sys=${BENCH_SYSCALLS:-0}
else
  servers=${BENCH_SERVERS:-epoll ours-proto ours-streams libuv tokio uvloop-proto uvloop-streams asyncio-proto asyncio-streams go node}
  rows=${BENCH_ROWS:-pp1 pp50 pipe50 pp1000}
  do_sys=${BENCH_SYSCALLS:-1}
fi
score=${BENCH_SERVER_CPU:-1}
lcore=${BENCH_LOADGEN_CPU:-0}
spin=${BENCH_SPIN:-0}
python=/usr/bin/python3

if [ "$deps" = 1 ]; then
  ASYNCIO_WITH_BENCH=1 ASYNCIO_SKIP_CROSS=1 "$root/scripts/install-deps.sh" ||
    echo "run_echo.sh: install-deps failed; peers that are missing show as n/a" >&2
fi

cache_get() { { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null || true; } | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run_echo.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi
cc=$(cache_get CMAKE_C_COMPILER)
cc=${cc:-cc}

# --tls: a throwaway certificate for CN=localhost (the load generator verifies nothing).
tls=()
tls_lg=()
if [ "$tlsmode" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
    -days 30 -keyout "$bin/tls-key.pem" -out "$bin/tls-cert.pem" >"$out/openssl-req.log" 2>&1 ||
    { echo "run_echo.sh: openssl req failed (see $out/openssl-req.log)" >&2; exit 1; }
  tls=(--tls "$bin/tls-cert.pem" "$bin/tls-key.pem")
  tls_lg=(-T)
fi

# ---- building the servers that CMake does not ------------------------------------
declare -A cmd why
note() { why[$1]=$2; echo "run_echo.sh: $1: $2 (n/a)" >&2; }

build_streams() {
  # Until src/streams.c exists the link fails on asyncio_start_server & co.
  local lib=$build/libasyncio.a
  if "$cc" -O2 -std=gnu11 -I"$root/include" -o "$bin/echo_streams" "$src/echo_streams.c" "$lib" \
       -lssl -lcrypto -lpthread -lm >"$out/build-streams.log" 2>&1; then
    cmd[ours-streams]="$bin/echo_streams ${tls[*]}"
  else
    note ours-streams "does not build: $(grep -m1 -E 'error|undefined' "$out/build-streams.log" | sed 's/.*: //' || true)"
  fi
}

build_uv() {
  if ! pkg-config --exists libuv 2>/dev/null; then note libuv "libuv1-dev not installed"; return; fi
  # shellcheck disable=SC2046
  if "$cc" -O2 -o "$bin/echo_uv" "$src/echo_uv.c" $(pkg-config --cflags --libs libuv) \
       >"$out/build-uv.log" 2>&1; then
    cmd[libuv]="$bin/echo_uv"
  else
    note libuv "does not build (see $out/build-uv.log)"
  fi
}

build_tokio() {
  if ! command -v cargo >/dev/null; then note tokio "cargo not installed"; return; fi
  if ! [ -d /usr/share/cargo/registry ] || ! ls -d /usr/share/cargo/registry/tokio-1.* >/dev/null 2>&1; then
    note tokio "librust-tokio-dev not installed"
    return
  fi
  # A copy of the project in the build tree (so Cargo.lock lands there), and
  # a CARGO_HOME there whose config replaces crates.io with Debian's sources.
  local d=$bin/tokio-src home=$bin/cargo-home
  mkdir -p "$d/src" "$home"
  cp "$src/tokio/Cargo.toml" "$d/Cargo.toml"
  cp "$src/tokio/src/main.rs" "$d/src/main.rs"
  cat >"$home/config.toml" <<'EOF'
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "/usr/share/cargo/registry"
[net]
offline = true
EOF
  if (cd "$d" && CARGO_HOME=$home cargo build --release --offline --target-dir "$bin/tokio-target") \
       >"$out/build-tokio.log" 2>&1; then
    cp "$bin/tokio-target/release/echo_tokio" "$bin/echo_tokio"
    cmd[tokio]="$bin/echo_tokio"
  else
    note tokio "does not build offline (see $out/build-tokio.log)"
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
  if [ "$tlsmode" = 1 ]; then
    case "$s" in
      libuv|tokio|node) echo "run_echo.sh: $s has no TLS server here" >&2; exit 2 ;;
    esac
  fi
  case "$s" in
    epoll|ours-proto) ;;
    ours-streams) build_streams ;;
    libuv) build_uv ;;
    tokio) build_tokio ;;
    go) build_go ;;
    asyncio-proto) py_peer "$s" protocol ;;
    asyncio-streams) py_peer "$s" streams ;;
    uvloop-proto) py_peer "$s" protocol --uvloop ;;
    uvloop-streams) py_peer "$s" streams --uvloop ;;
    node)
      if command -v node >/dev/null; then cmd[node]="node $src/echo_server.js"; else note node "nodejs not installed"; fi ;;
    *) echo "run_echo.sh: unknown server $s" >&2; exit 2 ;;
  esac
done

perf_ok=0
if [ "$do_sys" = 1 ]; then
  if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, true >/dev/null 2>&1; then
    perf_ok=1
  else
    echo "run_echo.sh: perf cannot count raw_syscalls:sys_enter here; syscalls/request n/a" >&2
  fi
fi

row_conns() { case "$1" in pp1) echo 1 ;; pp50|pipe50) echo 50 ;; pp1000) echo 1000 ;; esac; }
row_depth() { case "$1" in pipe50) echo 16 ;; *) echo 1 ;; esac; }
row_label() {
  case "$1" in
    pp1) echo "1 conn ping-pong" ;; pp50) echo "50 conns ping-pong" ;;
    pipe50) echo "50 conns x 16 deep" ;; pp1000) echo "1000 conns ping-pong" ;;
  esac
}

# ---- one run -----------------------------------------------------------------------
tmp=$(mktemp -d)
server_pid=
perf_pid=
cleanup() {
  [ -n "$perf_pid" ] && kill -INT "$perf_pid" 2>/dev/null || true
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# run_one SERVER ROW PERF: appends "rps cpu_us_per_request loadgen_busy" (or
# "syscalls_per_request" when PERF=1) to $out/SERVER.ROW[.sys].txt.
run_one() {
  local s=$1 row=$2 withperf=$3
  local c d port=''
  c=$(row_conns "$row")
  d=$(row_depth "$row")
  # A fresh file: the previous server's port must not be read before the
  # new one's shell has even truncated it.
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
    echo "run_echo.sh: $s did not start (see $out/$s.log)" >&2
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    return 1
  fi
  local window=$secs
  [ "$withperf" = 1 ] && window=$sys_secs
  local lg=(taskset -c "$lcore" "$bin/echo_loadgen" "${tls_lg[@]}" -c "$c" -d "$d" -w "$warmup" -t "$window" -p "$server_pid")
  [ "$spin" = 1 ] && lg+=(-b)
  if [ "$withperf" = 1 ]; then
    rm -f "$tmp/ctl" "$tmp/ack" "$tmp/perf"
    mkfifo "$tmp/ctl" "$tmp/ack"
    taskset -c "$lcore" perf stat -e raw_syscalls:sys_enter -x, -o "$tmp/perf" -D -1 \
      --control "fifo:$tmp/ctl,$tmp/ack" -p "$server_pid" >/dev/null 2>>"$out/perf.log" &
    perf_pid=$!
    lg+=(-C "$tmp/ctl" -A "$tmp/ack")
  fi
  local ok=1
  "${lg[@]}" 127.0.0.1 "$port" >"$tmp/lg" 2>>"$out/$s.log" || ok=0
  if [ -n "$perf_pid" ]; then
    # perf blocks opening its fifos until the load generator opens them; a
    # load generator that failed first leaves it there, so SIGKILL follows.
    kill -INT "$perf_pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$perf_pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf_pid=
  fi
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  if [ "$ok" = 0 ]; then
    echo "run_echo.sh: $s $row: load generator failed (see $out/$s.log)" >&2
    return 1
  fi
  local count cpu busy
  count=$(awk '$2 == "count" {print $3}' "$tmp/lg")
  if [ "$withperf" = 1 ]; then
    local n
    n=$(awk -F, '$3 ~ /raw_syscalls:sys_enter/ {print $1}' "$tmp/perf" 2>/dev/null || true)
    case "$n" in ''|*[!0-9]*) return 1 ;; esac
    awk -v n="$n" -v c="$count" 'BEGIN {printf "%.4f\n", n / c}' >>"$out/$s.$row.sys.txt"
    return 0
  fi
  cpu=$(awk '$2 == "server_cpu_us" {print $3}' "$tmp/lg")
  busy=$(awk '$2 == "loadgen_busy" {print $3}' "$tmp/lg")
  awk -v r="$(awk '$2 == "rps" {print $3}' "$tmp/lg")" -v u="${cpu:-nan}" -v c="$count" -v b="$busy" \
    'BEGIN {printf "%s %.4f %s\n", r, u / c, b}' >>"$out/$s.$row.txt"
}

active=()
for s in $servers; do [ -n "${cmd[$s]:-}" ] && active+=("$s"); done
[ ${#active[@]} -gt 0 ] || { echo "run_echo.sh: nothing to run" >&2; exit 1; }

start=$SECONDS
load0=$(cut -d' ' -f1-3 /proc/loadavg)
nact=${#active[@]}
for rep in $(seq "$reps"); do
  echo "run_echo.sh: repetition $rep of $reps..." >&2
  for row in $rows; do
    for k in $(seq 0 $((nact - 1))); do
      s=${active[$(((k + rep - 1) % nact))]}
      run_one "$s" "$row" 0 || true
    done
  done
done
if [ "$perf_ok" = 1 ]; then
  echo "run_echo.sh: counting system calls (perf stat)..." >&2
  for row in $rows; do
    for s in "${active[@]}"; do run_one "$s" "$row" 1 || true; done
  done
fi
load1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the tables ----------------------------------------------------------------------
median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
col() { awk -v k="$1" '{print $k}' "$2" 2>/dev/null | grep -v nan | median || true; }
declare -A rps cpu sys busy
# shellcheck disable=SC2034 # read through the nameref in table()
for s in $servers; do
  for row in $rows; do
    f=$out/$s.$row.txt
    rps[$s.$row]=$(col 1 "$f")
    cpu[$s.$row]=$(col 2 "$f")
    busy[$s.$row]=$(col 3 "$f")
    sys[$s.$row]=$(awk '{print $1}' "$out/$s.$row.sys.txt" 2>/dev/null | median || true)
  done
done

krps() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {printf "%.1fk", v / 1000}' || echo n/a; }
fix() { [ -n "$1" ] && awk -v v="$1" -v p="$2" 'BEGIN {printf "%." p "f", v}' || echo n/a; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}' || echo ""; }

cpu_name=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
echo
echo "$([ "$tlsmode" = 1 ] && echo "TLS echo, $(openssl version | cut -d' ' -f1-2)" || echo "TCP echo"), 64-byte messages: ${cpu_name:-unknown CPU} ($(nproc) CPUs), Linux $(uname -r)"
echo "server on CPU $score, load generator on CPU $lcore$([ "$spin" = 1 ] && echo ' (spinning)');" \
  "median of $reps interleaved repetitions, ${secs} s windows after ${warmup} s warm-up"
echo "build ${build_type:-?}, $("$cc" --version 2>/dev/null | head -1); load average before $load0, after $load1"
echo "peers: Python $("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)," \
  "uvloop $("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)," \
  "libuv $(pkg-config --modversion libuv 2>/dev/null || echo n/a)," \
  "tokio $(ls -d /usr/share/cargo/registry/tokio-1.* 2>/dev/null | sed 's/.*tokio-//' | head -1 || true) ($(rustc --version 2>/dev/null | cut -d' ' -f1-2))," \
  "$(go env GOVERSION 2>/dev/null || echo go n/a) (GOMAXPROCS=1), node $(node --version 2>/dev/null || echo n/a)"
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
table "round trips per second (ratio to the epoll$([ "$tlsmode" = 1 ] && echo ' + OpenSSL') floor; higher is better)" rps krps 1
table "server CPU microseconds per round trip (ratio to the floor; lower is better)" cpu fix:2 1
if [ "$perf_ok" = 1 ]; then
  table "server system calls per round trip (perf stat, one untimed ${sys_secs} s run)" sys fix:3 0
fi
table "load generator busy, percent of its core" busy fix:0 0
for s in $servers; do [ -n "${why[$s]:-}" ] && echo "n/a: $s: ${why[$s]}"; done
echo "raw figures: $out (took $((SECONDS - start)) s)"
