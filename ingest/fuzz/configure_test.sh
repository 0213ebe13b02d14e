#!/usr/bin/env bash
# ctest ingest.fuzz.configure: configures ingest/fuzz/CMakeLists.txt in a scratch project where
# clang++ cannot be found (PATH without it, CMake's system paths off), and where a stand-in
# clang++ can, and checks that
#   - REVTRACE_WERROR=ON (CI) or REVTRACE_REQUIRE_FUZZERS=ON make a missing clang++ a
#     configuration error that says what to install;
#   - otherwise configuration goes on without the fuzz targets and says so;
#   - with clang++ present, the clang sub-build gets REVTRACE_WERROR, and in this build tree's
#     own sub-build (already configured when the fuzzers were built) -Werror is on exactly when
#     the parent's REVTRACE_WERROR is.
#   configure_test.sh CMAKE MAKE_PROGRAM FUZZ_SOURCE_DIR FUZZ_SUBBUILD_DIR PARENT_WERROR
set -euo pipefail
cmake=$1
make_program=$2
fuzz_dir=$3
subbuild=$4
parent_werror=$5
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

mkdir -p "$tmp/src" "$tmp/empty-bin" "$tmp/clang-bin"
cat >"$tmp/src/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.25)
project(fuzz_configure_probe LANGUAGES NONE)
enable_testing()
add_subdirectory("$fuzz_dir" fuzz)
EOF
printf '#!/bin/sh\nexit 0\n' >"$tmp/clang-bin/clang++"
chmod +x "$tmp/clang-bin/clang++"

# configure NAME BIN_DIR_ON_PATH ARGS...: prints cmake's output, returns its status.
configure() {
  local name=$1 bin=$2
  shift 2
  PATH=$bin "$cmake" -S "$tmp/src" -B "$tmp/build-$name" -G Ninja -DCMAKE_MAKE_PROGRAM="$make_program" \
    -DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF "$@" 2>&1
}

if out=$(configure werror "$tmp/empty-bin" -DREVTRACE_WERROR=ON); then
  fail "REVTRACE_WERROR=ON without clang++ configured: $out"
elif grep -q "clang++ is required for the ingest fuzz targets" <<<"$out"; then
  pass "REVTRACE_WERROR=ON without clang++: configuration error"
else
  fail "REVTRACE_WERROR=ON without clang++ failed for another reason: $out"
fi

if out=$(configure require "$tmp/empty-bin" -DREVTRACE_WERROR=OFF -DREVTRACE_REQUIRE_FUZZERS=ON); then
  fail "REVTRACE_REQUIRE_FUZZERS=ON without clang++ configured: $out"
elif grep -q "clang++ is required for the ingest fuzz targets" <<<"$out"; then
  pass "REVTRACE_REQUIRE_FUZZERS=ON without clang++: configuration error"
else
  fail "REVTRACE_REQUIRE_FUZZERS=ON without clang++ failed for another reason: $out"
fi

if out=$(configure plain "$tmp/empty-bin" -DREVTRACE_WERROR=OFF); then
  if grep -q "clang++ not found: the ingest fuzz targets are not built" <<<"$out"; then
    pass "a developer build without clang++ configures without the fuzzers, and says so"
  else
    fail "no message about the missing fuzz targets: $out"
  fi
else
  fail "a developer build without clang++ failed: $out"
fi

if out=$(configure clang "$tmp/clang-bin" -DREVTRACE_WERROR=ON); then
  if grep -q -- "-DREVTRACE_WERROR=ON" "$tmp/build-clang/build.ninja"; then
    pass "with clang++, the fuzz sub-build gets REVTRACE_WERROR=ON"
  else
    fail "the fuzz sub-build's configure step lacks -DREVTRACE_WERROR=ON"
  fi
else
  fail "REVTRACE_WERROR=ON with clang++ failed: $out"
fi

# This build tree's own fuzz sub-build.
if [[ -f $subbuild/build.ninja ]]; then
  case $parent_werror in
    ON | on | TRUE | true | 1 | YES | yes) want=1 ;;
    *) want=0 ;;
  esac
  if grep -q -- "-Werror" "$subbuild/build.ninja"; then got=1; else got=0; fi
  if ((got == want)); then
    pass "this tree's fuzz sub-build: -Werror $( ((want)) && echo on || echo off), as REVTRACE_WERROR=$parent_werror"
  else
    fail "this tree's fuzz sub-build: -Werror is $( ((got)) && echo on || echo off) but REVTRACE_WERROR=$parent_werror"
  fi
else
  echo "note: $subbuild not configured yet (the fuzzers are built by 'cmake --build')"
fi

if ((failures)); then
  echo "fuzz configure: $failures failure(s)" >&2
  exit 1
fi
echo "fuzz configure: all checks passed"
