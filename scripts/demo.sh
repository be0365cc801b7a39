#!/bin/sh
# Runs every built example program in turn, each under a "== <name> ==" banner.
#
#   scripts/demo.sh [BUILD_DIR]     (default ./build)
#
# The examples run with their default arguments, as their Python originals
# do, so rand and chained take about ten seconds each.  Exits non-zero if an
# example is missing (not built) or fails.
set -u

build=${1:-./build}
dir=$build/examples
examples="countasync countsync rand chained call_soon call_later call_at future_callback cancel_task cancel_task2"

if [ ! -d "$dir" ]; then
  echo "demo.sh: no examples in $dir (build with -DASYNCIO_BUILD_EXAMPLES=ON)" >&2
  exit 2
fi

failed=""
for name in $examples; do
  echo "== $name =="
  if [ ! -x "$dir/$name" ]; then
    echo "demo.sh: $dir/$name is not built" >&2
    failed="$failed $name"
  else
    "$dir/$name"
    status=$?
    if [ "$status" -ne 0 ]; then
      echo "demo.sh: $name failed (exit status $status)" >&2
      failed="$failed $name"
    fi
  fi
done

if [ -n "$failed" ]; then
  echo "demo.sh: failed:$failed" >&2
  exit 1
fi
