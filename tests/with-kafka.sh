#!/usr/bin/env bash
# with-kafka.sh BOOTSTRAP_FILE cmd...: runs cmd with REVTRACE_KAFKA_BOOTSTRAP set to the test
# broker started by deploy/kafka/start.sh. Fails loudly when there is no broker.
set -euo pipefail
file=$1; shift
if [[ ! -s "$file" ]]; then
  echo "with-kafka: no Kafka broker ($file missing): deploy/kafka/start.sh failed" >&2
  exit 1
fi
REVTRACE_KAFKA_BOOTSTRAP=$(cat "$file")
export REVTRACE_KAFKA_BOOTSTRAP
exec "$@"
