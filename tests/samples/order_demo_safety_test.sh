#!/usr/bin/env bash
# order_demo_safety_test.sh ORDER_DEMO WORK_DIR
# Two promises of order_demo that its own run does not exercise:
#  1. --clean never deletes a directory an earlier order_demo did not make;
#  2. nothing outlives it: killed with SIGKILL mid-run, its ferryd (whose pid
#     is in data/LOCK) and workers die too.
set -euo pipefail
demo=$1 work=$2
rm -rf "$work"
mkdir -p "$work/foreign"
echo keep >"$work/foreign/precious.txt"
status=0
"$demo" --data-dir "$work/foreign" --clean --orders 10 >"$work/refusal.log" 2>&1 || status=$?
test "$status" -eq 2 || { echo "FAILED: --clean on a foreign directory exited $status, want 2"; exit 1; }
test -f "$work/foreign/precious.txt" || { echo "FAILED: --clean deleted a foreign directory"; exit 1; }
grep -q "not made by order_demo" "$work/refusal.log"

"$demo" --data-dir "$work/run" --orders 100000 >/dev/null 2>"$work/run.log" &
demo_pid=$!
for _ in $(seq 300); do
  [[ -s $work/run/data/LOCK ]] && grep -q "workers started" "$work/run.log" && break
  sleep 0.1
done
broker_pid=$(tr -d '\n' <"$work/run/data/LOCK")
test -n "$broker_pid"
kill -0 "$broker_pid"
kill -9 "$demo_pid"
wait "$demo_pid" || true
for _ in $(seq 50); do
  kill -0 "$broker_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$broker_pid" 2>/dev/null; then
  echo "FAILED: ferryd ($broker_pid) outlived order_demo"
  kill -9 "$broker_pid"
  pkill -9 -f -- "--stats-file $work/run/" || true
  exit 1
fi
if pgrep -f -- "--broker tcp://127.0.0.1:.* --stats-file $work/run/" >/dev/null; then
  echo "FAILED: workers outlived order_demo"
  pkill -9 -f -- "--stats-file $work/run/" || true
  exit 1
fi
echo "order_demo_safety_test: ok"
