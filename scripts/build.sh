#!/usr/bin/env bash
# Builds everything and runs the demo:
#   installs missing Debian packages (scripts/install-deps.sh), configures
#   ./build with CMake (RelWithDebInfo), builds the library, the tests, the
#   examples and the benchmarks, then runs scripts/demo.sh ./build.
# Run the test suite with scripts/test.sh.
#
#   ASYNCIO_JOBS=N   parallel build jobs (default 2)
#   ASYNCIO_NO_DEMO=1  build only
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# The aarch64 cross toolchain is only needed by scripts/test.sh.
ASYNCIO_SKIP_CROSS=1 ./scripts/install-deps.sh

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DASYNCIO_BUILD_TESTS=ON -DASYNCIO_BUILD_EXAMPLES=ON -DASYNCIO_BUILD_BENCH=ON
cmake --build build -j"${ASYNCIO_JOBS:-2}"

if [ "${ASYNCIO_NO_DEMO:-0}" = 1 ]; then
  exit 0
fi
if [ -f scripts/demo.sh ]; then
  exec bash scripts/demo.sh ./build
fi
echo "build.sh: built in ./build (no scripts/demo.sh to run yet)"
