# shellcheck shell=bash
# Sourced first by the script that run_doc.sh generates from a markdown file
# (parse_doc.awk). The file's ```sh blocks follow in order, each between
# `__doc_begin N` and `__doc_end N`, all in this one bash process, so a
# variable or a file from one block is there for the next. The state files
# these functions write tell run_doc.sh how far the doc got and what failed.
set -euo pipefail
shopt -s inherit_errexit

__doc_state=${__FERRY_DOC_STATE:?}
__doc_log=${__FERRY_DOC_LOG:?}
__doc_name=${__FERRY_DOC_NAME:?}
unset __FERRY_DOC_STATE __FERRY_DOC_LOG __FERRY_DOC_NAME
__doc_block=0
__doc_out_start=0

# Under `set -e` the ERR trap runs exactly when a failing command is about
# to end the script: remember which, and where (a line of the generated
# script; run_doc.sh maps it back to the markdown).
__doc_on_err() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$__doc_block" "$2" "${3//$'\n'/ }" >"$__doc_state/error"
}
trap '__doc_on_err "$?" "$LINENO" "$BASH_COMMAND"' ERR

# Prints the block's header and its source (with the markdown's line
# numbers, after rewriting), then notes where its output starts in the log.
__doc_begin() {
  local n fence first sfirst slast
  __doc_block=$1
  printf '%s\n' "$1" >"$__doc_state/current"
  IFS=$'\t' read -r n fence first _ sfirst slast \
    < <(awk -F '\t' -v n="$1" '$1 == n' "$__doc_state/blocks")
  printf '\n=== %s:%s: block %s ===\n' "$__doc_name" "$fence" "$n"
  awk -v a="$sfirst" -v b="$slast" -v f="$first" \
    'NR >= a && NR <= b { printf "%5d | %s\n", f + NR - a, $0 }' "$0"
  printf -- '--- output ---\n'
  __doc_out_start=$(wc -c <"$__doc_log")
}

# Checks the block's `expect` annotations against everything written to the
# log since __doc_begin (stdout and stderr of the block's commands, and of
# background processes meanwhile), then marks the block done.
__doc_end() {
  local n want out
  while IFS=$'\t' read -r n want; do
    [[ $n == "$1" ]] || continue
    out=$(tail -c "+$((__doc_out_start + 1))" "$__doc_log")
    if [[ $out != *"$want"* ]]; then
      printf '%s\t%s\n' "$1" "$want" >"$__doc_state/expect_failed"
      exit 1
    fi
    printf -- '--- expected "%s": found\n' "$want"
  done <"$__doc_state/expects"
  printf '%s\n' "$1" >>"$__doc_state/done"
}

__doc_finish() {
  printf '%s\n' "$1" >"$__doc_state/finished"
}
