#!/usr/bin/env bash
# bench/run.sh - runs the benchmarks of issue 2 and prints one table
# (docs/bench.md).
#
#   bench/run.sh [--no-deps] BUILD_DIR              ours vs asyncio, uvloop, Go
#   bench/run.sh [--no-deps] --callgrind BUILD_DIR  instructions per operation
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench does both and calls this).  First runs
# ASYNCIO_WITH_BENCH=1 scripts/install-deps.sh (python3-uvloop, golang-go,
# valgrind; skipped with --no-deps); a peer that cannot run shows as n/a.
#
# Environment: BENCH_REPS (7) repetitions per row, median reported;
# BENCH_TARGET_MS (100) length of one repetition; BENCH_MEMORY_N (100000)
# idle tasks for the memory row; BENCH_MEMORY_REPS (3) fresh processes for it;
# BENCH_PEERS ("asyncio uvloop go") which peers to run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
mode=table
deps=1
build=
for a in "$@"; do
  case "$a" in
    --callgrind) mode=callgrind ;;
    --no-deps) deps=0 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $a" >&2; exit 2 ;;
    *) build=$a ;;
  esac
done
[ -n "$build" ] || { echo "usage: bench/run.sh [--no-deps] [--callgrind] BUILD_DIR" >&2; exit 2; }
build=$(cd "$build" && pwd)
exe=$build/bench/bench_asyncio
[ -x "$exe" ] || { echo "run.sh: $exe not built (cmake --build $build --target bench_asyncio)" >&2; exit 1; }
out=$build/bench/results
mkdir -p "$out"

export BENCH_REPS=${BENCH_REPS:-7}
export BENCH_TARGET_MS=${BENCH_TARGET_MS:-100}
mem_n=${BENCH_MEMORY_N:-100000}
mem_reps=${BENCH_MEMORY_REPS:-3}
peers=${BENCH_PEERS:-asyncio uvloop go}
python=/usr/bin/python3

if [ "$deps" = 1 ]; then
  ASYNCIO_WITH_BENCH=1 ASYNCIO_SKIP_CROSS=1 "$root/scripts/install-deps.sh" ||
    echo "run.sh: install-deps failed; peers that are missing show as n/a" >&2
fi

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
coro=$(cache_get ASYNCIO_CORO)
if [ "${coro:-auto}" = auto ]; then
  case "$(uname -m)" in x86_64|aarch64) coro="asm (auto)" ;; *) coro="ucontext (auto)" ;; esac
fi
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi
cc=$(cache_get CMAKE_C_COMPILER)

median() { sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]}'; }
# result FILE ROW: the RESULT figure of ROW in FILE, or empty.
result() { awk -v r="$2" '$1 == "RESULT" && $2 == r {print $3}' "$1" 2>/dev/null | tail -1 || true; }

# ---- callgrind mode -------------------------------------------------------------
if [ "$mode" = callgrind ]; then
  command -v valgrind >/dev/null || { echo "run.sh: valgrind not installed" >&2; exit 1; }
  cg=$build/bench/callgrind
  mkdir -p "$cg"
  # ir ROW N: instructions of one whole run of ROW with N operations.
  ir() {
    local f=$cg/callgrind.$1.$2.out
    valgrind --tool=callgrind --callgrind-out-file="$f" "$exe" once "$1" "$2" \
      >"$cg/$1.$2.stdout" 2>"$cg/$1.$2.log" || { cat "$cg/$1.$2.log" >&2; exit 1; }
    awk '/^(summary|totals):/ {print $2; exit}' "$f"
  }
  echo "callgrind: instructions per operation = (Ir(N2) - Ir(N1)) / (N2 - N1), so start-up,"
  echo "loop creation and the first (cold) batch cancel out.  Build: ${build_type:-?}, context switch ${coro:-?}."
  printf '%-30s %10s %10s %14s %14s %12s\n' row N1 N2 "Ir(N1)" "Ir(N2)" "Ir per op"
  # timers run on the real clock, so how many loop iterations a batch takes
  # (and so its count) can move by a few instructions from run to run.
  for spec in "switch 2000 22000 switch" "create 2000 12000 task" \
              "call_soon 20000 120000 callback" "timers 20000 120000 timer"; do
    read -r -a f <<<"$spec"
    set -- "${f[@]}"
    a=$(ir "$1" "$2")
    b=$(ir "$1" "$3")
    per=$(awk -v a="$a" -v b="$b" -v n1="$2" -v n2="$3" 'BEGIN {printf "%.1f", (b - a) / (n2 - n1)}')
    printf '%-30s %10s %10s %14s %14s %12s\n' "$1 (Ir per $4)" "$2" "$3" "$a" "$b" "$per"
  done
  echo "profiles: $cg/callgrind.*.out (callgrind_annotate --inclusive=yes FILE)"
  exit 0
