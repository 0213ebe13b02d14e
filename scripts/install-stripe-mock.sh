#!/usr/bin/env bash
# Installs stripe-mock (github.com/stripe/stripe-mock, Stripe's API mock served from the OpenAPI
# spec) through the Go module proxy into ~/.cache/revtrace/bin. Idempotent and fast when the pinned
# version is already there (no Go needed then). Prints the binary's path.
#   scripts/install-stripe-mock.sh
set -euo pipefail
# Pinned: the newest version on proxy.golang.org when this was written (go list -m -versions).
version=v0.203.0
bin_dir=${REVTRACE_CACHE_DIR:-${REVTRACE_CACHE:-$HOME/.cache/revtrace}}/bin
binary=$bin_dir/stripe-mock
stamp=$bin_dir/.stripe-mock-version

if [[ -x $binary && -f $stamp && $(cat "$stamp") == "$version" ]]; then
  echo "$binary"
  exit 0
fi
# Go >= 1.22 (stripe-mock's go.mod says go 1.22.1): the machine's own when new enough, else one
# from the Go module proxy in the cache (scripts/install-go.sh). GOTOOLCHAIN=local: build with
# exactly that one instead of letting go fetch another.
go_dir=$("$(dirname "$0")/install-go.sh") || exit 1
PATH=$go_dir:$PATH
export GOTOOLCHAIN=local
mkdir -p "$bin_dir"
echo "install-stripe-mock: go install github.com/stripe/stripe-mock@$version" >&2
GOBIN=$bin_dir GOFLAGS=-buildvcs=false go install "github.com/stripe/stripe-mock@$version"
echo "$version" >"$stamp"
echo "$binary"
