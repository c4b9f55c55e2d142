#!/usr/bin/env bash
# run_doc.sh: runs every ```sh block of one markdown file, in order, in one
# bash process, as a reader would type them; fails when a command fails.
# The convention (what runs, canonical addresses, skip and expect
# annotations) is in tests/docs/README.md.
#
#   tests/docs/run_doc.sh [--repo-root DIR] [--bin-dir DIR]... [--samples-dir DIR]...
#                         [--timeout SECONDS] [--keep] FILE.md
#
#   --repo-root DIR     the repository: schemas/, samples/ and docs/ are linked
#                       into the working directory (default: two levels up)
#   --bin-dir DIR       put DIR on PATH (the build's tools/ with ferry, ferryd)
#   --samples-dir DIR   put every directory under DIR holding an executable on
#                       PATH, looked up when the test runs
#   --timeout SECONDS   stop the doc after this long (default 240)
#   --keep              keep the temporary directory (its path is printed)
#
# For options not given: FERRY_DOC_REPO_ROOT, FERRY_DOC_BIN_DIRS and
# FERRY_DOC_SAMPLES_DIRS (colon-separated lists), FERRY_DOC_TIMEOUT,
# FERRY_DOC_KEEP=1. Exit status: 0 passed, 1 failed, 2 usage error.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {  # [status]: 0 prints to stdout (--help), anything else to stderr
  if [[ ${1:-2} == 0 ]]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"
  else
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2
  fi
  exit "${1:-2}"
}

repo_root=${FERRY_DOC_REPO_ROOT:-$(cd "$here/../.." && pwd)}
timeout=${FERRY_DOC_TIMEOUT:-240}
keep=${FERRY_DOC_KEEP:-0}
bin_dirs=()
samples_dirs=()
IFS=: read -r -a bin_dirs <<<"${FERRY_DOC_BIN_DIRS:-}"
IFS=: read -r -a samples_dirs <<<"${FERRY_DOC_SAMPLES_DIRS:-}"
while (($# > 0)); do
  case $1 in
    --repo-root) repo_root=${2:?--repo-root needs a directory}; shift 2 ;;
    --bin-dir) bin_dirs+=("${2:?--bin-dir needs a directory}"); shift 2 ;;
    --samples-dir) samples_dirs+=("${2:?--samples-dir needs a directory}"); shift 2 ;;
    --timeout) timeout=${2:?--timeout needs seconds}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage 0 ;;
    --) shift; break ;;
    -*) echo "run_doc: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
