#!/usr/bin/env bash
# Runs one of Kafka's own command-line tools against a broker started by start.sh, e.g.
#   deploy/kafka/kafka-tool.sh DIR topics --describe
#   deploy/kafka/kafka-tool.sh DIR consumer-groups --describe --all-groups
# (the tool gets --bootstrap-server from DIR/bootstrap). A full class name works too.
set -euo pipefail
# shellcheck source=deploy/kafka/common.sh
source "$(dirname "$0")/common.sh"
[[ $# -ge 2 ]] || die "usage: kafka-tool.sh DIR TOOL [args...]"
dir=$1; tool=$2; shift 2
[[ -s "$dir/bootstrap" ]] || die "no running broker in $dir"
case $tool in
  topics) class=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  transactions) class=org.apache.kafka.tools.TransactionsCommand ;;
  get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
  *) class=$tool ;;
esac
kafka_java "$dir" "$class" --bootstrap-server "$(cat "$dir/bootstrap")" "$@"
