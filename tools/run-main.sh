#!/usr/bin/env bash
# Ferry's main job, from a fresh Debian 12 machine:
#  1. installs the Debian packages Ferry needs (tools/setup.sh);
#  2. builds Ferry (release) and installs it to build/main/install;
#  3. builds the samples against that install with find_package(Ferry), as a
#     user's project would (samples/CMakeLists.txt);
#  4. runs order_demo: a local ferryd on build/main/demo, the order producer
#     and the payment, inventory and shipping workers, with progress and a
#     report at the end. Nothing is left running; the data stays for a look.
# Arguments go to order_demo (--orders N, --json, --timeout-s S).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
step() { echo "run-main: $*" >&2; }
log=build/main/build.log
mkdir -p build/main
: >"$log"
quiet() { "$@" >>"$log" 2>&1 || { echo "run-main: failed: $* (output in $log):" >&2; tail -n 30 "$log" >&2; exit 1; }; }
step "building Ferry (release) and installing it to build/main/install..."
quiet cmake --preset main
quiet cmake --build --preset main -j "$(nproc)"
quiet cmake --install build/main
step "building the samples against the installed Ferry (find_package)..."
quiet cmake -S samples -B build/main/samples -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$root/build/main/install"
quiet cmake --build build/main/samples -j "$(nproc)"
step "running the order pipeline (samples/order_demo)..."
exec build/main/samples/order_demo --data-dir "$root/build/main/demo" --clean "$@"
