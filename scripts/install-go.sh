#!/usr/bin/env bash
# Finds or installs a Go toolchain >= 1.22 and prints the directory that holds `go`. Building
# stripe-mock v0.203.0 needs it (its go.mod says go 1.22.1); Debian 12's golang-go is 1.19.
#
#   scripts/install-go.sh          the go on PATH or /usr/local/go when new enough, else the cached
#                                  one, else installs it into the cache
#   scripts/install-go.sh --find   the same without installing: exit 1 when there is none
#
# Installed from the Go module proxy, which is reachable where go.dev may not be: the module
# golang.org/toolchain@v0.0.1-go<version>.linux-<arch> is the very zip `go` itself downloads for
# GOTOOLCHAIN switches. It is checked against its h1: hash from the Go checksum database (pinned
# below, as in a go.sum) and unpacked into ${REVTRACE_CACHE:-~/.cache/revtrace}/go-<version>.
# GOPROXY's first URL is used when set. REVTRACE_IGNORE_SYSTEM_TOOLCHAINS=1 ignores the machine's go.
set -euo pipefail
TOOLCHAIN_NAME=install-go
# shellcheck source=scripts/toolchain-common.sh
source "$(dirname "${BASH_SOURCE[0]}")/toolchain-common.sh"

min_version=1.22
version=1.22.12
# sum.golang.org's lines for golang.org/toolchain v0.0.1-go1.22.12.linux-{amd64,arm64}.
declare -A module_h1=(
  [amd64]=h1:Hdh4VJAlDWzMnhKpqDwqJJr+sE7NgsJ86dyR4wrv2oY=
  [arm64]=h1:d5pIIWRmHJcXHnW+PRQ5RyowiqOcFC/80DB4FGToaPU=
)
home=$TOOLCHAIN_CACHE/go-$version

find_only=0
case ${1:-} in
  --find) find_only=1 ;;
  "") ;;
  *) toolchain_die "usage: install-go.sh [--find]" ;;
esac

# A go binary's own version, e.g. 1.22.12 (GOTOOLCHAIN=local: the binary asked, not one it would
# switch to).
go_version() {
  GOTOOLCHAIN=local "$1" version 2>/dev/null | sed -n 's/^go version go\([0-9][0-9.]*\)[^ ]* .*/\1/p'
}
usable() { [[ -x $1/go ]] && version_at_least "$min_version" "$(go_version "$1/go")"; }

if system_toolchains_allowed; then
  candidates=()
  if command -v go >/dev/null 2>&1; then candidates+=("$(dirname "$(command -v go)")"); fi
  candidates+=(/usr/local/go/bin)
  for dir in "${candidates[@]}"; do
    if usable "$dir"; then
      echo "$dir"
      exit 0
    fi
    if [[ -x $dir/go ]]; then
      toolchain_note "ignoring $dir/go ($(go_version "$dir/go" || true); need >= $min_version)"
    fi
  done
fi
if [[ -f $home/.complete ]] && usable "$home/bin"; then
  echo "$home/bin"
  exit 0
fi
((find_only == 0)) || exit 1

arch=$(toolchain_arch)
[[ -n $arch ]] || toolchain_die "no Go toolchain pinned for $(uname -m)"
command -v curl >/dev/null || toolchain_die "curl is not installed (scripts/install-deps.sh installs it)"
toolchain_lock go
if [[ -f $home/.complete ]] && usable "$home/bin"; then  # installed meanwhile by another caller
  echo "$home/bin"
  exit 0
fi
proxy=https://proxy.golang.org
first=${GOPROXY:-}
first=${first%%[,|]*}
[[ $first == http://* || $first == https://* ]] && proxy=${first%/}
module=golang.org/toolchain
module_version=v0.0.1-go$version.linux-$arch
url=$proxy/$module/@v/$module_version.zip
toolchain_note "installing Go $version from $url into $home"
work=$(mktemp -d "$TOOLCHAIN_CACHE/.go-XXXXXX")
trap 'rm -rf "$work"' EXIT
curl -fsSL --retry 3 --connect-timeout 20 --max-time 900 -o "$work/toolchain.zip" "$url" ||
  toolchain_die "could not download $url"
got=$(python3 "$TOOLCHAIN_SCRIPTS/toolchain_archive.py" gosum "$work/toolchain.zip")
[[ $got == "${module_h1[$arch]}" ]] ||
  toolchain_die "$module@$module_version has hash $got, the checksum database says ${module_h1[$arch]}"
python3 "$TOOLCHAIN_SCRIPTS/toolchain_archive.py" unpack "$work/toolchain.zip" \
  "$module@$module_version/" "$work/go"
# Module zips keep no file modes: the toolchain's programs become executable here (as `go` does
# when it switches toolchains).
chmod +x "$work"/go/bin/* "$work"/go/pkg/tool/*/*
usable "$work/go/bin" || toolchain_die "the unpacked go does not run or is not >= $min_version"
touch "$work/go/.complete"
rm -rf "$home"
mv "$work/go" "$home"
toolchain_note "$(GOTOOLCHAIN=local "$home/bin/go" version) in $home/bin"
echo "$home/bin"
