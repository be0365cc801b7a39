#!/usr/bin/env bash
# bench/run_sync.sh - the queue and lock benchmarks of issue 4: ours against
# Python asyncio, uvloop and Go (channels, sync.Mutex) at GOMAXPROCS=1, in
# one table with ratios.
#
#   bench/run_sync.sh BUILD_DIR
#
# BUILD_DIR is a configured and built tree (cmake --build BUILD_DIR --target
# bench-sync builds bench_sync and calls this).  Rows: see bench/bench_sync.c.
# A peer that cannot run (no /usr/bin/python3, no uvloop, no go) shows as n/a.
#
# Environment: BENCH_REPS (7) repetitions per row, median reported;
# BENCH_TARGET_MS (100) length of one repetition; BENCH_PEERS
# ("asyncio uvloop go") which peers to run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
case "${1:-}" in
  -h|--help|"") sed -n '2,14p' "$0"; [ -n "${1:-}" ]; exit $? ;;
esac
build=$(cd "$1" && pwd)
exe=$build/bench/bench_sync
[ -x "$exe" ] || { echo "run_sync.sh: $exe not built (cmake --build $build --target bench_sync)" >&2; exit 1; }
out=$build/bench/results-sync
mkdir -p "$out"
export BENCH_REPS=${BENCH_REPS:-7}
export BENCH_TARGET_MS=${BENCH_TARGET_MS:-100}
peers=${BENCH_PEERS:-asyncio uvloop go}
python=/usr/bin/python3

cache_get() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt" 2>/dev/null | head -1; }
build_type=$(cache_get CMAKE_BUILD_TYPE)
sanitize=$(cache_get ASYNCIO_SANITIZE)
if [ "$build_type" = Debug ] || [ -n "$sanitize" ]; then
  echo "run_sync.sh: warning: $build is a ${build_type:-?} build${sanitize:+ with $sanitize}: figures are not representative" >&2
fi

result() { awk -v r="$2" '$1 == "RESULT" && $2 == r {print $3}' "$1" 2>/dev/null | tail -1 || true; }

rm -f "$out"/*.txt
start=$SECONDS
echo "run_sync.sh: ours (C)..." >&2
"$exe" time >"$out/ours.txt"
for p in $peers; do
  case "$p" in
    asyncio|uvloop)
      flag=; [ "$p" = uvloop ] && flag=--uvloop
      if [ -x "$python" ] && "$python" -c "import asyncio${flag:+, uvloop}" 2>/dev/null; then
        echo "run_sync.sh: $p..." >&2
        "$python" "$here/peers/bench_sync.py" $flag time >"$out/$p.txt" || echo "run_sync.sh: $p failed" >&2
      else
        echo "run_sync.sh: $p: $python${flag:+ with uvloop} not available, skipped" >&2
      fi ;;
    go)
      if command -v go >/dev/null; then
        echo "run_sync.sh: go (building, then running)..." >&2
        gd=$build/bench/go
        mkdir -p "$gd/cache" "$gd/path"
        # Offline and self-contained: no modules, no toolchain download, caches in the build tree.
        if GOCACHE=$gd/cache GOPATH=$gd/path GOTOOLCHAIN=local GOPROXY=off GO111MODULE=off GOFLAGS='' \
          go build -o "$gd/bench_sync_go" "$here/peers/bench_sync.go"; then
          GOMAXPROCS=1 "$gd/bench_sync_go" time >"$out/go.txt" || echo "run_sync.sh: go failed" >&2
        fi
      else
        echo "run_sync.sh: go: not installed, skipped" >&2
      fi ;;
    *) echo "run_sync.sh: unknown peer $p" >&2 ;;
  esac
done

declare -A val
rows=(pingpong mpmc lock)
for who in ours $peers; do
  for r in "${rows[@]}"; do val[$who.$r]=$(result "$out/$who.txt" "$r"); done
done

label() {
  case "$1" in
    pingpong) echo "queue ping-pong (ns/round trip)" ;;
    mpmc) echo "queue 4P/4C, max 128 (ns/item)" ;;
    lock) echo "lock hand-off, 4 tasks (ns/op)" ;;
  esac
}
fmt() { [ -n "$1" ] && awk -v v="$1" 'BEGIN {if (v >= 100) printf "%.0f", v; else printf "%.1f", v}' || echo n/a; }
ratio() { [ -n "$1" ] && [ -n "$2" ] && awk -v p="$1" -v o="$2" 'BEGIN {r = p / o; if (r >= 100) printf "%.0fx", r; else if (r >= 1) printf "%.1fx", r; else printf "%.2fx", r}' || echo n/a; }
# The targets of issue 4: at least 20x Python asyncio, and faster than Go channels.
verdict() {
  local o=${val[ours.$1]:-} a=${val[asyncio.$1]:-} g=${val[go.$1]:-} v=
  [ -n "$o" ] || { echo n/a; return; }
  if [ -n "$a" ]; then v=$(awk -v a="$a" -v o="$o" 'BEGIN {print (a / o >= 20) ? "20x:met" : "20x:MISSED"}'); fi
  if [ -n "$g" ]; then v="$v $(awk -v g="$g" -v o="$o" 'BEGIN {print (o < g) ? "go:met" : "go:MISSED"}')"; fi
  echo "${v# }"
}

cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1)
pyver=$("$python" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo n/a)
uvver=$("$python" -c 'import uvloop; print(uvloop.__version__)' 2>/dev/null || echo n/a)
gover=$(go env GOVERSION 2>/dev/null || echo n/a)

echo
echo "asyncio-for-C queue and lock benchmarks: ${cpu:-unknown CPU} ($(nproc) CPUs), Linux $(uname -r)"
echo "build ${build_type:-?}; Python $pyver, uvloop $uvver, $gover (GOMAXPROCS=1)"
echo "median of $BENCH_REPS repetitions of ~${BENCH_TARGET_MS} ms"
echo
printf '%-34s %8s %8s %8s %8s %13s %12s %8s  %s\n' row ours asyncio uvloop go \
  "asyncio/ours" "uvloop/ours" "go/ours" "targets (>=20x asyncio, < go)"
for r in "${rows[@]}"; do
  printf '%-34s %8s %8s %8s %8s %13s %12s %8s  %s\n' "$(label "$r")" \
    "$(fmt "${val[ours.$r]:-}")" "$(fmt "${val[asyncio.$r]:-}")" "$(fmt "${val[uvloop.$r]:-}")" \
    "$(fmt "${val[go.$r]:-}")" "$(ratio "${val[asyncio.$r]:-}" "${val[ours.$r]:-}")" \
    "$(ratio "${val[uvloop.$r]:-}" "${val[ours.$r]:-}")" "$(ratio "${val[go.$r]:-}" "${val[ours.$r]:-}")" \
    "$(verdict "$r")"
done
echo
echo "ratios are peer/ours: above 1x we are faster.  Raw outputs: $out (took $((SECONDS - start)) s)"
