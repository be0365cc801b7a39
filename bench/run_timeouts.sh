#!/usr/bin/env bash
# bench/run_timeouts.sh - task group, wait_for and timeout-scope benchmarks
# (issue 3): bench/bench_timeouts.c against Python asyncio and uvloop
# (bench/peers/bench_timeouts.py), printed as one table with ratios.
#
#   bench/run_timeouts.sh BUILD_DIR
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench-timeouts builds and calls this).  A peer that cannot run (no
# python3, no uvloop module) shows as n/a; this script installs nothing.
#
# Environment: BENCH_REPS (7) repetitions per row, median reported;
# BENCH_TARGET_MS (100) length of one repetition; BENCH_GROUP_SIZE (10000)
# children per TaskGroup; BENCH_PEERS ("asyncio uvloop"); BENCH_PYTHON
# (/usr/bin/python3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  ""|-h|--help) sed -n '2,16p' "$0"; [ -n "${1:-}" ] && exit 0; exit 2 ;;
esac
build=$(cd "$1" && pwd)
exe=$build/bench/bench_timeouts
[ -x "$exe" ] || { echo "run_timeouts.sh: $exe not built (cmake --build $build --target bench_timeouts)" >&2; exit 1; }
out=$build/bench/results-timeouts
mkdir -p "$out"
rm -f "$out"/*.txt

export BENCH_REPS=${BENCH_REPS:-7}
export BENCH_TARGET_MS=${BENCH_TARGET_MS:-100}
export BENCH_GROUP_SIZE=${BENCH_GROUP_SIZE:-10000}
peers=${BENCH_PEERS:-asyncio uvloop}
python=${BENCH_PYTHON:-/usr/bin/python3}

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run_timeouts.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi

result() { awk -v r="$2" '$1 == "RESULT" && $2 == r {print $3}' "$1" 2>/dev/null | tail -1 || true; }

echo "run_timeouts.sh: ours (C)..." >&2
"$exe" time >"$out/ours.txt"
for p in $peers; do
  flag=
  [ "$p" = uvloop ] && flag=--uvloop
  if ! [ -x "$python" ] || ! "$python" -c "import asyncio; asyncio.TaskGroup${flag:+; import uvloop}" 2>/dev/null; then
    echo "run_timeouts.sh: $p: $python${flag:+ with uvloop} (3.11+) not available, skipped" >&2
    continue
  fi
  echo "run_timeouts.sh: $p..." >&2
  "$python" "$here/peers/bench_timeouts.py" $flag time >"$out/$p.txt" ||
    echo "run_timeouts.sh: $p failed" >&2
done

declare -A val
rows=(taskgroup wait_for timeout)
for who in ours asyncio uvloop; do
  for r in "${rows[@]}"; do val[$who.$r]=$(result "$out/$who.txt" "$r"); done
done

label() {
  case "$1" in
    taskgroup) echo "TaskGroup of $BENCH_GROUP_SIZE (ns/child)" ;;
    wait_for) echo "wait_for, no expiry (ns/call)" ;;
    timeout) echo "timeout()+sleep(0) (ns/block)" ;;
  esac
}
fmt() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {if (v >= 100) printf "%.0f", v; else printf "%.1f", v}' || echo n/a; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v p="$1" -v o="$2" 'BEGIN {r = p / o; if (r >= 100) printf "%.0fx", r; else if (r >= 1) printf "%.1fx", r; else printf "%.2fx", r}' || echo n/a; }
verdict() { [ -n "$1" ] && [ -n "$2" ] && awk -v p="$1" -v o="$2" 'BEGIN {print (p / o >= 20) ? "met" : "MISSED"}' || echo; }

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
pyver=$("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)
uvver=$("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)
echo
echo "asyncio-for-C timeouts/TaskGroup benchmarks: ${cpu:-unknown CPU}, Linux $(uname -r)"
echo "build ${build_type:-?}; Python $pyver, uvloop $uvver; median of $BENCH_REPS repetitions of ~${BENCH_TARGET_MS} ms"
echo
printf '%-32s %8s %8s %8s %13s %12s %s\n' row ours asyncio uvloop "asyncio/ours" "uvloop/ours" "target >=20x asyncio"
for r in "${rows[@]}"; do
  printf '%-32s %8s %8s %8s %13s %12s %s\n' "$(label "$r")" \
    "$(fmt "${val[ours.$r]:-}")" "$(fmt "${val[asyncio.$r]:-}")" "$(fmt "${val[uvloop.$r]:-}")" \
    "$(ratio "${val[asyncio.$r]:-}" "${val[ours.$r]:-}")" "$(ratio "${val[uvloop.$r]:-}" "${val[ours.$r]:-}")" \
    "$(verdict "${val[asyncio.$r]:-}" "${val[ours.$r]:-}")"
done
echo
echo "raw output: $out/*.txt"
