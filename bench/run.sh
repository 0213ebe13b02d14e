#!/usr/bin/env bash
# The benchmark command: revtrace against a real local Kafka broker, and the performance bar.
#
#   bench/run.sh [--smoke] [--visitors N] [--events N] [--build-dir DIR] [--out DIR]
#
#   --visitors N   visitors of the replay / state-cost data set (full: 1,000,000)
#   --events N     records of the rebuild data set (full: 10,000,000; the visitors' records are
#                  its first part, more visitors are appended up to N)
#   --smoke        a small run (minutes) that checks every part works; figures are not the bar's
#   --build-dir    where revtrace and revtrace_bench are built (default: build-bench, then build)
#   --out          where the report goes (default: bench-results/<date>); report.txt + report.json
#   --profile      record the processor's replay with `perf record -g` into <out>/perf.data
#                  (BENCH_PERF_ARGS replaces "-F 499 -g", e.g. "-F 199 --call-graph dwarf")
#   --only replay  run only figure 1 (load, raw consumer, processor replay) and print its figures
#   --only e2e     run only figure 3 on the --visitors state (load, a processor processes it and
#                  stops, then a fresh one measures end to end); writes e2e.json, e2e-latencies.csv
#   --runs N       with --only replay: replay the same topics N times (fresh state and consumer
#                  group each run) and report every run and the median
#
# Starts a broker (deploy/kafka/start.sh) in a temporary directory and stops it on exit. Every
# server listens on 127.0.0.1; every load is bounded in count and time. See PERFORMANCE.md.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
smoke=0
profile=0
only=""
runs=1
visitors=""
events=""
build=""
out=""
while (($#)); do
  case $1 in
    --smoke) smoke=1; shift ;;
    --visitors) visitors=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --profile) profile=1; shift ;;
    --only) only=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case $only in
  ''|replay|e2e) ;;
  *) echo "bench: --only takes replay or e2e (got $only)" >&2; exit 2 ;;
esac
((runs >= 1)) || { echo "bench: --runs must be at least 1" >&2; exit 2; }
[[ -n "$only" || $runs -eq 1 ]] || { echo "bench: --runs needs --only replay" >&2; exit 2; }
if ((smoke)); then
  visitors=${visitors:-3000}; events=${events:-30000}; webhooks=40; webhook_rate=20
else
  visitors=${visitors:-1000000}; events=${events:-10000000}; webhooks=400; webhook_rate=20
fi
if [[ -z "$build" ]]; then
  for b in "$root/build-bench" "$root/build"; do [[ -x "$b/app/revtrace" ]] && { build=$b; break; }; done
fi
revtrace="$build/app/revtrace"
tool="$build/bench/revtrace_bench"
[[ -x "$revtrace" && -x "$tool" ]] || {
  echo "bench: build first: cmake --build <dir> --target revtrace revtrace_bench (then --build-dir <dir>)" >&2
  exit 2
}
out=${out:-$root/bench-results/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/revtrace-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$root/deploy/kafka/stop.sh" --dir "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
trap "exit 143" INT TERM
log() { echo "bench: $*" >&2; }

free_port() { python3 "$root/deploy/kafka/free_port.py"; }
json_get() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# Waits for a process to exit within a deadline (seconds); kills it after.
wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    ((SECONDS < deadline)) || { kill -9 "$pid" 2>/dev/null || true; break; }
    sleep 0.2
  done
  wait "$pid" 2>/dev/null || true
}

# --- machine -------------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
mem_kb=$(grep MemTotal /proc/meminfo | awk '{print $2}')
machine=$(python3 -c 'import json,sys; print(json.dumps({"nproc":int(sys.argv[1]),"memory_bytes":int(sys.argv[2])*1024,"cpu":sys.argv[3],"kernel":sys.argv[4],"revision":sys.argv[5]}))' \
  "$(nproc)" "$mem_kb" "$cpu" "$(uname -r)" "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)")
log "machine: $machine"

# --- broker and topics ---------------------------------------------------------------------------
log "starting Kafka in $work/kafka"
"$root/deploy/kafka/start.sh" --dir "$work/kafka" >"$work/kafka-start.log" 2>&1 || {
  cat "$work/kafka-start.log" >&2; exit 1; }
bootstrap=$(cat "$work/kafka/bootstrap")
prefix="bench."
secret="whsec_bench_$(date +%s)"
metrics_port=$(free_port)
gateway_port=$(free_port)
cat > "$work/revtrace.toml" <<TOML
log_level = "${BENCH_LOG_LEVEL:-warn}"
[kafka]
bootstrap = "$bootstrap"
partitions = 6
topic_prefix = "$prefix"
[gateway]
listen = "127.0.0.1:$gateway_port"
[processor]
data_dir = "$work/state"
group_id = "revtrace-bench"
instance_id = "bench"
metrics_listen = "127.0.0.1:$metrics_port"
[query]
data_dir = "$work/query"
[[sites]]
id = "bench-e2e"
webhook_secrets = ["$secret"]
allowed_origins = ["*"]
TOML
export REVTRACE_CONFIG="$work/revtrace.toml"
"$revtrace" topics create >"$work/topics.log" 2>&1 || { cat "$work/topics.log" >&2; exit 1; }

