#!/usr/bin/env bash
# Runs the whole test suite, the way CI does (.ci/run):
#
#   1. native      RelWithDebInfo build in build/, every CTest entry
#   2. asan        AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/
#   3. aarch64     cross build (gcc-aarch64-linux-gnu) in build-aarch64/, the
#                  tests run under qemu-user
#   4. ucontext    the ucontext context-switch fallback in build-ucontext/
#   5. tsan        ThreadSanitizer in build-tsan/: the unit tests (the
#                  thread-facing ones among them), minus the 100,000-task
#                  test (TSan allows 8128 fibers)
#   6. install     cmake --install into a temporary prefix, then the consumer
#                  project tests/install/ (CMake package and pkg-config)
#
# Each stage goes on even when an earlier one failed.  Build output goes to
# build-logs/<stage>.log (its tail is printed when a build fails); test output
# is printed.  The last line printed is "N passed, N failed": CTest's totals
# over all stages, a stage that could not be built counting as one failure.
# Exits non-zero if anything failed.
#
#   ASYNCIO_JOBS=N             parallel build and test jobs (default 2)
#   ASYNCIO_STAGES="a b ..."   run only these stages (default: all six)
#   ASYNCIO_SKIP_CROSS=1       skip the aarch64 stage (and its packages)
#   ASYNCIO_CLEAN=1            delete each stage's build directory first
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

