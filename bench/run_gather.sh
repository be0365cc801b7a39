#!/usr/bin/env bash
# bench/run_gather.sh - gather of N tasks (default 10,000): ours against
# Python asyncio and uvloop, one table with ratios (issue 3).
#
#   bench/run_gather.sh BUILD_DIR [N]
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench-gather builds bench_gather and calls this).  Peers run with
# /usr/bin/python3; without uvloop (python3-uvloop) that column is n/a.
# Environment: BENCH_REPS (7) runs per row, median reported.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:?usage: bench/run_gather.sh BUILD_DIR [N]}
n=${2:-10000}
build=$(cd "$build" && pwd)
exe=$build/bench/bench_gather
[ -x "$exe" ] || { echo "run_gather.sh: $exe not built (cmake --build $build --target bench_gather)" >&2; exit 1; }
out=$build/bench/results
mkdir -p "$out"
python=/usr/bin/python3
export BENCH_REPS=${BENCH_REPS:-7}

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run_gather.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi

result() { awk -v r="$2" '$1 == "RESULT" && $2 == r {print $3}' "$1" 2>/dev/null | tail -1 || true; }

echo "run_gather.sh: ours (C)..." >&2
"$exe" "$n" >"$out/gather.ours.txt"
for peer in asyncio uvloop; do
  flag=; [ "$peer" = uvloop ] && flag=--uvloop
  if [ -x "$python" ] && "$python" -c "import asyncio${flag:+, uvloop}" 2>/dev/null; then
    echo "run_gather.sh: $peer..." >&2
    "$python" "$here/peers/bench_gather.py" $flag "$n" >"$out/gather.$peer.txt" ||
      { echo "run_gather.sh: $peer failed" >&2; rm -f "$out/gather.$peer.txt"; }
  else
    echo "run_gather.sh: $peer: $python${flag:+ with uvloop} not available, skipped" >&2
    rm -f "$out/gather.$peer.txt"
  fi
done

pyver=$("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)
uvver=$("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)
echo "gather of $n tasks, ns per task (median of $BENCH_REPS runs); build ${build_type:-?};"
echo "Python $pyver, uvloop $uvver; x = peer / ours (higher is better for ours)"
printf '%-14s %12s %12s %12s %10s %10s\n' row ours asyncio uvloop "x asyncio" "x uvloop"
for row in gather_coros gather_tasks gather_yield; do
  o=$(result "$out/gather.ours.txt" $row)
  a=$(result "$out/gather.asyncio.txt" $row)
  u=$(result "$out/gather.uvloop.txt" $row)
  ratio() { [ -n "$1" ] && [ -n "$o" ] && awk -v p="$1" -v o="$o" 'BEGIN {printf "%.1fx", p / o}' || echo n/a; }
  printf '%-14s %12s %12s %12s %10s %10s\n' $row "${o:-n/a}" "${a:-n/a}" "${u:-n/a}" "$(ratio "$a")" "$(ratio "$u")"
done