# --- 1 + 4: replay throughput vs raw consumption; state cost ------------------------------------
log "loading $visitors visitors"
load_a=$("$tool" load --bootstrap "$bootstrap" --prefix "$prefix" --visitors "$visitors")
records_a=$(json_get "$load_a" records)
log "loaded: $load_a"

if [[ $only != e2e ]]; then
log "raw consumption (bare read_committed librdkafka consumer)"
raw_a=$("$tool" consume --bootstrap "$bootstrap" --prefix "$prefix")
log "raw: $raw_a"
fi

# Figure 1 only (--only replay): the processor over the same topics `runs` times, each run with
# fresh state and its own consumer group, so every run replays everything; then the median.
if [[ $only == replay ]]; then
  results=()
  for run in $(seq 1 "$runs"); do
    log "run $run/$runs: revtrace processor until it processed all $records_a records"
    "$revtrace" processor --set "processor.data_dir=$work/state-$run" \
      --set "processor.group_id=revtrace-bench-$run" >"$work/processor-a-$run.log" 2>&1 &
    ppid=$!; pids+=("$ppid")
    if ((profile && run == 1)); then
      perf record ${BENCH_PERF_ARGS:--F 499 -g} -p "$ppid" -o "$out/perf.data" >"$work/perf.log" 2>&1 &
      perfpid=$!
    fi
    result=$("$tool" wait --metrics-port "$metrics_port" --records "$records_a" --pid "$ppid" --timeout 3600)
    if ((profile && run == 1)); then kill -INT "$perfpid"; wait "$perfpid" || true; log "profile: perf report -i $out/perf.data"; fi
    kill -TERM "$ppid"; wait_exit "$ppid" 60
    log "run $run: $result"
    results+=("$result")
    rm -rf "$work/state-$run"
  done
  cp "$work"/processor-a-*.log "$out/" 2>/dev/null || true
  python3 - "$out" "$machine" "$load_a" "$raw_a" "${results[@]}" <<'PY'
import json, statistics, sys
out, machine, load, raw, *runs = sys.argv[1:]
raw, runs = json.loads(raw), [json.loads(r) for r in runs]
rate = statistics.median(r["records_per_s"] for r in runs)
report = {"machine": json.loads(machine), "workload": json.loads(load), "raw_consumer": raw,
          "processor_runs": runs, "processor_records_per_s_median": rate,
          "ratio": rate / raw["records_per_s"] if raw.get("records_per_s") else None}
with open(out + "/replay.json", "w") as f:
    json.dump(report, f, indent=2)
print("replay: processor %s records/s per run, median %.0f (steady median %.0f); raw consumer %.0f "
      "records/s; ratio %.3f" % (", ".join("%.0f" % r["records_per_s"] for r in runs), rate,
      statistics.median(r["steady_records_per_s"] for r in runs), raw["records_per_s"],
      report["ratio"] or 0))
PY
  log "written to $out/replay.json"
  exit 0
fi

if [[ $only == e2e ]]; then
  # As in the full run, the end-to-end processor is a fresh process resuming from state on disk.
  log "revtrace processor over the state set ($records_a records), then stopped"
  "$revtrace" processor >"$work/processor-a.log" 2>&1 &
  ppid=$!; pids+=("$ppid")
  "$tool" wait --metrics-port "$metrics_port" --records "$records_a" --pid "$ppid" --timeout 3600 >/dev/null
  kill -TERM "$ppid"; wait_exit "$ppid" 60
else
log "revtrace processor over the same topics until it processed all $records_a records"
"$revtrace" processor >"$work/processor-a.log" 2>&1 &
ppid=$!; pids+=("$ppid")
if ((profile)); then
  perf record ${BENCH_PERF_ARGS:--F 499 -g} -p "$ppid" -o "$out/perf.data" >"$work/perf.log" 2>&1 &
  perfpid=$!
fi
proc_a=$("$tool" wait --metrics-port "$metrics_port" --records "$records_a" --pid "$ppid" --timeout 3600)
log "processor: $proc_a"
if ((profile)); then kill -INT "$perfpid"; wait "$perfpid" || true; log "profile: perf report -i $out/perf.data"; fi
kill -TERM "$ppid"; wait_exit "$ppid" 60
"$tool" compact --dir "$work/state" >"$work/compact-a.json"
state_bytes_a=$(du -sb "$work/state" | cut -f1)
log "state after compaction: $state_bytes_a bytes"

# --- 5: rebuild time (revtrace replay over the whole data set) ----------------------------------
more=$((events - records_a))
if ((more > 0)); then
  log "appending visitors up to $events records"
  load_b=$("$tool" load --bootstrap "$bootstrap" --prefix "$prefix" --seed 43 \
            --first-visitor "$(json_get "$load_a" next_visitor)" --visitors $((more)) --max-records "$more")
  log "loaded: $load_b"
