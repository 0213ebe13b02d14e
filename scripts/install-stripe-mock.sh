#!/usr/bin/env bash
# Installs stripe-mock (github.com/stripe/stripe-mock, Stripe's API mock served from the OpenAPI
# spec) through the Go module proxy into ~/.cache/revtrace/bin. Idempotent and fast when the pinned
# version is already there. Prints the binary's path.
#   scripts/install-stripe-mock.sh
set -euo pipefail
# Pinned: the newest version on proxy.golang.org when this was written (go list -m -versions).
version=v0.203.0
bin_dir=${REVTRACE_CACHE_DIR:-$HOME/.cache/revtrace}/bin
binary=$bin_dir/stripe-mock
stamp=$bin_dir/.stripe-mock-version

if [[ -x $binary && -f $stamp && $(cat "$stamp") == "$version" ]]; then
  echo "$binary"
  exit 0
fi
# A toolchain of the machine's own (/usr/local/go) first: Debian 12's golang-go is older than
# what recent stripe-mock releases need.
if [[ -x /usr/local/go/bin/go ]]; then
  PATH=/usr/local/go/bin:$PATH
elif ! command -v go >/dev/null 2>&1; then
  for candidate in /usr/lib/go/bin/go; do
    if [[ -x $candidate ]]; then PATH=$(dirname "$candidate"):$PATH; break; fi
  done
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-stripe-mock: Go is not installed (scripts/install-deps.sh --test installs it)" >&2
  exit 1
fi
mkdir -p "$bin_dir"
echo "install-stripe-mock: go install github.com/stripe/stripe-mock@$version" >&2
GOBIN=$bin_dir GOFLAGS=-buildvcs=false go install "github.com/stripe/stripe-mock@$version"
echo "$version" >"$stamp"
echo "$binary"
