#!/usr/bin/env bash
# Gateway throughput against nginx, on loopback, in one run (a benchmark, not a test).
#
#   bench/gateway_bench.sh [--build-dir DIR] [--duration S] [--connections N] [--wrk-threads N]
#                          [--json FILE] [--perf FILE]
#
# Starts a real Kafka broker (deploy/kafka/start.sh in a temp dir), creates revtrace's topics,
# starts `revtrace gateway` and nginx (its own minimal config: `return 204;`), then drives each
# with wrk (keep-alive, POST /v1/events with a typical pageview). Prints both request rates, their
# ratio and the gateway's p99 latency, and one JSON line (also appended to --json FILE).
# --perf FILE records a perf profile (perf record -g) of the gateway during its run.
# The bar (issue 3): the gateway serves at least half of nginx's rate.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$root/build
duration=15
connections=64
wrk_threads=2
json_file=""
perf_file=""
while (($#)); do
  case $1 in
    --build-dir) build_dir=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --wrk-threads) wrk_threads=$2; shift 2 ;;
    --json) json_file=$2; shift 2 ;;
    --perf) perf_file=$2; shift 2 ;;
    *) echo "usage: $0 [--build-dir DIR] [--duration S] [--connections N] [--wrk-threads N] [--json FILE]" >&2; exit 2 ;;
  esac
done
bin=$build_dir/app/revtrace
[[ -x "$bin" ]] || { echo "gateway_bench: no $bin (build first)" >&2; exit 1; }
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || [[ -x /usr/sbin/$tool ]] ||
    { echo "gateway_bench: $tool is missing (scripts/install-deps.sh --test)" >&2; exit 1; }
done
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

free_port() { python3 "$root/deploy/kafka/free_port.py"; }

tmp=$(mktemp -d /tmp/revtrace-gateway-bench.XXXXXX)
gateway_pid=""
nginx_pid=""
cleanup() {
  [[ -n "$gateway_pid" ]] && kill -TERM "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null || true
  [[ -n "$nginx_pid" ]] && kill -TERM "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null || true
  "$root/deploy/kafka/stop.sh" --dir "$tmp/kafka" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

echo "gateway_bench: starting Kafka in $tmp/kafka" >&2
bootstrap=$("$root/deploy/kafka/start.sh" --dir "$tmp/kafka" | tail -n 1)

gw_port=$(free_port)
cat > "$tmp/revtrace.toml" <<TOML
log_level = "warn"
[kafka]
bootstrap = "$bootstrap"
partitions = 6
topic_prefix = "bench-$$."
[gateway]
listen = "127.0.0.1:$gw_port"
threads = 0
[[sites]]
id = "bench"
allowed_origins = ["*"]
TOML
"$bin" topics create --config "$tmp/revtrace.toml" >"$tmp/topics.log" 2>&1
"$bin" gateway --config "$tmp/revtrace.toml" >"$tmp/gateway.log" 2>&1 &
gateway_pid=$!

nginx_port=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat > "$tmp/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { return 204; }
  }
}
CONF
"$nginx_bin" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" &
nginx_pid=$!

for url in "http://127.0.0.1:$gw_port/readyz" "http://127.0.0.1:$nginx_port/"; do
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "$url" || { echo "gateway_bench: $url does not answer" >&2; cat "$tmp/gateway.log" >&2; exit 1; }
done

# A typical pageview as the pixel sends it (about 400 bytes).
cat > "$tmp/pageview.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
wrk.headers["Origin"] = "https://shop.example"
wrk.body = '{"type":"pageview","site_id":"bench","visitor_id":"0b7f2c9e-4a51-4c1e-9a3d-6f1e2b8c7d40","session_id":"s-8d1e6a","url":"https://shop.example/products/widget?utm_source=newsletter&utm_medium=email&utm_campaign=spring","referrer":"https://www.google.com/","title":"Widget - Shop","screen":"1440x900","language":"en-US","timezone":"Europe/Berlin","occurred_at":1733100000000}'
LUA

run_wrk() {  # url -> "rate p99_ms non2xx"
  local out
  out=$(wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" --latency -s "$tmp/pageview.lua" "$1")
  echo "$out" >&2
  local rate p99 non2xx
  rate=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v=v*1000} print v}' <<<"$out")
  non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
  echo "$rate $p99 ${non2xx:-0}"
}

echo "gateway_bench: nginx (return 204), $connections connections, ${duration}s" >&2
read -r nginx_rate nginx_p99 _ < <(run_wrk "http://127.0.0.1:$nginx_port/v1/events")
echo "gateway_bench: revtrace gateway (POST /v1/events -> Kafka), $connections connections, ${duration}s" >&2
perf_pid=""
if [[ -n "$perf_file" ]]; then
  perf record -g -p "$gateway_pid" -o "$perf_file" -- sleep "$duration" >/dev/null 2>&1 &
  perf_pid=$!
fi
read -r gw_rate gw_p99 gw_non2xx < <(run_wrk "http://127.0.0.1:$gw_port/v1/events")
[[ -n "$perf_pid" ]] && wait "$perf_pid" || true

accepted=$(curl -fsS "http://127.0.0.1:$gw_port/metrics" | awk '$1 == "revtrace_gateway_events_accepted_total" {print $2}')
ratio=$(awk -v a="$gw_rate" -v b="$nginx_rate" 'BEGIN {printf "%.2f", a / b}')
verdict=$(awk -v r="$ratio" 'BEGIN {print (r >= 0.5) ? "meets" : "BELOW"}')
printf 'nginx:   %10.0f requests/s (p99 %s ms)\n' "$nginx_rate" "$nginx_p99"
printf 'gateway: %10.0f requests/s (p99 %s ms), %s non-2xx, %s events accepted\n' "$gw_rate" "$gw_p99" "$gw_non2xx" "${accepted:-?}"
printf 'ratio:   %s (bar 0.5: %s)\n' "$ratio" "$verdict"
line=$(printf '{"bench":"gateway","date":"%s","cores":%s,"connections":%s,"duration_s":%s,"nginx_rps":%s,"gateway_rps":%s,"ratio":%s,"gateway_p99_ms":%s,"nginx_p99_ms":%s,"gateway_non2xx":%s}' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$connections" "$duration" "$nginx_rate" "$gw_rate" "$ratio" "$gw_p99" "$nginx_p99" "$gw_non2xx")
echo "$line"
[[ -n "$json_file" ]] && echo "$line" >> "$json_file"
exit 0
