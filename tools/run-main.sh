#!/usr/bin/env bash
# Ferry's main job, from a fresh Debian 12 machine: installs dependencies,
# builds (release), and runs the end-to-end job with a short report:
# a local ferryd plus the order-processing pipeline, with a kill -9 of the
# broker half-way (samples/order_pipeline.cc). Arguments are passed to it
# (--orders N, --partitions P, --no-crash, ...).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run-main: configuring and building (release)..." >&2
cmake --preset release >/dev/null
cmake --build --preset release --target ferryd ferry ferry_order_pipeline -j "$(nproc)" >/dev/null
exec "$root/build/release/samples/ferry_order_pipeline" "$@"
