#!/usr/bin/env bash
# Ferry's main job, from a fresh Debian 12 machine: installs dependencies,
# builds (release), and runs the end-to-end job with a short report.
#
# Until the broker lands, the main job is the storage demo: order events
# written durably to a partition log with group commit, recovered, read back
# and verified. Arguments are passed to it (try --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
tools/setup.sh
echo "run-main: configuring and building (release)..." >&2
cmake --preset release >/dev/null
cmake --build --preset release --target ferry_storage_demo -j "$(nproc)" >/dev/null
exec "$root/build/release/samples/ferry_storage_demo" "$@"
