#!/usr/bin/env bash
# Installs the Debian packages revtrace needs to build and run. Idempotent: when every package is
# already present it only runs one dpkg query and exits.
#
#   scripts/install-deps.sh            build + run dependencies
#   scripts/install-deps.sh --test     also what the test suite needs (Kafka via Maven, node, ...)
set -euo pipefail

build_pkgs=(
  build-essential cmake ninja-build pkg-config git
  librdkafka-dev librocksdb-dev libsimdjson-dev
  libboost1.81-dev libboost-url1.81-dev
  catch2 libtomlplusplus-dev libspdlog-dev libfmt-dev libcli11-dev libssl-dev libmaxminddb-dev
  zlib1g-dev libzstd-dev liblz4-dev libsnappy-dev libbz2-dev
  curl ca-certificates
)
test_pkgs=(
  chromium fonts-liberation wrk nginx-light golang-go
  maven default-jre-headless kcat nodejs npm python3
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
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
      python3) command -v python3 >/dev/null && continue ;;
      maven) command -v mvn >/dev/null && continue ;;
      golang-go) { command -v go || [[ -x /usr/local/go/bin/go ]]; } >/dev/null && continue ;;
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
# nginx is only a baseline of bench/gateway_bench.sh (run with its own config in a temp dir);
# Debian's package starts the default site on 0.0.0.0:80 where systemd runs: stop and disable it.
if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null \
    && systemctl is-enabled --quiet nginx 2>/dev/null; then
  echo "install-deps: disabling the nginx system service (only the benchmark runs nginx)"
  systemctl disable --now nginx >/dev/null 2>&1 || true
fi
