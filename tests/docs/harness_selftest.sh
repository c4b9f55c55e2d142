#!/usr/bin/env bash
# harness_selftest.sh: checks that run_doc.sh passes what it should and,
# above all, fails what it should, with the right file, block and line.
# Runs the fixtures in tests/docs/fixtures/; needs no build.
#
#   tests/docs/harness_selftest.sh [path/to/run_doc.sh]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
run_doc=${1:-$here/run_doc.sh}
fixtures=$here/fixtures
repo_root=$(cd "$here/../.." && pwd)
rel=${fixtures#"$repo_root"/}  # tests/docs/fixtures, as run_doc names them

scratch=$(mktemp -d "${TMPDIR:-/tmp}/ferry-doc-selftest.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export SELFTEST_OUT=$scratch/out
# run_doc's temporary directories go here, to check that they are removed.
export TMPDIR=$scratch/tmp
# Settings that would change what the doc's programs do or print (removed
# for the doc: it runs as a reader runs it).
export FERRY_TOPICS_PARTITIONS=7 FERRY_LOG_LEVEL=warn

failures=0
fail() {
  echo "SELFTEST FAILED: $*"
  failures=$((failures + 1))
}

# run FIXTURE [run_doc options...]: runs it, leaves its output in $out and
# its exit status in $status.
run() {
  local fixture=$1
  shift
  rm -rf "$SELFTEST_OUT" "$TMPDIR"
  mkdir -p "$SELFTEST_OUT" "$TMPDIR"
  status=0
  out=$(bash "$run_doc" --repo-root "$repo_root" "$@" "$fixtures/$fixture") || status=$?
  echo "--- $fixture: exit status $status"
  printf '%s\n' "$out" | sed 's/^/    /'
  if [[ -n $(ls -A "$TMPDIR") ]]; then fail "$fixture: left behind in TMPDIR: $(ls -A "$TMPDIR")"; fi
}

expect_status() {
  [[ $status == "$1" ]] || fail "$2: exit status $status, expected $1"
}

expect_output() {
  [[ $out == *"$1"* ]] || fail "$2: output lacks: $1"
}

expect_no_output() {
  [[ $out != *"$1"* ]] || fail "$2: output should not contain: $1"
}

# The markdown line holding MARK, and the line of the ```sh fence above it.
line_of() { grep -n -F -- "$2" "$fixtures/$1" | head -1 | cut -d: -f1; }
fence_above() { awk -v n="$2" 'NR < n && /^ *```sh *$/ { f = NR } END { print f }' "$fixtures/$1"; }

gone() {  # pid file: the process it names must not be running (a zombie is gone)
  local pid stat
  [[ -f $1 ]] || { fail "no pid file $1"; return; }
  pid=$(cat "$1")
  stat=$(cat "/proc/$pid/stat" 2>/dev/null || true)
  stat=${stat##*) }
  if [[ -n $stat && ${stat%% *} != Z ]]; then
    fail "process $pid ($1) still runs after the doc ended"
    kill "$pid" 2>/dev/null || true
  fi
}

# --- a doc that passes ------------------------------------------------------
run pass.md
expect_status 0 pass.md
expect_output "PASSED $rel/pass.md: 4 blocks run of 4, 1 skipped, 3 expectations" pass.md
expect_output "$rel/pass.md:$(($(line_of pass.md 'doc-test: skip (this would fail') + 1)): skipped: this would fail" pass.md
expect_output "skipped: this would fail: checks that skipped blocks do not run" pass.md
expect_output 'expected "hello again": found' pass.md
expect_output "stopping what the doc left running" pass.md
gone "$SELFTEST_OUT/background.pid"
workdir=$(cat "$SELFTEST_OUT/workdir" 2>/dev/null || echo missing)
[[ $workdir == "$TMPDIR"/* && ! -e $workdir ]] || fail "pass.md: working directory $workdir not under TMPDIR or not removed"
[[ ! -e $repo_root/written-by-the-doc && ! -e $here/written-by-the-doc ]] || fail "pass.md wrote into the repository"

# --- docs that must fail ------------------------------------------------------
run fail.md
expect_status 1 fail.md
at=$(line_of fail.md FAILS-HERE)
fence=$(fence_above fail.md "$at")
expect_output "FAILED $rel/fail.md:$fence: block 2 failed with exit status 1; 1 blocks run of 3" fail.md
expect_output "  at $rel/fail.md:$at: false   # FAILS-HERE" fail.md
expect_output "block 2 starts" fail.md
[[ ! -e $SELFTEST_OUT/after-failure ]] || fail "fail.md: the command after the failing one ran"
[[ ! -e $SELFTEST_OUT/block3-ran ]] || fail "fail.md: the block after the failing one ran"

run pipefail.md
expect_status 1 pipefail.md
at=$(line_of pipefail.md FAILS-HERE)
expect_output "FAILED $rel/pipefail.md:$(fence_above pipefail.md "$at"): block 1 failed with exit status 1" pipefail.md
expect_output "  at $rel/pipefail.md:$at: false | cat" pipefail.md

run unset.md
expect_status 1 unset.md
expect_output "$rel/unset.md:$(line_of unset.md FAILS-HERE): no_such_variable: unbound variable" unset.md
expect_output "FAILED $rel/unset.md:" unset.md

run early_exit.md
expect_status 1 early_exit.md
expect_output "FAILED $rel/early_exit.md:3: the doc stopped in block 1 with status 0" early_exit.md

run expect_missing.md
expect_status 1 expect_missing.md
expect_output "FAILED $rel/expect_missing.md:4: block 1 ran, but its output does not contain \"goodbye\"" expect_missing.md

run skip_without_reason.md
expect_status 1 skip_without_reason.md
expect_output "$rel/skip_without_reason.md:3: doc-test: skip needs a reason" skip_without_reason.md
expect_output "FAILED $rel/skip_without_reason.md: the markdown breaks the docs-test convention" skip_without_reason.md

run slow.md --timeout 2
expect_status 1 slow.md
expect_output "FAILED $rel/slow.md:3: block 1 did not finish within the doc's 2 s" slow.md
gone "$SELFTEST_OUT/slow-background.pid"

# --- every directory under --samples-dir holding an executable is on PATH ------
samples=$scratch/samples
mkdir -p "$samples/order_demo" "$samples/CMakeFiles"
printf '#!/bin/sh\necho "sample program ran"\n' >"$samples/order_demo/selftest_sample_program"
chmod +x "$samples/order_demo/selftest_sample_program"
run samples_path.md --samples-dir "$samples"
expect_status 0 samples_path.md
expect_output "PATH starts with $samples/order_demo" samples_path.md

# --- no run blocks: passes, and says so ----------------------------------------
run zero.md
expect_status 0 zero.md
expect_output "PASSED $rel/zero.md: 0 blocks run of 0, 0 skipped" zero.md

# --- usage --------------------------------------------------------------------
status=0
bash "$run_doc" >/dev/null 2>&1 || status=$?
expect_status 2 "run_doc.sh without a file"

if ((failures > 0)); then
  echo "harness self-test: $failures check(s) failed"
  exit 1
fi
echo "harness self-test: all checks passed"
