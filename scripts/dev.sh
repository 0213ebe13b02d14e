#!/usr/bin/env bash
# Set-up command (1): install what is missing, build, start `revtrace dev --demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${REVTRACE_BUILD_DIR:-$root/build}

scripts/install-deps.sh
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j"$(nproc)" --target revtrace
exec "$build/app/revtrace" dev --demo --data-dir "$root/data/dev" "$@"
