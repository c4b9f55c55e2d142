#!/usr/bin/env bash
# make_certs.sh DIR   (the Kafka listener's TLS tests; docs/security.md#tls)
#
# A throwaway PKI in DIR, made with the openssl command (P-256 keys, valid
# two days), PEM files NAME.pem (certificate) and NAME.key (private key):
#   ca          the CA the broker and the clients trust
#   server      the listener's certificate, for 127.0.0.1 and localhost
#   app         a client certificate (CN=app) signed by ca
#   stranger    a client certificate (CN=stranger) signed by ca
#   other-ca    a second CA nobody trusts, and
#   intruder    a client certificate (CN=app) signed by it
#   server2     a second listener certificate signed by other-ca (rotation)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
mkdir -p "$1"
cd "$1"
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
ca() {
  openssl req -x509 "${newkey[@]}" -days 2 -subj "/CN=$1" -keyout "$1.key" -out "$1.pem" \
    2>/dev/null
}
# leaf NAME CN CA EXTENSIONS
leaf() {
  openssl req -new "${newkey[@]}" -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%s\n' "$4" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
ca ca
ca other-ca
leaf server localhost ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
leaf server2 localhost other-ca "subjectAltName=IP:127.0.0.1,DNS:localhost"
leaf app app ca "extendedKeyUsage=clientAuth"
leaf stranger stranger ca "extendedKeyUsage=clientAuth"
leaf intruder app other-ca "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
