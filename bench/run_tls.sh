#!/usr/bin/env bash
# bench/run_tls.sh - the TLS echo benchmark (docs/bench.md, "TLS echo"): the
# TCP echo benchmark of bench/run_echo.sh with TLS 1.3 on every connection,
# which is run_echo.sh --tls (see there for what it does and its settings).
#
#   bench/run_tls.sh [--no-deps] BUILD_DIR
exec "$(dirname "${BASH_SOURCE[0]}")/run_echo.sh" --tls "$@"
