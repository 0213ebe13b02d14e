#!/usr/bin/env bash
# ctest `setup.toolchains`: set-up command (2) on a machine whose node and go are too old (Debian
# 12: Node 18, Go 1.19), forced here without uninstalling anything: fake old `node`, `npm` and
# `go` first on PATH, and REVTRACE_IGNORE_SYSTEM_TOOLCHAINS=1 for the machine's real ones. Checks
# that
#   - scripts/install-node.sh / install-go.sh refuse the old ones and install (the first time,
#     from PyPI and the Go module proxy) or reuse the pinned ones in the cache, which run;
#   - a second call takes the fast path (no download, well under the limit below);
#   - stripe-mock builds with the cached Go (scripts/install-stripe-mock.sh);
#   - ctest itself runs `node` tests with the cached node (tests/CMakeLists.txt's node-path.cmake).
# The cache is the real one (${REVTRACE_CACHE:-~/.cache/revtrace}); stripe-mock goes to a temp dir.
#   tests/toolchains_test.sh SOURCE_DIR NODE_PATH_CMAKE
set -euo pipefail
src=$1
node_path_cmake=$2
cache=${REVTRACE_CACHE:-$HOME/.cache/revtrace}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
expect_eq() {  # expect_eq WHAT GOT WANT
  if [[ $2 == "$3" ]]; then pass "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}

# Debian 12's versions, as fakes that fail loudly if anything tries to use them for real.
fake=$tmp/old-bin
mkdir -p "$fake"
cat >"$fake/node" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && { echo v18.19.0; exit 0; }
echo "fake node 18 was used: $*" >&2; exit 99
EOF
cat >"$fake/npm" <<'EOF'
#!/bin/sh
[ "$1" = --version ] && { echo 9.2.0; exit 0; }
echo "fake npm was used: $*" >&2; exit 99
EOF
cat >"$fake/go" <<'EOF'
#!/bin/sh
[ "$1" = version ] && { echo "go version go1.19.8 linux/amd64"; exit 0; }
echo "fake go 1.19 was used: $*" >&2; exit 99
EOF
chmod +x "$fake"/*
old_path=$fake:$PATH

# 1. Old ones first on PATH: never chosen, whatever else the machine has.
node_dir=$(PATH=$old_path "$src/scripts/install-node.sh")
[[ $node_dir != "$fake" ]] && pass "install-node.sh passes over node 18 (chose $node_dir)" ||
  fail "install-node.sh accepted node 18"
v=$("$node_dir/node" --version)
[[ $(printf '%s\n' v20 "$v" | sort -V | head -n1) == v20 ]] && pass "node $v >= 20" || fail "node $v < 20"
go_dir=$(PATH=$old_path "$src/scripts/install-go.sh")
[[ $go_dir != "$fake" ]] && pass "install-go.sh passes over go 1.19 (chose $go_dir)" ||
  fail "install-go.sh accepted go 1.19"

# 2. The machine's own ignored too: the pinned toolchains from the cache (installed if missing).
export REVTRACE_IGNORE_SYSTEM_TOOLCHAINS=1
node_dir=$(PATH=$old_path "$src/scripts/install-node.sh")
expect_eq "cached node dir" "$node_dir" "$cache/node-v22.20.0/bin"
expect_eq "cached node version" "$("$node_dir/node" --version)" v22.20.0
expect_eq "cached npm runs" "$(PATH=$node_dir:$PATH "$node_dir/npm" --version >/dev/null && echo yes)" yes
expect_eq "node evaluates" "$("$node_dir/node" -e 'console.log(JSON.stringify({a: 1 + 1}))')" '{"a":2}'
go_dir=$(PATH=$old_path "$src/scripts/install-go.sh")
expect_eq "cached go dir" "$go_dir" "$cache/go-1.22.12/bin"
expect_eq "cached go version" "$("$go_dir/go" env GOVERSION)" go1.22.12
expect_eq "cached go's GOROOT" "$("$go_dir/go" env GOROOT)" "$cache/go-1.22.12"
expect_eq "--find after install" "$(PATH=$old_path "$src/scripts/install-node.sh" --find)" "$node_dir"

# 3. Already there: seconds, not a download.
start=$(date +%s%N)
PATH=$old_path "$src/scripts/install-node.sh" >/dev/null
PATH=$old_path "$src/scripts/install-go.sh" >/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
((ms < 3000)) && pass "fast path of both: $ms ms" || fail "fast path took $ms ms"

# 4. stripe-mock from source with the cached Go (the fake go 1.19 first on PATH would exit 99).
mock_bin=$(PATH=$old_path REVTRACE_CACHE_DIR=$tmp/mock "$src/scripts/install-stripe-mock.sh")
expect_eq "stripe-mock path" "$mock_bin" "$tmp/mock/bin/stripe-mock"
built_with=$("$go_dir/go" version "$mock_bin" 2>/dev/null | awk '{print $2}')
expect_eq "stripe-mock built with" "$built_with" go1.22.12

# 5. ctest: a test that runs `node` gets the cached node although node 18 is first on PATH.
mkdir -p "$tmp/ctest"
cat >"$tmp/ctest/CTestTestfile.cmake" <<EOF
add_test(node.version node -e "console.log('node=' + process.version)")
include("$node_path_cmake")
EOF
out=$(cd "$tmp/ctest" && PATH=$old_path ctest -V 2>&1 || true)
if grep -q "node=v22.20.0" <<<"$out"; then pass "ctest ran node v22.20.0"; else fail "ctest: $out"; fi

unset REVTRACE_IGNORE_SYSTEM_TOOLCHAINS
if ((failures)); then
  echo "toolchains: $failures failure(s)" >&2
  exit 1
fi
echo "toolchains: all checks passed"
