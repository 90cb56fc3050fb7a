#!/bin/bash
# Issue 21: accuracy against Eb/N0 for the given bundles over the radio links (val split; see docs/RADIO.md).
# usage: scripts/radio-evals.sh NAME:BUNDLE_DIR ...   (env: LIMIT images, REPEATS draws, SNRS, OUT folder)
set -euo pipefail
LIMIT=${LIMIT:-1000}; REPEATS=${REPEATS:-2}; SNRS=${SNRS:--2,0,2,4,6,8}; OUT=${OUT:-docs/results/radio}
PY=${PY:-python}
mkdir -p "$OUT"
for item in "$@"; do
  name=${item%%:*}; bundle=${item#*:}
  for link in "awgn bpsk packet" "rayleigh bpsk packet" "awgn 16qam packet"; do
    set -- $link
    for decisions in hard soft; do
      extra=(--no-bsc-equivalent); [ "$decisions" = hard ] && extra=()
      out="$OUT/$name-$1-$2-$3-$decisions.json"
      [ -f "$out" ] && continue
      start=$(date +%s)
      $PY -m sjscc.cli eval --bundle "$bundle" --data-root /work/shared/data --split val --limit "$LIMIT" \
        --repeats "$REPEATS" --energy-images 0 --quiet --channel "$1" --modulation "$2" --coherence "$3" \
        --decisions "$decisions" --snr-db="$SNRS" "${extra[@]}" --out "$out" > /dev/null
      echo "$out $(( $(date +%s) - start )) s"
    done
  done
done
