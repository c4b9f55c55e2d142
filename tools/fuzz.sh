#!/usr/bin/env bash
# Builds Ferry's libFuzzer targets with clang (CMake preset "fuzz": ASan +
# UBSan + libFuzzer) and runs one of them for a time budget, starting from a
# seed corpus the target writes itself. Crashing inputs land in
# build/fuzz/artifacts/; the corpus grows in build/fuzz/corpus/<target>/.
#
#   tools/fuzz.sh [--time SECONDS] [--target NAME] [-- extra libFuzzer flags]
#
# The test suite runs a 30-second smoke run; run an hour on demand with
#   tools/fuzz.sh --time 3600
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
time=60
target=log_recovery_fuzzer
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) time="$2"; shift 2 ;;
    --target) target="$2"; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! command -v clang++ >/dev/null; then
  echo "fuzz.sh: clang++ not found; run tools/setup.sh to install it" >&2
  exit 1
fi
cd "$root"
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "$target" -j "$(nproc)" >/dev/null
bin="$root/build/fuzz/tests/fuzz/$target"
corpus="$root/build/fuzz/corpus/$target"
artifacts="$root/build/fuzz/artifacts/"
mkdir -p "$corpus" "$artifacts"
# The target writes its seeds when asked, then libFuzzer runs.
echo "fuzz.sh: running $target for ${time}s (corpus $corpus)" >&2
FERRY_FUZZ_WRITE_CORPUS="$corpus" "$bin" -max_total_time="$time" -rss_limit_mb=2048 -timeout=10 \
  -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" "${extra[@]}" "$corpus" 2>&1 | tail -25
exit "${PIPESTATUS[0]}"
