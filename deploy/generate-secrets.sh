#!/usr/bin/env bash
# Generate every secret file deploy/compose.yaml references: the gateway's keys, the database password,
# a local CA with certificates for the HTTPS proxy and the Kafka broker, and the Kafka users (one principal
# per component, one per connecting organisation). Local use only; production secrets come from a vault.
#
#   deploy/generate-secrets.sh [DIR] [OIN ...]     DIR defaults to deploy/secrets; each OIN gets a Kafka user
#
# Refuses to overwrite an existing DIR: rotating keys is a runbook (deploy/runbook-key-rotation.md), not this.
set -euo pipefail
umask 077

DIR="${1:-$(dirname "$0")/secrets}"
shift || true
ORGS=("$@")
if [ -e "$DIR/brb_pseudonym_key" ]; then
  echo "$DIR already holds secrets; remove it first to start over" >&2
  exit 1
fi
mkdir -p "$DIR/tls" "$DIR/kafka"

rand() { openssl rand -hex 32; }
b64key() { openssl rand -base64 32; }

# --- the gateway's own keys (read from BRB_SECRETS_DIR=/run/secrets) ------------------------------
rand > "$DIR/brb_pseudonym_key"
# the payload key ring as a key file (BRB_ENCRYPTION_KEYS_FILE), in a directory of its own: every process
# re-reads it when it changes, and a directory mount shows the file replaced (deploy/runbook-key-rotation.md)
mkdir -p "$DIR/keyring"
KID="k$(date -u +%Y%m%d)"
printf '{"keys": {"%s": "%s"}, "current": "%s"}\n' "$KID" "$(b64key)" "$KID" > "$DIR/keyring/encryption-keys.json"
rand > "$DIR/brb_audit_chain_key"
# the gateway's receipt signing key (gateway/receipts.py), a private EC P-256 JWK: openssl writes the key as SEC1
# DER (121 bytes: d at byte 7, the point 04|x|y from byte 56), from which the JWK's members are cut
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
DER="$DIR/.receipt-key.der"
openssl ecparam -name prime256v1 -genkey -noout -outform DER -out "$DER"
[ "$(wc -c < "$DER")" -eq 121 ] || { echo "unexpected encoding of the EC key" >&2; rm -f "$DER"; exit 1; }
part() { tail -c +"$(( $1 + 1 ))" "$DER" | head -c 32 | b64url; }
printf '{"kty": "EC", "crv": "P-256", "kid": "brb-receipts-%s", "alg": "ES256", "use": "sig", "x": "%s", "y": "%s", "d": "%s"}\n' \
  "$(date -u +%Y%m%d)" "$(part 57)" "$(part 89)" "$(part 7)" > "$DIR/brb_receipt_signing_key"
rm "$DER"
# signs the audit pages' session cookie; the OIDC client secret is the identity provider's, a placeholder here
rand > "$DIR/brb_session_secret"
[ -f "$DIR/brb_oidc_client_secret" ] || echo "replace-with-the-identity-providers-client-secret" > "$DIR/brb_oidc_client_secret"
# one file for both sides: PostgreSQL's POSTGRES_PASSWORD_FILE and the gateway's BRB_DATABASE_PASSWORD
rand > "$DIR/brb_database_password"

# --- a local CA, the proxy's certificate, the broker's certificate ------------------------------
openssl req -x509 -new -newkey rsa:3072 -nodes -days 825 -subj "/CN=brb local CA" \
  -keyout "$DIR/tls/ca.key" -out "$DIR/tls/ca.crt" 2>/dev/null
cert() {  # cert NAME SUBJECT-ALT-NAMES
  openssl req -new -newkey rsa:3072 -nodes -subj "/CN=$1" -keyout "$DIR/tls/$1.key" -out "$DIR/tls/$1.csr" 2>/dev/null
  printf "subjectAltName=%s\nextendedKeyUsage=serverAuth\n" "$2" > "$DIR/tls/$1.ext"
  openssl x509 -req -in "$DIR/tls/$1.csr" -CA "$DIR/tls/ca.crt" -CAkey "$DIR/tls/ca.key" -CAcreateserial \
    -days 397 -sha256 -extfile "$DIR/tls/$1.ext" -out "$DIR/tls/$1.crt" 2>/dev/null
  rm "$DIR/tls/$1.csr" "$DIR/tls/$1.ext"
}
cert gateway "DNS:localhost,DNS:gateway.brb.local,IP:127.0.0.1"
cert kafka "DNS:kafka,DNS:localhost"

# --- the broker's key and trust stores (apache/kafka image: /etc/kafka/secrets) ------------------
STOREPASS="$(rand)"
openssl pkcs12 -export -name kafka -in "$DIR/tls/kafka.crt" -inkey "$DIR/tls/kafka.key" -certfile "$DIR/tls/ca.crt" \
  -passout "pass:$STOREPASS" -out "$DIR/kafka/kafka.keystore.p12"
openssl pkcs12 -export -nokeys -in "$DIR/tls/ca.crt" -passout "pass:$STOREPASS" -out "$DIR/kafka/kafka.truststore.p12"
for f in keystore_creds key_creds truststore_creds; do echo "$STOREPASS" > "$DIR/kafka/$f"; done
cp "$DIR/tls/ca.crt" "$DIR/kafka/ca.crt"

# --- Kafka users: SASL/PLAIN over TLS, users in the broker's JAAS file ----------------------------
# (Strimzi on Kubernetes uses SCRAM-SHA-512 KafkaUsers instead: deploy/k8s/kafka-users.yaml)
ADMIN="$(rand)"
users=("admin" "brb_relay" "brb_dispatcher")
for oin in "${ORGS[@]}"; do users+=("org_$oin"); done
{
  echo "KafkaServer {"
  echo "  org.apache.kafka.common.security.plain.PlainLoginModule required"
  echo "  username=\"admin\" password=\"$ADMIN\""
  echo "  user_admin=\"$ADMIN\""
  for user in "${users[@]:1}"; do
    pw="$(rand)"
    echo "$pw" > "$DIR/kafka_${user}_password"
    echo "  user_$user=\"$pw\""
  done
  echo "  ;"
  echo "};"
} > "$DIR/kafka/kafka_server_jaas.conf"
cat > "$DIR/kafka/admin.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$ADMIN";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/kafka/secrets/ca.crt
EOF
printf "%s\n" "${ORGS[@]}" | sed '/^$/d' > "$DIR/kafka/org-oins"   # topics and ACLs per organisation

# the top directory keeps other host users out; the files stay readable for the containers' own users
# (compose bind-mounts file secrets with their host mode), except the CA key, which no container mounts
chmod 700 "$DIR"
find "$DIR" -mindepth 1 -type d -exec chmod 755 {} +
find "$DIR" -type f -exec chmod 644 {} +
chmod 600 "$DIR/tls/ca.key"
echo "secrets written to $DIR (CA: $DIR/tls/ca.crt)"
