#!/usr/bin/env bash
# Proves the thread ownership written in the code: compiles every library
# source (framework/, runtime/) with clang's thread-safety analysis
# (-Wthread-safety, core/thread_annotations.h) and fails on any finding.
# Uses the compile commands of a configured build (the debug preset by
# default), so it sees exactly the flags and generated headers the build
# uses. Run by ctest as lint.thread_safety; by hand:
#
#   tools/check-thread-safety.sh [build/debug]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build/debug}
db=$build/compile_commands.json
if [ ! -f "$db" ]; then
  echo "check-thread-safety: $db not found; configure a build first (cmake --preset debug)" >&2
  exit 1
fi
if ! command -v clang++ >/dev/null; then
  echo "check-thread-safety: clang++ not found; run tools/setup.sh" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One shell command per library source: the build's command with clang++,
# no object output, gcc-only warnings dropped, and the analysis as errors.
# compile_commands.json from CMake holds one "directory" and one "command"
# line per entry; JSON-escaped backslashes and quotes are undone.
awk -v root="$root" '
  /^  "directory": / { dir = $0; sub(/^  "directory": "/, "", dir); sub(/",$/, "", dir) }
  /^  "command": / {
    cmd = $0; sub(/^  "command": "/, "", cmd); sub(/",$/, "", cmd)
    gsub(/\\\\/, "\001", cmd); gsub(/\\"/, "\"", cmd); gsub(/\001/, "\\", cmd)
    n = split(cmd, a, " "); file = a[n]
    if (index(file, root "/framework/") != 1 && index(file, root "/runtime/") != 1) next
    sub(/^[^ ]+/, "clang++", cmd)
    gsub(/ -o [^ ]+/, "", cmd)
    gsub(/ -W(duplicated-cond|logical-op|no-maybe-uninitialized)/, "", cmd)
    gsub(/ -Werror /, " ", cmd)
    print "cd " dir " && " cmd " -fsyntax-only -Wno-unknown-warning-option -Wthread-safety -Werror=thread-safety"
  }' "$db" > "$work/commands"

count=$(wc -l < "$work/commands")
if [ "$count" -eq 0 ]; then
  echo "check-thread-safety: no library sources in $db" >&2
  exit 1
fi
echo "check-thread-safety: $count sources" >&2
i=0
while IFS= read -r line; do
  i=$((i + 1))
  printf '%s\n' "$line" > "$work/$i.sh"
done < "$work/commands"
status=0
ls "$work"/*.sh | xargs -P "$(nproc)" -I{} sh -c 'sh "$1" >"$1.out" 2>&1 || echo "$1" >>"$2/failed"' _ {} "$work"
if [ -f "$work/failed" ]; then
  while IFS= read -r f; do
    grep -E "error|warning: .*thread" "$f.out" | head -20 >&2 || cat "$f.out" >&2
  done < "$work/failed"
  echo "check-thread-safety: $(wc -l < "$work/failed") of $count sources failed" >&2
  status=1
else
  echo "check-thread-safety: no findings" >&2
fi
exit $status
