#!/usr/bin/env bash
# Fetches Apache Kafka (the broker and its runtime dependencies) from Maven Central with Maven
# into ${REVTRACE_CACHE:-~/.cache/revtrace}/kafka-<version>/libs. Idempotent: when the cache
# matches pom.xml it returns at once. Prints the libs directory.
set -euo pipefail
# shellcheck source=deploy/kafka/common.sh
source "$(dirname "$0")/common.sh"

want=$(sha256sum "$KAFKA_POM_DIR/pom.xml" | cut -d' ' -f1)
if [[ -f "$KAFKA_CACHE/.pom-sha256" && "$(cat "$KAFKA_CACHE/.pom-sha256")" == "$want" ]]; then
  echo "$KAFKA_LIBS"
  exit 0
fi
command -v mvn >/dev/null || die "mvn is not installed (scripts/install-deps.sh --test installs it)"
command -v java >/dev/null || die "java is not installed (scripts/install-deps.sh --test installs it)"
mkdir -p "$KAFKA_CACHE"
exec 9>"$KAFKA_CACHE/.lock"
flock 9
if [[ -f "$KAFKA_CACHE/.pom-sha256" && "$(cat "$KAFKA_CACHE/.pom-sha256")" == "$want" ]]; then
  echo "$KAFKA_LIBS"
  exit 0
fi
echo "kafka: fetching Apache Kafka $KAFKA_VERSION from Maven Central into $KAFKA_LIBS" >&2
rm -rf "$KAFKA_LIBS.tmp"
mvn -q -B -f "$KAFKA_POM_DIR/pom.xml" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$KAFKA_LIBS.tmp" >&2 ||
  die "Maven could not fetch Kafka $KAFKA_VERSION"
ls "$KAFKA_LIBS.tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "the fetched libraries have no broker jar"
rm -rf "$KAFKA_LIBS"
mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
echo "$want" > "$KAFKA_CACHE/.pom-sha256"
echo "$KAFKA_LIBS"
