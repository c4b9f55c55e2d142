# parse_doc.awk: turns one markdown file into the bash script run_doc.sh runs.
# POSIX awk only (Debian's default is mawk: no gawk extensions, no {m,n}).
#
# Variables (-v):
#   docname   the markdown file as messages name it (docs/cli.md)
#   script    the generated script; its first line sources `prelude`
#   prelude   tests/docs/doc_prelude.sh
#   blocks    table of run blocks, one per line, tab-separated:
#             index  fence_line  first_line  last_line  script_first  script_last
#   skipped   one line per skipped block: fence_line TAB reason
#   expects   one line per expectation: block_index TAB substring
#   errors    one line per problem with the markdown (annotations, fences)
#   notes     one line per block that looks runnable but is not (```bash)
#   port mport kport tmproot   what the canonical addresses become (see rewrite())
#
# Fences follow CommonMark: a run of 3+ backticks or tildes opens a block,
# the same character repeated at least as often closes it, and a fence
# indented by N spaces (a block in a list) has up to N spaces stripped from
# its lines. Only a block whose info string starts with the word `sh` is run.

function trim(s) {
  sub(/^[ \t]+/, "", s)
  sub(/[ \t]+$/, "", s)
  return s
}

function err(line, msg) {
  print docname ":" line ": " msg > errors
  nerrors++
}

function emit(s) {
  print s > script
  sline++
}

# Replaces every `from` in s by `to`. With `bounded`, only where the
# character before is not part of a path (so /var/tmp/ferry stays), and
# with `port_like`, only where the character after is not a digit (so
# :74001 stays).
function replace_all(s, from, to, bounded, port_like,    out, i, before, after) {
  out = ""
  while ((i = index(s, from)) > 0) {
    before = (i > 1) ? substr(s, i - 1, 1) : ""
    after = substr(s, i + length(from), 1)
    if ((bounded && before ~ /[A-Za-z0-9_.\/~-]/) || (port_like && after ~ /[0-9]/)) {
      out = out substr(s, 1, i + length(from) - 1)
    } else {
      out = out substr(s, 1, i - 1) to
    }
    s = substr(s, i + length(from))
  }
  return out s
}

# The canonical addresses of tests/docs/README.md.
function rewrite(s,    h, hosts, n) {
  n = split("127.0.0.1:|localhost:|0.0.0.0:|*:", hosts, "|")
  for (h = 1; h <= n; h++) {
    s = replace_all(s, hosts[h] "7400", hosts[h] port, 0, 1)
    s = replace_all(s, hosts[h] "9400", hosts[h] mport, 0, 1)
    s = replace_all(s, hosts[h] "9092", hosts[h] kport, 0, 1)
  }
  return replace_all(s, "/tmp/ferry", tmproot "/ferry", 1, 0)
}

