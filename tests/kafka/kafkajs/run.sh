#!/usr/bin/env bash
# run.sh FERRYD FERRY WORK_DIR   (ctest kafka.kafkajs)
#
# kafkajs - a Kafka client for Node that Ferry did not write, pinned by
# package-lock.json - against ferryd's Kafka listener:
#  1. installs the lockfile's kafkajs with `npm ci` into WORK_DIR/npm (npm's
#     cache in WORK_DIR/npm-cache: nothing in $HOME or the source tree);
#  2. starts FERRYD on ports of its own in a fresh temporary data directory;
#  3. runs compat.mjs: admin (create, list, describe a topic), an idempotent
#     producer with keys and headers (one batch gzip), a group of two
#     consumers that split the partitions and read every record once, the
#     offsets they commit, the group as the admin API and FERRY show it;
#  4. checks with FERRY (consume, groups describe, groups list) that Ferry's
#     own tools see the records kafkajs produced and the offsets it committed
#     (crosscheck.mjs);
#  5. stops ferryd, removes the data directory; fails if ferryd logged an
#     error or died on the way.
# Logs stay in WORK_DIR (ferryd.log, compat.log, ...). Needs node >= 18 and
# npm: tools/setup.sh installs them. KAFKAJS_LOG_LEVEL=debug and
# FERRY_KAFKAJS_FERRYD_LOG_LEVEL=debug log every request on both sides.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 FERRYD FERRY WORK_DIR" >&2
  exit 2
fi
ferryd=$1 ferry=$2 work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

fail() {
  echo "FAILED: $*" >&2
  exit 1
}

for tool in node npm; do
  command -v "$tool" >/dev/null ||
    fail "$tool not found: this test needs Node.js >= 18 and npm - run tools/setup.sh (installs Debian's nodejs and npm)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] ||
  fail "node $(node --version) is too old: this test needs Node.js >= 18 - run tools/setup.sh"
for bin in "$ferryd" "$ferry"; do
  [ -x "$bin" ] || fail "$bin is not there or not executable: build ferryd and ferry first"
done

mkdir -p "$work"
work=$(cd "$work" && pwd)
rm -f "$work"/{ferryd.out,ferryd.log,compat.log,summary.json,consumed.jsonl,described.json,listed.json}

# 1. kafkajs, exactly as package-lock.json pins it.
mkdir -p "$work/npm"
cp "$here/package.json" "$here/package-lock.json" "$work/npm/"
start=$(date +%s)
if ! npm_config_cache="$work/npm-cache" npm_config_update_notifier=false npm ci --prefix "$work/npm" \
  --prefer-offline --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1; then
  cat "$work/npm.log" >&2
  fail "npm ci (kafkajs from $here/package-lock.json) failed; its output is above (first run needs the npm registry; later runs use $work/npm-cache)"
fi
installed=$(node -p "require('$work/npm/node_modules/kafkajs/package.json').version")
want=$(node -p "require('$here/package-lock.json').packages['node_modules/kafkajs'].version")
[ "$installed" = "$want" ] || fail "npm ci installed kafkajs $installed, package-lock.json pins $want"
echo "kafkajs $installed installed ($(($(date +%s) - start)) s); node $(node --version)"

# 2. ferryd on ports of its own.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-kafkajs.XXXXXX")
ferryd_pid= ferryd_status=
# Running, and not a zombie waiting for `wait` (kill -0 succeeds on those).
running() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}
# SIGTERM, up to $1 s to exit, then SIGKILL; sets ferryd_status.
stop_ferryd() {
  kill -TERM "$ferryd_pid" 2>/dev/null || true
  for _ in $(seq "$(($1 * 10))"); do
    running "$ferryd_pid" || break
    sleep 0.1
  done
  running "$ferryd_pid" && kill -KILL "$ferryd_pid" 2>/dev/null
  ferryd_status=0
  wait "$ferryd_pid" 2>/dev/null || ferryd_status=$?
  ferryd_pid=
}
cleanup() {
  local status=$?
  [ -z "$ferryd_pid" ] || stop_ferryd 5
  rm -rf "$tmp"
  if [ "$status" -ne 0 ] && [ -s "$work/ferryd.log" ]; then
    echo "--- last lines of ferryd's log ($work/ferryd.log):" >&2
    tail -n 40 "$work/ferryd.log" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$ferryd" --data-dir "$tmp/data" --listen tcp://127.0.0.1:0 --kafka-listen 127.0.0.1:0 \
  --log-level "${FERRY_KAFKAJS_FERRYD_LOG_LEVEL:-warn}" >"$work/ferryd.out" 2>"$work/ferryd.log" &
ferryd_pid=$!
native= kafka=
for _ in $(seq 150); do
  native=$(sed -n 's/^ferryd listening on \(tcp:\/\/.*\)$/\1/p' "$work/ferryd.out" | head -n 1)
  kafka=$(sed -n 's/^ferryd kafka listening on \(.*:[0-9][0-9]*\)$/\1/p' "$work/ferryd.out" | head -n 1)
  [ -n "$native" ] && [ -n "$kafka" ] && break
  running "$ferryd_pid" || fail "ferryd exited before listening; it printed: $(cat "$work/ferryd.out")"
  sleep 0.1
done
[ -n "$native" ] && [ -n "$kafka" ] ||
  fail "ferryd did not print 'ferryd listening on tcp://...' and 'ferryd kafka listening on HOST:PORT' within 15 s; it printed: $(cat "$work/ferryd.out")"
echo "ferryd (pid $ferryd_pid): native $native, kafka $kafka"

# 3. kafkajs. compat.mjs stops itself after 90 s; timeout is the backstop.
start=$(date +%s)
status=0
KAFKAJS_PREFIX="$work/npm" timeout 150 node "$here/compat.mjs" --kafka "$kafka" --ferry "$ferry" \
  --broker "$native" --summary "$work/summary.json" >"$work/compat.log" 2>&1 || status=$?
cat "$work/compat.log"
[ "$status" -eq 0 ] || fail "compat.mjs exited $status (kafkajs against ferryd; its output is above)"
echo "compat.mjs: ok ($(($(date +%s) - start)) s)"

# 4. Ferry's own tools.
topic=$(node -p "require('$work/summary.json').topic")
group=$(node -p "require('$work/summary.json').group")
"$ferry" --broker "$native" -o json consume "$topic" --from-beginning -e >"$work/consumed.jsonl" ||
  fail "ferry consume $topic --from-beginning -e failed"
"$ferry" --broker "$native" -o json groups describe "$group" >"$work/described.json" ||
  fail "ferry groups describe $group failed"
"$ferry" --broker "$native" -o json groups list >"$work/listed.json" ||
  fail "ferry groups list failed"
node "$here/crosscheck.mjs" "$work/summary.json" "$work/consumed.jsonl" "$work/described.json" \
  "$work/listed.json"

# 5. ferryd took all that without dying or logging an error, and stops
#    cleanly (exit 0 on SIGTERM; in sanitizer builds: no report).
running "$ferryd_pid" || fail "ferryd died during the test"
stop_ferryd 30
[ "$ferryd_status" -eq 0 ] || fail "ferryd exited $ferryd_status on SIGTERM (want 0)"
if grep -E '^[^ ]+ (error|critical) |Sanitizer|runtime error:' "$work/ferryd.log" >&2; then
  fail "ferryd logged the errors above while serving kafkajs"
fi
echo "kafka.kafkajs: ok"
