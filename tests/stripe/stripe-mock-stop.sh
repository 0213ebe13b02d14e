#!/usr/bin/env bash
# ctest fixture cleanup: stops the stripe-mock started by stripe-mock-start.sh.
set -euo pipefail
[[ ${1:-} == --dir && -n ${2:-} ]] || { echo "usage: $0 --dir DIR" >&2; exit 2; }
if [[ -f $2/pid ]]; then
  kill "$(cat "$2/pid")" 2>/dev/null || true
  rm -f "$2/pid" "$2/base_url"
fi
