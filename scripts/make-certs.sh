#!/usr/bin/env bash
# Certificates for mutual TLS between the device and the edge, made with openssl: one private CA, the edge's
# certificate (server and client use, so the edge's own health probe can present it) and the device's (client).
#
#   scripts/make-certs.sh [DIR]                     files under DIR (default certs/): DIR/ca.crt + DIR/ca.key,
#                                                   DIR/edge/{tls.crt,tls.key,ca.crt}, DIR/device/{tls.crt,tls.key,ca.crt}
#   scripts/make-certs.sh --kubernetes | kubectl apply -f -
#                                                   the Secrets deploy/k8s mounts (sjscc-edge-tls, sjscc-device-tls;
#                                                   cert-manager's layout: tls.crt, tls.key, ca.crt), nothing on disk
#
# First run only: when DIR already holds the CA and both certificates, nothing is changed (delete DIR to rotate).
# Settings (environment):
#   CERTS_EDGE_NAMES    DNS names of the edge in its certificate (default: edge,sjscc-edge,localhost plus
#                       sjscc-edge.NAMESPACE.svc[.cluster.local] for CERTS_NAMESPACE, default "default");
#                       127.0.0.1 and ::1 are always listed, for a probe inside the edge's container
#   CERTS_EDGE_DIR, CERTS_DEVICE_DIR   where each side's files go (default DIR/edge, DIR/device), so that each
#                       container mounts only its own key (docker-compose.secure.yml)
#   CERTS_OWNER         uid:gid to give the files (when run as root for containers that run as another user)
#   CERTS_DAYS          validity of the two certificates (default 365; the CA: 3650)
set -euo pipefail
say() { echo "make-certs: $*" >&2; }
command -v openssl >/dev/null || { say "openssl is needed"; exit 1; }

kubernetes=no
if [[ "${1:-}" == "--kubernetes" ]]; then kubernetes=yes; shift; fi
if [[ "${1:-}" == -* ]]; then sed -n '2,21p' "$0" >&2; exit 2; fi
namespace=${CERTS_NAMESPACE:-default}
days=${CERTS_DAYS:-365}
names=${CERTS_EDGE_NAMES:-edge,sjscc-edge,sjscc-edge.$namespace.svc,sjscc-edge.$namespace.svc.cluster.local,localhost}

if [[ $kubernetes == yes ]]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
else
    dir=${1:-certs}
fi
edge_dir=${CERTS_EDGE_DIR:-$dir/edge}
device_dir=${CERTS_DEVICE_DIR:-$dir/device}

if [[ -s $dir/ca.crt && -s $edge_dir/tls.crt && -s $edge_dir/tls.key && -s $device_dir/tls.crt \
      && -s $device_dir/tls.key ]]; then
    say "certificates already in $dir (delete it to make new ones)"
    exit 0
fi
mkdir -p "$dir" "$edge_dir" "$device_dir"
umask 077

openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 -days 3650 \
    -subj "/CN=sjscc private CA" -keyout "$dir/ca.key" -out "$dir/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# issue NAME DIR EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
issue() {
    local name=$1 out=$2 usage=$3 alt=${4:-}
    local extensions="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$usage
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
    [[ -n $alt ]] && extensions+=$'\n'"subjectAltName=$alt"
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$name" \
        -keyout "$out/tls.key" -out "$out/tls.csr" 2>/dev/null
    openssl x509 -req -in "$out/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -sha256 \
        -days "$days" -extfile <(printf '%s\n' "$extensions") -out "$out/tls.crt" 2>/dev/null
    rm -f "$out/tls.csr"
    cp "$dir/ca.crt" "$out/ca.crt"
}
alt=$(echo "$names" | tr ',' '\n' | sed '/^$/d; s/^/DNS:/' | paste -sd, -),IP:127.0.0.1,IP:::1
issue sjscc-edge "$edge_dir" serverAuth,clientAuth "$alt"
issue sjscc-device "$device_dir" clientAuth
rm -f "$dir/ca.srl"
openssl verify -CAfile "$dir/ca.crt" "$edge_dir/tls.crt" "$device_dir/tls.crt" >/dev/null

if [[ $kubernetes == yes ]]; then
    for side in edge device; do
        side_dir=$([[ $side == edge ]] && echo "$edge_dir" || echo "$device_dir")
        cat <<EOF
---
apiVersion: v1
kind: Secret
metadata:
  name: sjscc-$side-tls
  labels: {app.kubernetes.io/name: sjscc, app.kubernetes.io/component: $side}
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 < "$side_dir/tls.crt")
  tls.key: $(base64 -w0 < "$side_dir/tls.key")
  ca.crt: $(base64 -w0 < "$side_dir/ca.crt")
EOF
    done
    say "Secrets sjscc-edge-tls and sjscc-device-tls written to stdout (edge names: $alt)"
    exit 0
fi

chmod 0444 "$dir/ca.crt" "$edge_dir"/*.crt "$device_dir"/*.crt
chmod 0400 "$dir/ca.key" "$edge_dir/tls.key" "$device_dir/tls.key"
if [[ -n "${CERTS_OWNER:-}" ]]; then
    chown "$CERTS_OWNER" "$edge_dir"/* "$device_dir"/*
fi
say "CA, edge and device certificates in $dir (edge: $edge_dir, device: $device_dir; edge names: $alt)"
