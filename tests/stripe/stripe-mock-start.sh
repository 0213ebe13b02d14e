#!/usr/bin/env bash
# ctest fixture: starts stripe-mock on loopback (HTTP and HTTPS on free ports chosen by the
# system), waits until it answers, and writes its HTTP base URL to <dir>/base_url.
#   tests/stripe/stripe-mock-start.sh --dir DIR
set -euo pipefail
[[ ${1:-} == --dir && -n ${2:-} ]] || { echo "usage: $0 --dir DIR" >&2; exit 2; }
dir=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
binary=$("$root/scripts/install-stripe-mock.sh")
mkdir -p "$dir"
if [[ -f $dir/pid ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then kill "$(cat "$dir/pid")" || true; fi
rm -f "$dir/base_url" "$dir/pid"
nohup "$binary" -http-addr 127.0.0.1: -https-addr 127.0.0.1: >"$dir/stripe-mock.log" 2>&1 &
echo $! >"$dir/pid"
for _ in $(seq 1 300); do
  addr=$(sed -n 's/^Listening for HTTP at address: \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$dir/stripe-mock.log" | head -1)
  if [[ -n $addr ]] && curl -s -o /dev/null -H 'Authorization: Bearer sk_test_123' "http://$addr/v1/charges?limit=1"; then
    echo "http://$addr" >"$dir/base_url"
    echo "stripe-mock at http://$addr (pid $(cat "$dir/pid"))"
    exit 0
  fi
  kill -0 "$(cat "$dir/pid")" 2>/dev/null || { cat "$dir/stripe-mock.log" >&2; exit 1; }
  sleep 0.1
done
echo "stripe-mock did not start within 30 s" >&2
cat "$dir/stripe-mock.log" >&2
exit 1
