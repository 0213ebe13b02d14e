#!/usr/bin/env bash
# Set-up command (2): install what is missing (Kafka included), build, run the whole test suite.
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${REVTRACE_BUILD_DIR:-$root/build}

scripts/install-deps.sh --test
# Node >= 20 for npm ci and for every test that runs node (the machine's own, or the one
# install-deps.sh put into ~/.cache/revtrace); ctest finds it by itself too (tests/CMakeLists.txt).
node_dir=$(scripts/install-node.sh)
[[ "$(command -v node || true)" == "$node_dir/node" ]] || export PATH="$node_dir:$PATH"
scripts/install-node-deps.sh
deploy/kafka/fetch.sh >/dev/null
scripts/install-stripe-mock.sh >/dev/null

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREVTRACE_WERROR=ON
cmake --build "$build" -j"$(nproc)"
cd "$build"
exec ctest --output-on-failure -j"$(nproc)" --timeout 900 "$@"