else
  load_b='{"records":0}'
fi
records_b=$((records_a + $(json_get "$load_b" records)))
log "raw consumption of all $records_b records"
raw_b=$("$tool" consume --bootstrap "$bootstrap" --prefix "$prefix")
log "raw: $raw_b"
log "revtrace replay of $records_b records"
"$revtrace" replay >"$work/replay.log" 2>&1 &
rpid=$!; pids+=("$rpid")
replay_wait=$("$tool" wait --metrics-port "$metrics_port" --records "$records_b" --pid "$rpid" --timeout 3600)
wait_exit "$rpid" 120
replay_done=$(grep 'replay: done' "$work/replay.log" || true)
log "replay: $replay_done / $replay_wait"
fi

# --- 3: end-to-end latency under a steady 2,000 pageviews/s --------------------------------------
log "end-to-end: gateway + processor, $webhooks webhooks at $webhook_rate/s under 2000 pageviews/s"
# A live processor commits a transaction every processor.transaction_interval_ms: the latency
# floor. 20 ms (default 100) keeps 50 transactions/s at this load, far inside what it can commit.
e2e_interval=${BENCH_E2E_TRANSACTION_INTERVAL_MS:-20}
"$revtrace" processor --set "processor.transaction_interval_ms=$e2e_interval" >"$work/processor-e2e.log" 2>&1 &
ppid=$!; pids+=("$ppid")
"$revtrace" gateway >"$work/gateway-e2e.log" 2>&1 &
gpid=$!; pids+=("$gpid")
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$metrics_port/healthz" >/dev/null 2>&1 &&
    curl -s -o /dev/null "http://127.0.0.1:$gateway_port/revtrace.js" 2>/dev/null && break
  sleep 0.2
done
# The processor is live once its lag is 0 (it resumes from the replay's state and offsets; with
# --only e2e it first processes the loaded state set).
"$tool" wait --metrics-port "$metrics_port" --records 0 --lag-zero --timeout 1800 >/dev/null
e2e='{}'
e2e=$("$tool" e2e --bootstrap "$bootstrap" --prefix "$prefix" --gateway-port "$gateway_port" \
        --site bench-e2e --secret "$secret" --rate 2000 --webhooks "$webhooks" \
        --webhook-rate "$webhook_rate" --latencies "$out/e2e-latencies.csv" || true)
log "e2e: $e2e"
e2e=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1] or "{}"); d["transaction_interval_ms"]=int(sys.argv[2]); print(json.dumps(d))' "$e2e" "$e2e_interval")
kill -TERM "$gpid" "$ppid" 2>/dev/null || true
wait_exit "$gpid" 30; wait_exit "$ppid" 60
if [[ $only == e2e ]]; then
  cp "$work/processor-e2e.log" "$work/gateway-e2e.log" "$out/" 2>/dev/null || true
  echo "$e2e" >"$out/e2e.json"
  echo "e2e: $e2e"
  log "written to $out/e2e.json and $out/e2e-latencies.csv"
  exit 0
fi

# --- 2: gateway vs nginx (bench/gateway_bench.sh, written with the gateway) ----------------------
gateway='{"measured":false,"reason":"bench/gateway_bench.sh not present"}'
if [[ -x "$here/gateway_bench.sh" || -f "$here/gateway_bench.sh" ]]; then
  log "gateway vs nginx: bench/gateway_bench.sh"
  # It runs its own broker: stop this one first, so the two runs do not share the two cores.
  "$root/deploy/kafka/stop.sh" --dir "$work/kafka" >/dev/null 2>&1 || true
  gw_args=(--build-dir "$build" --json "$work/gateway.json")
  ((smoke)) && gw_args+=(--duration 3 --connections 16)
  if bash "$here/gateway_bench.sh" "${gw_args[@]}" >"$work/gateway.log" 2>&1 && [[ -s "$work/gateway.json" ]]; then
    gateway=$(tail -n 1 "$work/gateway.json")
  else
    gateway='{"measured":false,"reason":"bench/gateway_bench.sh failed (see gateway.log)"}'
    cp "$work/gateway.log" "$out/gateway.log" 2>/dev/null || true
  fi
fi

# --- report --------------------------------------------------------------------------------------
cp "$work"/processor-*.log "$work/replay.log" "$work/gateway-e2e.log" "$out/" 2>/dev/null || true
python3 "$here/report.py" --out "$out" --smoke "$smoke" \
  --machine "$machine" --load-a "$load_a" --raw-a "$raw_a" --proc-a "$proc_a" \
  --compact-a "$(cat "$work/compact-a.json")" --state-bytes-a "$state_bytes_a" \
  --load-b "$load_b" --raw-b "$raw_b" --replay-wait "$replay_wait" --replay-done "$replay_done" \
  --e2e "$e2e" --gateway "$gateway"
log "report written to $out/report.txt and $out/report.json"