jobs=${ASYNCIO_JOBS:-2}
stages=${ASYNCIO_STAGES:-native asan aarch64 ucontext tsan install}
if [ "${ASYNCIO_SKIP_CROSS:-0}" = 1 ]; then stages=${stages//aarch64/}; fi
logs=$root/build-logs
mkdir -p "$logs"

if ! ./scripts/install-deps.sh; then
  echo "test.sh: installing the dependencies failed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi

total_passed=0
total_failed=0
summary=()

# note STAGE SECONDS PASSED FAILED WHAT: records a stage's outcome.
note() {
  total_passed=$((total_passed + $3))
  total_failed=$((total_failed + $4))
  summary+=("$(printf '%-9s %4ss  %4s passed %4s failed  %s' "$1" "$2" "$3" "$4" "$5")")
}

# configure_and_build STAGE SOURCE-DIR BUILD-DIR CMAKE-ARGS...: output to
# build-logs/STAGE.log.
configure_and_build() {
  local stage=$1 src=$2 dir=$3
  shift 3
  local log=$logs/$stage.log
  if [ "${ASYNCIO_CLEAN:-0}" = 1 ]; then rm -rf "$dir"; fi
  echo "== $stage: configure and build in $dir (log: ${log#"$root"/})"
  if cmake -S "$src" -B "$dir" "$@" >"$log" 2>&1 &&
     cmake --build "$dir" -j"$jobs" >>"$log" 2>&1; then
    local w
    w=$(grep -c 'warning:' "$log")
    if [ "$w" != 0 ]; then echo "== $stage: $w compiler warning(s), see $log"; fi
    return 0
  fi
  echo "== $stage: BUILD FAILED; last lines of $log:"
  tail -n 60 "$log"
  return 1
}

# run_ctest STAGE DIR START CTEST-ARGS...: runs CTest and notes its totals.
run_ctest() {
  local stage=$1 dir=$2 start=$3
  shift 3
  local out=$logs/$stage.ctest.log
  echo "== $stage: ctest in $dir"
  ctest --test-dir "$dir" -j"$jobs" --output-on-failure "$@" 2>&1 | tee "$out"
  local line failed total
  line=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$out" | tail -n 1)
  if [ -z "$line" ]; then
    note "$stage" $((SECONDS - start)) 0 1 "ctest reported no totals (no tests?)"
    return
  fi
  failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
  # Cases that called skip() (no IPv6 loopback, no sock_diag, ...) count as
  # neither passed nor failed, and are named.
  local skipped skipped_names
  skipped=$(grep -c '(Skipped)$' "$out" || true)
  skipped_names=$(awk '/^The following tests did not run:/ { on = 1; next }
    on && /\(Skipped\)$/ { sub(/^[[:space:]]+[0-9]+ - /, ""); sub(/ \(Skipped\)$/, "")
      printf "%s%s", sep, $0; sep = ", " }' "$out")
  local what="ok"
  if [ "$skipped" != 0 ]; then what="ok; $skipped skipped: $skipped_names"; fi
  if [ "$failed" != 0 ]; then
    what="FAILED: $(awk '/^The following tests FAILED:/ { on = 1; next }
      on && /^[[:space:]]+[0-9]+ - / { sub(/^[[:space:]]+[0-9]+ - /, ""); n++
        if (n <= 6) { printf "%s%s", sep, $0; sep = "; " } }
      END { if (n > 6) printf " (+%d more, see %s)", n - 6, FILENAME }' "$out")"
  fi
  note "$stage" $((SECONDS - start)) $((total - failed - skipped)) "$failed" "$what"
}

stage_native() {
  local start=$SECONDS
  if configure_and_build native . build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNCIO_SANITIZE= \
       -DASYNCIO_CORO=auto -DASYNCIO_BUILD_TESTS=ON -DASYNCIO_BUILD_EXAMPLES=ON \
       -DASYNCIO_BUILD_BENCH=ON; then
    run_ctest native build "$start"
  else
    note native $((SECONDS - start)) 0 1 "build failed"
  fi
}

stage_asan() {
  local start=$SECONDS
  if configure_and_build asan . build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DASYNCIO_SANITIZE=address,undefined -DASYNCIO_BUILD_BENCH=OFF \
       -DASYNCIO_TEST_TIMEOUT=120; then
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:print_stacktrace=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
      run_ctest asan build-asan "$start"
  else
    note asan $((SECONDS - start)) 0 1 "build failed"
  fi
}

stage_aarch64() {
  local start=$SECONDS
  # Only the test suite: examples and benchmarks are host-side smoke runs.
  if configure_and_build aarch64 . build-aarch64 \
       -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-aarch64.cmake" \
       -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNCIO_BUILD_EXAMPLES=OFF \
       -DASYNCIO_BUILD_BENCH=OFF -DASYNCIO_TEST_TIMEOUT=120; then
    run_ctest aarch64 build-aarch64 "$start"
  else
    note aarch64 $((SECONDS - start)) 0 1 "build failed"
  fi
}

stage_ucontext() {
  local start=$SECONDS
  if configure_and_build ucontext . build-ucontext -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DASYNCIO_CORO=ucontext -DASYNCIO_BUILD_EXAMPLES=OFF -DASYNCIO_BUILD_BENCH=OFF; then
    run_ctest ucontext build-ucontext "$start"
  else
    note ucontext $((SECONDS - start)) 0 1 "build failed"
  fi
}

stage_tsan() {
  local start=$SECONDS
  if configure_and_build tsan . build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DASYNCIO_SANITIZE=thread -DASYNCIO_BUILD_EXAMPLES=OFF -DASYNCIO_BUILD_BENCH=OFF \
       -DASYNCIO_TEST_TIMEOUT=120; then
    TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1} \
      run_ctest tsan build-tsan "$start" -L unit -E '_100k_'
  else
    note tsan $((SECONDS - start)) 0 1 "build failed"
  fi
}

stage_install() {
  local start=$SECONDS prefix log=$logs/install.log
  if [ ! -f build/CMakeCache.txt ] && ! configure_and_build native . build; then
    note install $((SECONDS - start)) 0 1 "no native build to install"
    return
  fi
  prefix=$(mktemp -d "${TMPDIR:-/tmp}/asyncio-install.XXXXXX")
  echo "== install: cmake --install build --prefix $prefix (log: ${log#"$root"/})"
  # The consumer's pkg-config line finds the installed asyncio.pc through this.
  local pcdir
  if ! cmake --install build --prefix "$prefix" >"$log" 2>&1; then
    echo "== install: INSTALL FAILED"
    tail -n 30 "$log"
    note install $((SECONDS - start)) 0 1 "cmake --install failed"
  else
    pcdir=$(dirname "$(find "$prefix" -name asyncio.pc | head -n 1)")
    # Always from scratch: the prefix is new each time.
    rm -rf build-install
    if PKG_CONFIG_PATH=$pcdir configure_and_build install-consumer tests/install \
         build-install -DCMAKE_PREFIX_PATH="$prefix"; then
      run_ctest install build-install "$start"
    else
      note install $((SECONDS - start)) 0 1 "consumer build failed"
    fi
  fi
  rm -rf "$prefix"
}

overall_start=$SECONDS
for s in $stages; do
  case "$s" in
    native | asan | aarch64 | ucontext | tsan | install) "stage_$s" ;;
    *) echo "test.sh: unknown stage '$s'" >&2; note "$s" 0 0 1 "unknown stage" ;;
  esac
done

echo
echo "== summary (${SECONDS}s total, $((SECONDS - overall_start))s after install-deps)"
for line in "${summary[@]}"; do echo "   $line"; done
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" = 0 ]