# Annotation lines directly above a fence: `<!-- doc-test: ... -->`.
function annotation(line,    body, q1, rest) {
  body = line
  sub(/^[ \t]*<!--[ \t]*doc-test:[ \t]*/, "", body)
  if (body !~ /-->[ \t]*$/) {
    err(NR, "doc-test annotation must end with --> on the same line")
    return
  }
  sub(/[ \t]*-->[ \t]*$/, "", body)
  if (body ~ /^skip([ \t]|\(|$)/) {
    rest = trim(substr(body, 5))
    if (rest !~ /^\(.*\)$/ || trim(substr(rest, 2, length(rest) - 2)) == "") {
      err(NR, "doc-test: skip needs a reason: <!-- doc-test: skip (why it cannot run in a test) -->")
      return
    }
    pend_skip = trim(substr(rest, 2, length(rest) - 2))
  } else if (body ~ /^expect[ \t]/) {
    # "text" or 'text': everything between the first and the last quote,
    # no escapes ('"a":1' holds double quotes).
    rest = trim(substr(body, 7))
    q1 = substr(rest, 1, 1)
    if ((q1 != "\"" && q1 != "'") || length(rest) < 3 || substr(rest, length(rest), 1) != q1) {
      err(NR, "doc-test: expect needs a quoted, non-empty substring: <!-- doc-test: expect \"text\" --> or 'text'")
      return
    }
    pend_expect[++pend_nexpect] = substr(rest, 2, length(rest) - 2)
  } else {
    err(NR, "unknown doc-test annotation '" body "' (known: skip (reason), expect \"text\")")
    return
  }
  pend_line = NR
}

function clear_pending() {
  pend_line = 0
  pend_skip = ""
  pend_nexpect = 0
}

BEGIN {
  sline = 0
  nblocks = 0
  nerrors = 0
  in_fence = 0
  clear_pending()
  emit("source '" prelude "'")
}

{
  line = $0
  sub(/\r$/, "", line)
}

in_fence {
  probe = line
  sub(/^ */, "", probe)
  if (substr(probe, 1, fence_len) == fence_str && trim(substr(probe, fence_len + 1)) ~ ("^[" fence_char "]*$")) {
    in_fence = 0
    if (run) {
      emit("__doc_end " nblocks)
      print nblocks "\t" fence_line "\t" (fence_line + 1) "\t" (NR - 1) "\t" script_first "\t" sline - 1 > blocks
    }
    next
  }
  if (run) {
    # Strip up to fence_indent spaces, as CommonMark does for the content
    # of an indented fence.
    for (k = 0; k < fence_indent && substr(line, 1, 1) == " "; k++) line = substr(line, 2)
    emit(rewrite(line))
  }
  next
}

{
  probe = line
  sub(/^ */, "", probe)
  indent = length(line) - length(probe)
  c = substr(probe, 1, 1)
  if ((c == "`" || c == "~") && substr(probe, 1, 3) == c c c) {
    fence_char = c
    fence_len = 3
    while (substr(probe, fence_len + 1, 1) == c) fence_len++
    fence_str = substr(probe, 1, fence_len)
    info = trim(substr(probe, fence_len + 1))
    if (c == "`" && index(info, "`") > 0) {
      # Not a fence (inline code such as ```sh in a sentence).
      clear_pending()
      next
    }
    split(info, words, /[ \t]+/)
    lang = words[1]
    in_fence = 1
    fence_line = NR
    fence_indent = indent
    annotated = (pend_line == NR - 1)
    run = (lang == "sh")
    if (lang == "bash" || lang == "shell" || lang == "zsh")
      print docname ":" NR ": note: a ```" lang " block is shown, not run (only ```sh blocks run)" > notes
    if (annotated && !run) {
      err(pend_line, "doc-test annotation above a ```" lang " block: only ```sh blocks are run")
    } else if (run && annotated && pend_skip != "") {
      print fence_line "\t" pend_skip > skipped
      if (pend_nexpect > 0) err(pend_line, "doc-test: expect on a skipped block")
      run = 0
    } else if (run) {
      nblocks++
      for (e = 1; e <= pend_nexpect; e++) print nblocks "\t" pend_expect[e] > expects
      emit("__doc_begin " nblocks " " fence_line)
      script_first = sline + 1
    }
    clear_pending()
    next
  }
  if (line ~ /^[ \t]*<!--[ \t]*doc-test:/) {
    if (pend_line != 0 && pend_line != NR - 1) err(pend_line, "doc-test annotation is not directly above a ```sh fence")
    if (pend_line != NR - 1) clear_pending()
    annotation(line)
    next
  }
  if (pend_line != 0) {
    err(pend_line, "doc-test annotation is not directly above a ```sh fence")
    clear_pending()
  }
}

END {
  if (in_fence) err(fence_line, "code block opened here is never closed")
  if (pend_line != 0) err(pend_line, "doc-test annotation is not directly above a ```sh fence")
  emit("__doc_finish " nblocks)
  # Make sure every output file exists, even when empty.
  printf "" > blocks
  printf "" > skipped
  printf "" > expects
  printf "" > errors
  printf "" > notes
}
