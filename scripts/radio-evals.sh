#!/bin/bash
# Issue 21: accuracy against Eb/N0 for the given bundles over the radio links (val split; see docs/RADIO.md).
# usage: scripts/radio-evals.sh NAME:BUNDLE_DIR ...
# env: LIMIT images (first LIMIT of the val split; 0 = all), REPEATS channel draws, OUT folder, LINKS (which of the four
#      links below, by name), PY; each link's Eb/N0 grid is its SNRS_<NAME>. Resumable: an existing JSON is skipped.
set -euo pipefail
LIMIT=${LIMIT:-0}; REPEATS=${REPEATS:-3}; OUT=${OUT:-docs/results/radio/val5000}; PY=${PY:-python}
LINKS=${LINKS:-awgn-bpsk rayleigh-bpsk awgn-16qam rayleigh-16qam}
declare -A SNRS=(
  [awgn-bpsk]=${SNRS_AWGN_BPSK:--10,-8,-6,-4,-2,0,2,4,8}
  [rayleigh-bpsk]=${SNRS_RAYLEIGH_BPSK:--2,0,2,4,6,10}
  [awgn-16qam]=${SNRS_AWGN_16QAM:--4,-2,0,2,4,6}
  [rayleigh-16qam]=${SNRS_RAYLEIGH_16QAM:-0,4,8,12,16}
)
mkdir -p "$OUT"
for item in "$@"; do
  name=${item%%:*}; bundle=${item#*:}
  for link in $LINKS; do
    kind=${link%%-*}; modulation=${link#*-}
    # one run per link: soft decisions, the hard decisions of the same received symbols (--paired-hard: a
    # paired soft - hard interval) and the BSC of the same closed-form BER beside every Eb/N0
    out="$OUT/$name-$kind-$modulation-packet.json"
    [ -f "$out" ] && continue
    start=$(date +%s)
    $PY -m sjscc.cli eval --bundle "$bundle" --data-root "${DATA:-../shared/data}" --split val --limit "$LIMIT" \
      --repeats "$REPEATS" --energy-images 0 --quiet --channel "$kind" --modulation "$modulation" \
      --coherence packet --decisions soft --paired-hard --snr-db="${SNRS[$link]}" --out "$out" > /dev/null
    echo "$out $(( $(date +%s) - start )) s"
  done
done
