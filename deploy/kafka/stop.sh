#!/usr/bin/env bash
# Stops the broker started by start.sh --dir DIR: SIGTERM (a clean shutdown), SIGKILL after a
# deadline. Removes DIR unless --keep (a kept DIR restarts on the same port with its data).
# Idempotent when nothing runs.
set -euo pipefail
# shellcheck source=deploy/kafka/common.sh
source "$(dirname "$0")/common.sh"

dir=""
keep=0
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) die "usage: stop.sh --dir DIR [--keep]" ;;
  esac
done
[[ -n "$dir" ]] || die "usage: stop.sh --dir DIR [--keep]"

if [[ -f "$dir/pid" ]]; then
  pid=$(cat "$dir/pid")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${REVTRACE_KAFKA_STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "kafka: broker $pid did not stop in time; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
  fi
  rm -f "$dir/pid" "$dir/bootstrap"
fi
if ((keep == 0)); then
  rm -rf "$dir"
fi
