#!/usr/bin/env bash
# Installs the Debian 12 (bookworm) packages the build, the tests and the
# benchmarks need.  Idempotent and quick when everything is present (one
# dpkg-query, no network); needs root only when something is missing.
# Called by scripts/build.sh, scripts/test.sh and so by .ci/run.
#
#   ASYNCIO_SKIP_CROSS=1  skip the aarch64 cross toolchain, qemu and arm64 libs
#   ASYNCIO_WITH_BENCH=1  also the benchmark comparison tools
set -euo pipefail

# libssl-dev: TLS (src/sslproto.c); openssl: the tests' s_server / s_client peers.
want_native=(build-essential cmake pkg-config libcmocka-dev libssl-dev openssl)
# libc6-dev:arm64 satisfies the cross gcc's recommended libc (we install
# without recommends); libcmocka-dev:arm64 comes through Debian multiarch.
want_cross=(gcc-aarch64-linux-gnu qemu-user libc6-dev:arm64 libcmocka-dev:arm64 libssl-dev:arm64)
want_bench=(python3 python3-uvloop golang-go valgrind)
# The TCP echo benchmark (bench/run_echo.sh): libuv, Tokio's crate sources
# (built offline by cargo), Node, perf and strace for syscall counts.
want_bench+=(libuv1-dev librust-tokio-dev nodejs linux-perf strace)

want=("${want_native[@]}")
if [ "${ASYNCIO_SKIP_CROSS:-0}" != 1 ]; then want+=("${want_cross[@]}"); fi
if [ "${ASYNCIO_WITH_BENCH:-0}" = 1 ]; then want+=("${want_bench[@]}"); fi

# One dpkg-query for all packages; unknown packages print nothing on stdout.
installed=$(dpkg-query -W -f='${Package}:${Architecture} ${Status}\n' "${want[@]}" 2>/dev/null || true)
native_arch=$(dpkg --print-architecture)
missing=()
for p in "${want[@]}"; do
  case "$p" in *:*) q=$p ;; *) q=$p:$native_arch ;; esac
  # Architecture-independent packages report "all".
  if ! grep -qE "^(${q//+/\\+}|${p%%:*}:all) install ok installed$" <<<"$installed"; then
    missing+=("$p")
  fi
done

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if [[ " ${missing[*]}" == *:arm64* ]]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
