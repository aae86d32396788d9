#!/bin/sh
# Make a throw-away certificate authority for trying the v2g-edge MQTT link with mutual TLS.
#
#   deploy/mosquitto/make-test-ca.sh OUT_DIR [CLIENT_IDENTITY ...]
#
# Writes into OUT_DIR (created; existing files are replaced):
#   ca.pem, ca.key          the CA (EC P-256, valid DAYS days, default 365)
#   broker.pem, broker.key  the broker's certificate for localhost, 127.0.0.1 and ::1, plus any names in
#                           BROKER_HOSTS (space separated, e.g. BROKER_HOSTS="mqtt.example.net 10.0.0.5")
#   client-<id>.pem/.key    one client certificate per CLIENT_IDENTITY, with CN = the identity. With the
#                           example broker config (use_identity_as_username) the CN is the user name the
#                           ACL confines: "<site_id>/<evse_id>" for a charger, "aggregator" for the fleet
#                           side. A "/" in the identity becomes "_" in the file name.
# Keys are unencrypted and mode 0600. For tests and trials only: a production CA keeps its key offline.
# The tests make their CA with hil/pki.py (same layout, in Python); tests/link/test_tls_auth.py runs
# this script once to keep it working. Needs openssl 1.1.1 or newer.
set -eu

if [ $# -lt 1 ]; then
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
out=$1
shift
days=${DAYS:-365}
mkdir -p "$out"
umask 077

newkey() {
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# A subject with one CN; "/" inside it is escaped for -subj.
subject() {
    printf '/CN=%s' "$(printf '%s' "$1" | sed 's#/#\\/#g')"
}

newkey "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days "$days" -subj "/CN=v2g-edge test CA" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$out/ca.pem"

# sign NAME CN EXTENSIONS: a certificate for NAME.key signed by the CA
sign() {
    ext=$(mktemp)
    printf '%s\n' "$3" >"$ext"
    newkey "$out/$1.key"
    openssl req -new -key "$out/$1.key" -subj "$(subject "$2")" -out "$out/$1.csr"
    openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
        -sha256 -days "$days" -extfile "$ext" -out "$out/$1.pem" 2>/dev/null
    rm -f "$out/$1.csr" "$ext"
}

san="DNS:localhost,IP:127.0.0.1,IP:::1"
for host in ${BROKER_HOSTS:-}; do
    case $host in
        *[!0-9.:]*) san="$san,DNS:$host" ;;
        *) san="$san,IP:$host" ;;
    esac
done
sign broker localhost "basicConstraints=critical,CA:FALSE
extendedKeyUsage=serverAuth
subjectAltName=$san"

for identity in "$@"; do
    sign "client-$(printf '%s' "$identity" | tr / _)" "$identity" "basicConstraints=critical,CA:FALSE
extendedKeyUsage=clientAuth"
done
rm -f "$out/ca.srl"
# The certificates are public; only the keys stay private.
chmod 644 "$out"/*.pem
echo "CA and certificates in $out"