fi

# ---- table mode -------------------------------------------------------------------
declare -A val
rows=(switch create call_soon timers memory)

run_ours() {
  echo "run.sh: ours (C)..." >&2
  "$exe" time >"$out/ours.txt"
  for _ in $(seq "$mem_reps"); do "$exe" memory "$mem_n"; done >"$out/ours.mem.txt"
}

run_python() { # NAME [--uvloop]
  local name=$1; shift
  if ! [ -x "$python" ] || ! "$python" -c "import asyncio${1:+, uvloop}" 2>/dev/null; then
    echo "run.sh: $name: $python${1:+ with uvloop} not available, skipped" >&2
    return 0
  fi
  echo "run.sh: $name..." >&2
  "$python" "$here/peers/bench_asyncio.py" "$@" time >"$out/$name.txt"
  for _ in $(seq "$mem_reps"); do "$python" "$here/peers/bench_asyncio.py" "$@" memory "$mem_n"; done \
    >"$out/$name.mem.txt"
}

run_go() {
  if ! command -v go >/dev/null; then
    echo "run.sh: go: golang-go not installed, skipped" >&2
    return 0
  fi
  echo "run.sh: go (building, then running)..." >&2
  local gd=$build/bench/go
  mkdir -p "$gd/cache" "$gd/path"
  # Offline and self-contained: no modules, no toolchain download, caches in the build tree.
  GOCACHE=$gd/cache GOPATH=$gd/path GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off GOFLAGS='' \
    go build -o "$gd/bench_go" "$here/peers/bench.go"
  GOMAXPROCS=1 "$gd/bench_go" time >"$out/go.txt"
  for _ in $(seq "$mem_reps"); do GOMAXPROCS=1 "$gd/bench_go" memory "$mem_n"; done >"$out/go.mem.txt"
}

