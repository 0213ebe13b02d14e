#!/usr/bin/env bash
# Installs the Debian packages revtrace needs to build and run. Idempotent: when every package is
# already present it only runs one dpkg query and exits.
#
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --test     also what the test suite needs (Kafka via Maven, Node, Go, ...)
#
# Node.js and Go are not taken from apt: Debian 12 has Node 18 and Go 1.19, older than the test
# tools need (Node >= 20 for playwright-core and stripe@23, Go >= 1.22 for stripe-mock). With
# --test, scripts/install-node.sh and scripts/install-go.sh check the versions the machine has and,
# when they are missing or too old, install pinned ones from PyPI and the Go module proxy into
# ~/.cache/revtrace (seconds when already there).
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  librdkafka-dev librocksdb-dev libsimdjson-dev libjemalloc-dev
  libboost1.81-dev libboost-url1.81-dev
  catch2 libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev libssl-dev libmaxminddb-dev
  zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev libbz2-dev
  curl ca-certificates
)
test_pkgs=(
  chromium fonts-liberation wrk nginx-light
  maven default-jre-headless kcat python3 python3-pip
  clang libclang-rt-14-dev
)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    # Tools that the machine already provides outside dpkg (e.g. a newer node or java) count.
    case "$p" in
      python3) command -v python3 >/dev/null && continue ;;
      python3-pip) python3 -m pip --version >/dev/null 2>&1 && continue ;;
      maven) command -v mvn >/dev/null && continue ;;
      default-jre-headless) command -v java >/dev/null && continue ;;
    esac
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
if [[ "${1:-}" == "--test" ]]; then
  node_dir=$("$(dirname "$0")/install-node.sh")
  go_dir=$("$(dirname "$0")/install-go.sh")
  echo "install-deps: node from $node_dir, go from $go_dir"
fi
# nginx is only a baseline of bench/gateway_bench.sh (run with its own config in a temp dir);
# Debian's package starts the default site on 0.0.0.0:80 where systemd runs: stop and disable it.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null \
    && systemctl is-enabled --quiet nginx 2>/dev/null; then
  echo "install-deps: disabling the nginx system service (only the benchmark runs nginx)"
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
