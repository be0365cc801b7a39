#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the benchmarks need.
# Idempotent and quiet when everything is present; needs root only when
# something is missing. Called by the README commands and by .ci/run.
set -euo pipefail

want_native=(build-essential cmake pkg-config libcmocka-dev)
want_cross=(gcc-aarch64-linux-gnu qemu-user libc6-dev:arm64 libcmocka-dev:arm64)
want_bench=(python3 python3-uvloop golang-go valgrind)

missing=()
check() {
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
}

check "${want_native[@]}"
if [ "${ASYNCIO_SKIP_CROSS:-0}" != 1 ]; then check "${want_cross[@]}"; fi
if [ "${ASYNCIO_WITH_BENCH:-0}" = 1 ]; then check "${want_bench[@]}"; fi

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if printf '%s\n' "${missing[@]}" | grep -q ':arm64'; then
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
fi
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