rm -f "$out"/*.txt
start=$SECONDS
run_ours
for p in $peers; do
  # A peer that fails leaves its column n/a; ours failing ends the run.
  case "$p" in
    asyncio) run_python asyncio || echo "run.sh: asyncio failed" >&2 ;;
    uvloop) run_python uvloop --uvloop || echo "run.sh: uvloop failed" >&2 ;;
    go) run_go || echo "run.sh: go failed" >&2 ;;
    *) echo "run.sh: unknown peer $p" >&2 ;;
  esac
done

for who in ours $peers; do
  for r in switch create call_soon timers; do val[$who.$r]=$(result "$out/$who.txt" "$r"); done
  val[$who.memory]=$({ awk '$1 == "RESULT" && $2 == "memory" {print $3}' "$out/$who.mem.txt" 2>/dev/null || true; } | median)
done
pte=$(awk '$1 == "INFO" && $2 == "memory_pagetables" {print $3}' "$out/ours.mem.txt" | median)

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
ncpu=$(nproc)
ccver=$("${cc:-cc}" --version 2>/dev/null | head -1)
pyver=$("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)
uvver=$("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)
gover=$(go env GOVERSION 2>/dev/null || echo n/a)

label() {
  case "$1" in
    switch) echo "context switch (ns/switch)" ;;
    create) echo "create+complete (ns/task)" ;;
    call_soon) echo "call_soon (ns/callback)" ;;
    timers) echo "call_later timer (ns/timer)" ;;
    memory) echo "idle task memory (B/task)" ;;
  esac
}
# Absolute targets of issue 2 (on our figure); "-" where the issue sets none.
target() {
  case "$1" in
    switch) echo "< 6" ;;
    create) echo "< 40" ;;
    memory) echo "<= 4608" ;;
    *) echo "-" ;;
  esac
}
fmt() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {if (v >= 100) printf "%.0f", v; else printf "%.1f", v}' || echo n/a; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v p="$1" -v o="$2" 'BEGIN {r = p / o; if (r >= 100) printf "%.0fx", r; else if (r >= 1) printf "%.1fx", r; else printf "%.2fx", r}' || echo n/a; }
meets() { awk -v v="$1" -v t="$2" 'BEGIN {split(t, a, " "); ok = a[1] == "<" ? v < a[2] : v <= a[2]; print ok ? "met" : "MISSED"}'; }

echo
echo "asyncio-for-C benchmarks: ${cpu:-unknown CPU} (${ncpu} CPUs), Linux $(uname -r), ${ccver:-?}"
echo "build ${build_type:-?}, context switch ${coro:-?}; Python $pyver, uvloop $uvver, $gover (GOMAXPROCS=1)"
echo "median of $BENCH_REPS repetitions of ~${BENCH_TARGET_MS} ms (memory: median of $mem_reps processes, $mem_n tasks)"
echo
hdr=(row ours asyncio uvloop go "asyncio/ours" "uvloop/ours" "go/ours" target "")
printf '%-28s %8s %8s %8s %8s %13s %12s %8s %8s %s\n' "${hdr[@]}"
summary=()
for r in "${rows[@]}"; do
  t=$(target "$r")
  verdict=
  if [ "$t" != - ] && [ -n "${val[ours.$r]:-}" ]; then verdict=$(meets "${val[ours.$r]:-}" "$t"); fi
  printf '%-28s %8s %8s %8s %8s %13s %12s %8s %8s %s\n' "$(label "$r")" \
    "$(fmt "${val[ours.$r]:-}")" "$(fmt "${val[asyncio.$r]:-}")" "$(fmt "${val[uvloop.$r]:-}")" \
    "$(fmt "${val[go.$r]:-}")" "$(ratio "${val[asyncio.$r]:-}" "${val[ours.$r]:-}")" \
    "$(ratio "${val[uvloop.$r]:-}" "${val[ours.$r]:-}")" "$(ratio "${val[go.$r]:-}" "${val[ours.$r]:-}")" \
    "$t" "$verdict"
  if [ -n "${val[asyncio.$r]:-}" ] && [ -n "${val[ours.$r]:-}" ]; then
    x=$(awk -v p="${val[asyncio.$r]}" -v o="${val[ours.$r]:-}" 'BEGIN {print (p / o >= 100) ? "" : "x"}')
    [ -z "$x" ] || summary+=("$r $(ratio "${val[asyncio.$r]}" "${val[ours.$r]:-}")")
  fi
done
echo
echo "ratios are peer/ours: above 1x we are faster (or smaller).  Page tables, not in RSS:"
echo "$(fmt "$pte") B per idle task of ours."
if [ -n "${val[asyncio.switch]:-}" ]; then
  if [ ${#summary[@]} -eq 0 ]; then
    echo "target >= 100x Python asyncio on every row: met"
  else
    missed=$(printf '%s, ' "${summary[@]}")
    echo "target >= 100x Python asyncio on every row: MISSED (${missed%, })"
  fi
fi
echo "raw outputs: $out (took $((SECONDS - start)) s)"
