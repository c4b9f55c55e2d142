#!/usr/bin/env bash
# Installs every Debian 12 package Ferry needs to build, test and run,
# skipping what is already installed. Safe to run repeatedly.
#
#   tools/setup.sh            build + test dependencies
#   FERRY_SETUP_QUIET=1 ...   less output
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  curl  # docs: scraping /metrics in docs/observability.md
  libzmq3-dev cppzmq-dev
  libflatbuffers-dev flatbuffers-compiler
  libboost-dev
  libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libtomlplusplus-dev nlohmann-json3-dev libcpp-httplib-dev
  # record batch compression (Kafka's codecs): gzip, snappy, lz4, zstd
  zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev
  # SCRAM-SHA-256 and TLS for the Kafka listener; the openssl command
  # makes the TLS tests' certificates (tests/kafka/make_certs.sh)
  libssl-dev openssl
  # Kafka clients no one here wrote, for the Kafka listener's tests
  kcat librdkafka-dev
  # kafkajs (tests/kafka/kafkajs) runs on Node.js; npm below
  nodejs
  # the .deb (CPack; dpkg-shlibdeps finds the library dependencies), and
  # zsh to check the generated zsh completion
  dpkg-dev file zsh
  # clang + its runtimes: libFuzzer targets and the fuzz smoke run
  clang libclang-rt-14-dev clang-format
)

# npm installs kafkajs from tests/kafka/kafkajs/package-lock.json. Debian's
# npm package depends on Debian's nodejs; a Node.js from elsewhere
# (nodesource's nodejs package, nvm) brings its own npm, which conflicts
# with it - so npm is only asked for when there is none.
if ! command -v npm >/dev/null; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  [ -n "${FERRY_SETUP_QUIET:-}" ] || echo "setup: all ${#packages[@]} packages already installed" >&2
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done" >&2
