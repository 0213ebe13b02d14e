#!/usr/bin/env bash
# Installs the npm dependencies of tests/js (ajv, ajv-formats, playwright-core, stripe, a country
# database) exactly as pinned by
# tests/js/package-lock.json, and only when needed, so CI and ctest can call it before every run.
#
#   scripts/install-node-deps.sh
#
# Up to date = node_modules/.lock-hash holds the sha256 of the current package-lock.json (written
# only after `npm ci` succeeded). A content hash rather than mtimes: a fresh clone or checkout
# touches every file, and that alone must not trigger a reinstall. Anything else (no node_modules,
# an interrupted install, a changed lock) runs `npm ci`, which deletes node_modules first.
# Node >= 20 and its npm come from scripts/install-node.sh (the machine's own when new enough, else
# one it installs into ~/.cache/revtrace).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/tests/js"
lock="$dir/package-lock.json"
stamp="$dir/node_modules/.lock-hash"

node_dir=$("$root/scripts/install-node.sh")
[[ "$(command -v node || true)" == "$node_dir/node" ]] || PATH="$node_dir:$PATH"
for tool in node npm sha256sum flock timeout; do
  command -v "$tool" >/dev/null || { echo "install-node-deps: $tool not found (run scripts/install-deps.sh --test)" >&2; exit 1; }
done
[[ -f "$lock" ]] || { echo "install-node-deps: $lock missing" >&2; exit 1; }

want="$(sha256sum "$lock" | cut -d' ' -f1)"
up_to_date() { [[ -f "$stamp" && "$(<"$stamp")" == "$want" ]]; }

if up_to_date; then
  echo "install-node-deps: tests/js/node_modules up to date (lock ${want:0:12})"
  exit 0
fi

# Serialise concurrent callers (parallel ctest jobs): the second one waits, then finds the stamp.
lockfile="${TMPDIR:-/tmp}/revtrace-node-deps-$(printf '%s' "$dir" | sha256sum | cut -c1-16).lock"
exec 9>"$lockfile"
flock -w 600 9 || { echo "install-node-deps: timed out waiting for another install" >&2; exit 1; }
if up_to_date; then
  echo "install-node-deps: installed meanwhile by another caller"
  exit 0
fi

echo "install-node-deps: npm ci in tests/js (lock ${want:0:12})"
# npm retries network errors on its own; the timeout only guarantees the script terminates.
(cd "$dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error)
printf '%s\n' "$want" >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
echo "install-node-deps: done"
