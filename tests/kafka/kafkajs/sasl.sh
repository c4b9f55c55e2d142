#!/usr/bin/env bash
# sasl.sh FERRYD FERRY WORK_DIR [tls]   (ctest kafka.kafkajs_sasl, kafka.kafkajs_tls)
#
# kafkajs (pinned by package-lock.json, installed as run.sh does) over
# SASL/SCRAM-SHA-256 against ferryd with [security] on: a users file with a
# CURVE super user (for the ferry CLI) and a SCRAM user made by `ferry users
# hash-password`, ACLs added with `ferry acls`, then sasl.mjs. With `tls`,
# the Kafka listener is TLS with client certificates requested
# (certificates from ../make_certs.sh), kafkajs logs in with SASL/PLAIN over
# it, and then with app's certificate alone. Logs stay in WORK_DIR
# (ferryd-sasl[-tls].log, sasl[-tls].log).
set -euo pipefail

[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 FERRYD FERRY WORK_DIR [tls]" >&2; exit 2; }
ferryd=$1 ferry=$2 work=$3 mode=${4:-}
[ -z "$mode" ] || [ "$mode" = tls ] || { echo "$0: unknown mode '$mode'" >&2; exit 2; }
suffix=${mode:+-$mode}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fail() { echo "FAILED: $*" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null ||
  fail "node and npm are needed: run tools/setup.sh"

mkdir -p "$work/npm"
work=$(cd "$work" && pwd)
cp "$here/package.json" "$here/package-lock.json" "$work/npm/"
if ! npm_config_cache="$work/npm-cache" npm_config_update_notifier=false npm ci --prefix "$work/npm" \
  --prefer-offline --no-audit --no-fund --loglevel=error >"$work/npm-sasl$suffix.log" 2>&1; then
  cat "$work/npm-sasl$suffix.log" >&2
  fail "npm ci (kafkajs from $here/package-lock.json) failed"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ferry-kafkajs-sasl.XXXXXX")
pid=
cleanup() {
  local status=$?
  if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
  [ "$status" -eq 0 ] || { echo "--- ferryd's log:" >&2; tail -n 30 "$work/ferryd-sasl$suffix.log" >&2 || true; }
  exit "$status"
}
trap cleanup EXIT

( cd "$tmp" && "$ferry" keys generate server >/dev/null && "$ferry" keys generate root >/dev/null )
{
  echo '[users.root]'
  grep public_key "$tmp/root.pub"
  echo 'super_user = true'
  echo 'app-passphrase-123' | "$ferry" users hash-password app
  [ -z "$mode" ] || echo 'tls_client = true'
} >"$tmp/users.toml"

tls_env=() tls_args=()
if [ "$mode" = tls ]; then
  bash "$here/../make_certs.sh" "$tmp/tls"
  tls_env=(FERRY_SECURITY_KAFKA_TLS_CERT_FILE="$tmp/tls/server.pem"
    FERRY_SECURITY_KAFKA_TLS_KEY_FILE="$tmp/tls/server.key"
    FERRY_SECURITY_KAFKA_TLS_CA_FILE="$tmp/tls/ca.pem"
    FERRY_SECURITY_KAFKA_TLS_CLIENT_AUTH=requested)
  tls_args=(--mechanism plain --ca "$tmp/tls/ca.pem" --cert "$tmp/tls/app.pem"
    --key "$tmp/tls/app.key")
fi

env "${tls_env[@]}" FERRY_SECURITY_ENABLED=true FERRY_SECURITY_SERVER_KEY_FILE="$tmp/server.key" \
  FERRY_SECURITY_USERS_FILE="$tmp/users.toml" \
  "$ferryd" --data-dir "$tmp/data" --listen tcp://127.0.0.1:0 --kafka-listen 127.0.0.1:0 \
  --log-level warn >"$work/ferryd-sasl$suffix.out" 2>"$work/ferryd-sasl$suffix.log" &
pid=$!
native= kafka=
for _ in $(seq 150); do
  native=$(sed -n 's/^ferryd listening on \(tcp:\/\/.*\)$/\1/p' "$work/ferryd-sasl$suffix.out" | head -n 1)
  kafka=$(sed -n 's/^ferryd kafka listening on \(.*:[0-9][0-9]*\)$/\1/p' "$work/ferryd-sasl$suffix.out" | head -n 1)
  [ -n "$native" ] && [ -n "$kafka" ] && break
  sleep 0.1
done
[ -n "$kafka" ] || fail "ferryd did not start: $(cat "$work/ferryd-sasl$suffix.out" "$work/ferryd-sasl$suffix.log")"

export FERRY_KEY_FILE="$tmp/root.key" FERRY_SERVER_KEY="$tmp/server.pub"
"$ferry" --broker "$native" acls add --principal app --topic js- --prefix --operations create,read,write
"$ferry" --broker "$native" acls add --principal app --group js-group --operations read
"$ferry" --broker "$native" topics create forbidden >/dev/null

status=0
KAFKAJS_PREFIX="$work/npm" timeout 120 node "$here/sasl.mjs" --kafka "$kafka" --user app \
  --password app-passphrase-123 "${tls_args[@]}" >"$work/sasl$suffix.log" 2>&1 || status=$?
cat "$work/sasl$suffix.log"
[ "$status" -eq 0 ] || fail "sasl.mjs exited $status"
# Ferry's own view: the record kafkajs produced, read with the super user's key.
"$ferry" --broker "$native" consume js-orders --from-beginning -e | grep -qx paid ||
  fail "ferry consume js-orders does not show the record kafkajs produced"
echo "kafka.kafkajs_sasl${mode:+ ($mode)}: ok"
