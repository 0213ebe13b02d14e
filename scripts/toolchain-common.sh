# Shared by scripts/install-node.sh and scripts/install-go.sh (sourced, not run).
#
# Toolchains the machine does not provide in a recent enough version go into
# ${REVTRACE_CACHE:-~/.cache/revtrace} (the cache of deploy/kafka as well), never into the
# repository or the system. REVTRACE_IGNORE_SYSTEM_TOOLCHAINS=1 makes the scripts treat every
# node/go of the machine as too old: the fallback can be tested where the machine has new ones.
TOOLCHAIN_CACHE=${REVTRACE_CACHE:-$HOME/.cache/revtrace}
TOOLCHAIN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

toolchain_die() { echo "$TOOLCHAIN_NAME: $*" >&2; exit 1; }
toolchain_note() { echo "$TOOLCHAIN_NAME: $*" >&2; }

# version_at_least WANT HAVE: HAVE (e.g. 1.22.12) is WANT (e.g. 1.22) or newer.
version_at_least() {
  [[ -n $2 && "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" == "$1" ]]
}

system_toolchains_allowed() { [[ ${REVTRACE_IGNORE_SYSTEM_TOOLCHAINS:-0} != 1 ]]; }

# The machine's architecture in the Go spelling (amd64, arm64); empty when unsupported.
toolchain_arch() {
  case $(uname -m) in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo "" ;;
  esac
}

# Serialises installers of one toolchain (parallel ctest jobs, two shells): fd 8 holds the lock.
toolchain_lock() {
  mkdir -p "$TOOLCHAIN_CACHE"
  exec 8>"$TOOLCHAIN_CACHE/.$1.lock"
  flock -w 900 8 || toolchain_die "timed out waiting for another install of $1"
}
