#!/usr/bin/env bash
# Fails when a tracked C++ file is not formatted per .clang-format.
# Fix with: git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  echo "check-format: clang-format not found; run tools/setup.sh" >&2
  exit 1
fi
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run --Werror
echo "check-format: all files formatted"