(($# == 1)) || usage
[[ -f $1 ]] || { echo "run_doc: no such file: $1" >&2; exit 2; }
[[ $timeout =~ ^[0-9]+$ ]] || { echo "run_doc: --timeout must be whole seconds" >&2; exit 2; }
doc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
repo_root=$(cd "$repo_root" && pwd)
name=${doc#"$repo_root"/}  # docs/cli.md, as messages name it

# --- temporary directory, ports --------------------------------------------
#   $tmp/work    the doc's working directory (schemas/, samples/, docs/ linked)
#   $tmp/tmp     what /tmp/ferry... becomes; also the doc's TMPDIR
#   $tmp/state   the generated script and what it reports (doc_prelude.sh)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-doc.XXXXXX")
pgid=
watchdog=
reserved=()
port_locks=/tmp/ferry-doc-ports.$(id -u)

# The members of process group $1 still alive, as "pid(name) ...".
group_members() {
  local f line rest state pgrp out=
  for f in /proc/[0-9]*/stat; do
    { read -r line <"$f"; } 2>/dev/null || continue
    rest=${line##*) }
    read -r state _ pgrp _ <<<"$rest"
    [[ $pgrp == "$1" && $state != Z ]] || continue
    rest=${line#* (}
    out+="${out:+ }${line%% *}(${rest%%) *})"
  done
  printf '%s' "$out"
}

# Stops whatever the doc left running: its whole process group (the doc's
# bash and everything it started with &), SIGTERM first, SIGKILL after 5 s.
stop_group() {
  local left i
  [[ -n $pgid ]] || return 0
  left=$(group_members "$pgid")
  if [[ -n $left ]]; then
    echo "run_doc: stopping what the doc left running: $left"
    kill -TERM -- -"$pgid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      [[ -z $(group_members "$pgid") ]] && break
      sleep 0.1
    done
    left=$(group_members "$pgid")
    if [[ -n $left ]]; then
      echo "run_doc: still running after SIGTERM and 5 s, sending SIGKILL: $left"
      kill -KILL -- -"$pgid" 2>/dev/null || true
    fi
  fi
  pgid=
}

cleanup() {
  stop_group
  [[ -z $watchdog ]] || kill -- -"$watchdog" 2>/dev/null || true
  local p
  for p in "${reserved[@]}"; do rm -rf "${port_locks:?}/$p"; done
  if [[ $keep == 1 ]]; then
    echo "run_doc: kept $tmp"
  else
    rm -rf "$tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ ! $tmp =~ ^[A-Za-z0-9_./-]+$ ]]; then
  echo "run_doc: the temporary directory's path $tmp has characters the rewritten commands cannot hold; set TMPDIR" >&2
  exit 2
fi

port_in_use() {
  local files=() f
  for f in /proc/net/tcp /proc/net/tcp6; do [[ -r $f ]] && files+=("$f"); done
  ((${#files[@]} > 0)) || return 1
  awk -v p="$(printf '%04X' "$1")" \
    'FNR > 1 { n = split($2, a, ":"); if (a[n] == p) { found = 1; exit } } END { exit !found }' "${files[@]}"
}

# Picks a free port and reserves it (a directory under $port_locks owned by
# this process) so that docs tests running in parallel never pick the same.
reserve_port() {
  local p i owner
  mkdir -p "$port_locks"
  for ((i = 0; i < 1000; i++)); do
    p=$((20000 + RANDOM % 12000))
    port_in_use "$p" && continue
    if ! mkdir "$port_locks/$p" 2>/dev/null; then
      owner=$(cat "$port_locks/$p/pid" 2>/dev/null || true)
      if [[ -n $owner ]] && ! kill -0 "$owner" 2>/dev/null; then rm -rf "${port_locks:?}/$p"; fi
      continue
    fi
    echo $$ >"$port_locks/$p/pid"
    reserved+=("$p")
    REPLY=$p
    return 0
  done
  echo "run_doc: found no free port" >&2
  exit 1
}

reserve_port
port=$REPLY
reserve_port
mport=$REPLY
reserve_port
kport=$REPLY

work=$tmp/work
tmproot=$tmp/tmp
state=$tmp/state
mkdir -p "$work" "$tmproot" "$state"
for d in schemas samples docs; do
  if [[ -e $repo_root/$d ]]; then ln -s "$repo_root/$d" "$work/$d"; fi
done

# --- markdown -> script -----------------------------------------------------
script=$state/$(basename "$doc").sh
log=$state/log
awk -v docname="$name" -v script="$script" -v prelude="$here/doc_prelude.sh" \
  -v blocks="$state/blocks" -v skipped="$state/skipped" -v expects="$state/expects" \
  -v errors="$state/errors" -v notes="$state/notes" \
  -v port="$port" -v mport="$mport" -v kport="$kport" -v tmproot="$tmproot" \
  -f "$here/parse_doc.awk" "$doc"
nblocks=$(wc -l <"$state/blocks")
nskipped=$(wc -l <"$state/skipped")
nexpects=$(wc -l <"$state/expects")

# Maps "<script>: line N:" in bash's messages to "<doc>:M:".
map_lines() {
  awk -F '\t' -v script="$script" -v name="$name" '
    FNR == NR { n++; sf[n] = $5; sl[n] = $6; f[n] = $3; next }
    {
      pre = script ": line "
      while ((i = index($0, pre)) > 0) {
        rest = substr($0, i + length(pre))
        num = rest; sub(/[^0-9].*$/, "", num)
        md = ""
        for (b = 1; b <= n; b++) if (num >= sf[b] && num <= sl[b]) md = f[b] + num - sf[b]
        where = (md == "") ? "(harness) line " num : name ":" md
        $0 = substr($0, 1, i - 1) where substr(rest, length(num) + 1)
      }
      print
    }' "$state/blocks" -
}

# The markdown line a line of the generated script came from ("" if none).
md_line() {
  awk -F '\t' -v s="$1" '$5 <= s && s <= $6 { print $3 + s - $5 }' "$state/blocks"
}

echo "run_doc: $name: $nblocks block(s) to run; broker tcp://127.0.0.1:$port, metrics 127.0.0.1:$mport, kafka 127.0.0.1:$kport, /tmp/ferry -> $tmproot/ferry"
while IFS=$'\t' read -r line reason; do
  echo "$name:$line: skipped: $reason"
done <"$state/skipped"
cat "$state/notes"
if [[ -s $state/errors ]]; then
  cat "$state/errors"
  echo "FAILED $name: the markdown breaks the docs-test convention (tests/docs/README.md)"
  exit 1
fi
if ! bash -n "$script" 2>"$state/syntax"; then
  map_lines <"$state/syntax"
  echo "FAILED $name: a block is not valid bash"
  exit 1
fi

# --- run ------------------------------------------------------------------
path=
add_path() {
  [[ ":$path:" == *":$1:"* ]] || path+="${path:+:}$1"
}
for d in "${bin_dirs[@]}"; do
  if [[ -n $d ]]; then add_path "$(cd "$d" && pwd)"; fi
done
for d in "${samples_dirs[@]}"; do
  [[ -n $d && -d $d ]] || continue
  while IFS= read -r x; do
    add_path "$x"
  done < <(find "$(cd "$d" && pwd)" -path '*/CMakeFiles' -prune -o -type f -perm -u+x -printf '%h\n' | sort -u)
done
[[ -z $path ]] || echo "run_doc: PATH starts with $path"

# A clean environment for the doc: no FERRY_* settings from the caller (they
# would change ferryd's configuration or, FERRY_LOG_LEVEL, what the programs
# log - a doc that waits for a log line must see what a reader sees).
while IFS= read -r v; do
  if [[ $v == FERRY_* ]]; then unset "$v"; fi
done < <(compgen -e)
unset BASH_ENV ENV CDPATH

start=$(date +%s%N)
: >"$log"
set -m  # its own process group, so that everything the doc starts can be stopped
# shellcheck disable=SC2094 # the doc appends to the log; the prelude only reads it
(
  cd "$work"
  export PATH="$path${path:+:}$PATH" TMPDIR="$tmproot" FERRY_BROKER="tcp://127.0.0.1:$port"
  export __FERRY_DOC_STATE="$state" __FERRY_DOC_LOG="$log" __FERRY_DOC_NAME="$name"
  exec bash --noprofile --norc "$script"
) </dev/null >>"$log" 2>&1 &
pgid=$!
(
  sleep "$timeout"
  touch "$state/timed_out"
  kill -TERM -- -"$pgid"
) >/dev/null 2>&1 &
watchdog=$!
set +m
rc=0
wait "$pgid" || rc=$?
kill -- -"$watchdog" 2>/dev/null || true
watchdog=
stop_group >>"$log" 2>&1
elapsed=$((($(date +%s%N) - start) / 1000000))
seconds=$((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000)))

map_lines <"$log"
echo
ndone=0
[[ -f $state/done ]] && ndone=$(wc -l <"$state/done")
current=0
[[ -f $state/current ]] && current=$(cat "$state/current")
summary="$ndone blocks run of $nblocks, $nskipped skipped, $nexpects expectations, ${seconds} s"

block_field() {  # block field -> value from the blocks table
  awk -F '\t' -v n="$1" -v f="$2" '$1 == n { print $f }' "$state/blocks"
}

# Shows the block with a marker on line $2 (a markdown line, may be empty).
show_block() {
  awk -v a="$(block_field "$1" 3)" -v b="$(block_field "$1" 4)" -v m="${2:-0}" \
    'NR >= a && NR <= b { printf "%s %5d | %s\n", (NR == m ? ">" : " "), NR, $0 }' "$doc"
}

if [[ -f $state/timed_out ]]; then
  echo "FAILED $name:$(block_field "$current" 2): block $current did not finish within the doc's ${timeout} s (--timeout); $summary"
  show_block "$current"
  exit 1
fi
if [[ -f $state/expect_failed ]]; then
  IFS=$'\t' read -r b want <"$state/expect_failed"
  echo "FAILED $name:$(block_field "$b" 2): block $b ran, but its output does not contain \"$want\" (doc-test: expect); $summary"
  show_block "$b"
  exit 1
fi
if ((rc != 0)); then
  at="" cmd=""
  if [[ -f $state/error ]]; then
    IFS=$'\t' read -r _ _ sline cmd <"$state/error"
    at=$(md_line "$sline")
  fi
  if ((current == 0)); then
    echo "FAILED $name: the script stopped before the first block (exit status $rc); $summary"
    exit 1
  fi
  echo "FAILED $name:$(block_field "$current" 2): block $current failed with exit status $rc; $summary"
  if [[ -n $at ]]; then
    echo "  at $name:$at: $(sed -n "${at}p" "$doc" | sed 's/^[[:space:]]*//')"
    [[ -z $cmd || $(sed -n "${at}p" "$doc") == *"$cmd"* ]] || echo "  command: $cmd"
  else
    echo "  (the failing line is in bash's message above)"
  fi
  show_block "$current" "$at"
  exit 1
fi
if [[ ! -f $state/finished ]] || ((ndone != nblocks)); then
  echo "FAILED $name:$(block_field "$current" 2): the doc stopped in block $current with status 0 (an exit in a block, or a block that swallowed the next: unterminated heredoc or quote?); $summary"
  show_block "$current"
  exit 1
fi
echo "PASSED $name: $summary"
