#!/usr/bin/env bash
# Build the device and edge images with `docker compose build`, in whichever world this host is in:
# - the base: debian:bookworm-slim when it is present or can be pulled, else the equivalent that
#   scripts/build-base-image.sh builds from Debian packages (sjscc/debian:bookworm-slim);
# - torch: the CPU wheel index when it answers, else PyPI (its torch is the CUDA build: larger images);
# - pip's CA bundle: the host's, passed as the build secret `pip_ca` (see docker-compose.yml).
# Each choice can be forced: SJSCC_BASE_IMAGE, SJSCC_TORCH_INDEX_URL, SJSCC_PIP_CA.
# Prints the choices as `export` lines on stdout (for `eval`), the build log on stderr.
#   eval "$(scripts/compose-images.sh)"; docker compose up -d --wait
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "compose-images: $*" >&2; }

CPU_INDEX=https://download.pytorch.org/whl/cpu
if [[ -z "${SJSCC_BASE_IMAGE:-}" ]]; then
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1 \
            || timeout 60 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
        SJSCC_BASE_IMAGE=debian:bookworm-slim
    else
        SJSCC_BASE_IMAGE=sjscc/debian:bookworm-slim
        say "debian:bookworm-slim cannot be pulled; using $SJSCC_BASE_IMAGE built from Debian packages"
        docker image inspect "$SJSCC_BASE_IMAGE" >/dev/null 2>&1 || scripts/build-base-image.sh "$SJSCC_BASE_IMAGE" >&2
    fi
fi
if [[ -z "${SJSCC_TORCH_INDEX_URL:-}" ]]; then
    if python3 -c "import urllib.request as u; u.urlopen('$CPU_INDEX/torch/', timeout=10)" >/dev/null 2>&1; then
        SJSCC_TORCH_INDEX_URL=$CPU_INDEX
    else
        SJSCC_TORCH_INDEX_URL=https://pypi.org/simple
        say "the CPU torch index is unreachable; torch comes from PyPI (the CUDA build)"
    fi
fi
if [[ -z "${SJSCC_PIP_CA:-}" ]]; then
    for bundle in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt /etc/ssl/cert.pem; do
        [[ -s $bundle ]] && { SJSCC_PIP_CA=$bundle; break; }
    done
fi
export SJSCC_BASE_IMAGE SJSCC_TORCH_INDEX_URL SJSCC_PIP_CA

say "base $SJSCC_BASE_IMAGE, torch from $SJSCC_TORCH_INDEX_URL, pip CA ${SJSCC_PIP_CA:-none}"
start=$(date +%s)
# One after the other: the second reuses every layer but its last few (built side by side, both would
# install the same dependencies at once).
for service in edge device; do
    docker compose build ${SJSCC_BUILD_PROGRESS:+--progress "$SJSCC_BUILD_PROGRESS"} "$service" >&2
done
say "built in $(( $(date +%s) - start )) s: $(docker image inspect -f '{{.Size}}' sjscc-edge:latest sjscc-device:latest \
    | awk '{printf "%s%.2f GB", (NR > 1 ? ", " : ""), $1 / 1e9}') (edge, device)"
printf 'export SJSCC_BASE_IMAGE=%q SJSCC_TORCH_INDEX_URL=%q SJSCC_PIP_CA=%q\n' \
    "$SJSCC_BASE_IMAGE" "$SJSCC_TORCH_INDEX_URL" "${SJSCC_PIP_CA:-}"
