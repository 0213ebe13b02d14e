# Shared by the scripts in deploy/kafka (sourced, not run).
KAFKA_VERSION=4.1.1
KAFKA_POM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KAFKA_CACHE=${REVTRACE_CACHE:-$HOME/.cache/revtrace}/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_CACHE/libs

die() { echo "kafka: $*" >&2; exit 1; }

# A free TCP port on 127.0.0.1 (deploy/kafka/free_port.py: below the ephemeral range).
free_port() { python3 "$KAFKA_POM_DIR/free_port.py"; }

kafka_java() {
  local dir=$1; shift
  # KAFKA_EXEC=1 replaces the calling (background) shell, so that `$!` is the JVM's pid.
  ${KAFKA_EXEC:+exec} java -Xms256m -Xmx512m -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" -Dkafka.logs.dir="$dir" \
    -cp "$KAFKA_LIBS/*" "$@"
}
