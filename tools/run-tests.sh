#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs
# dependencies, builds with address + undefined sanitizers (preset "debug"),
# and runs every ctest test except those labelled "slow".
#
#   tools/run-tests.sh                 # everything but slow
#   tools/run-tests.sh -L unit         # extra arguments go to ctest
#   FERRY_TEST_SLOW=1 tools/run-tests.sh   # include slow tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run-tests: configuring and building (debug, ASan+UBSan)..." >&2
cmake --preset debug >/dev/null
cmake --build --preset debug -j "$(nproc)"
exclude=(--label-exclude slow)
[ -n "${FERRY_TEST_SLOW:-}" ] && exclude=()
export FERRY_LOG_LEVEL="${FERRY_LOG_LEVEL:-warn}"
ctest --preset debug -j "$(nproc)" "${exclude[@]}" "$@"
