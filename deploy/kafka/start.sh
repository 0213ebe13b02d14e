#!/usr/bin/env bash
# Starts a single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on loopback.
#
#   deploy/kafka/start.sh --dir DIR [--port P]
#
# A new DIR is formatted with a random cluster id and a free port (or P). A DIR that already holds
# a broker (one stopped with `stop.sh --keep`) is started again on the same port with its data.
# Waits until the broker answers the Kafka protocol, writes DIR/bootstrap and DIR/pid, prints the
# bootstrap address. On failure it prints the broker log and exits non-zero: never silently.
set -euo pipefail
# shellcheck source=deploy/kafka/common.sh
source "$(dirname "$0")/common.sh"

dir=""
port=""
while (($#)); do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    *) die "usage: start.sh --dir DIR [--port P]" ;;
  esac
done
[[ -n "$dir" ]] || die "usage: start.sh --dir DIR [--port P]"
command -v kcat >/dev/null || die "kcat is not installed (scripts/install-deps.sh --test installs it)"
"$(dirname "$0")/fetch.sh" >/dev/null
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
  die "a broker is already running from $dir (pid $(cat "$dir/pid"))"
fi

if [[ ! -f "$dir/data/meta.properties" ]]; then
  port=${port:-$(free_port)}
  controller_port=$(free_port)
  cat > "$dir/server.properties" <<PROPS
# Single-node KRaft broker for revtrace tests and local runs: loopback only, throwaway data.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=6
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.segment.bytes=67108864
log.flush.interval.messages=9223372036854775807
num.network.threads=2
num.io.threads=4
PROPS
  cat > "$dir/log4j2.properties" <<'PROPS'
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
PROPS
  # A random KRaft cluster id (base64url of 16 random bytes); "--cluster-id=" keeps an id that
  # starts with "-" from being read as an option.
  cluster_id=$(python3 -c 'import uuid,base64; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
  kafka_java "$dir" kafka.tools.StorageTool format --cluster-id="$cluster_id" --config="$dir/server.properties" \
    > "$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; die "formatting storage in $dir failed"; }
else
  port=$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\)$/\1/p' "$dir/server.properties")
  [[ -n "$port" ]] || die "$dir/server.properties has no advertised listener"
fi

bootstrap=127.0.0.1:$port
rm -f "$dir/bootstrap"
KAFKA_EXEC=1 kafka_java "$dir" kafka.Kafka "$dir/server.properties" > "$dir/stdout.log" 2>&1 &
pid=$!
echo "$pid" > "$dir/pid"

deadline=$((SECONDS + ${REVTRACE_KAFKA_START_TIMEOUT:-90}))
until kcat -b "$bootstrap" -L -t revtrace-probe -m 2 2>/dev/null | grep -q "broker 1 at"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 40 "$dir/stdout.log" "$dir/server.log" >&2 2>/dev/null || true
    die "the broker exited during start-up (logs above, in $dir)"
  fi
  if ((SECONDS >= deadline)); then
    tail -n 40 "$dir/stdout.log" "$dir/server.log" >&2 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    die "the broker did not answer on $bootstrap within ${REVTRACE_KAFKA_START_TIMEOUT:-90} s"
  fi
  sleep 0.2
done
echo "$bootstrap" > "$dir/bootstrap"
echo "$bootstrap"
