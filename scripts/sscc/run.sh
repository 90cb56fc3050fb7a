#!/usr/bin/env bash
# Reproduce the "Joint or separate coding" section of docs/RESULTS.md (issue 24) on CPU, from the repo root.
# Every step appends or skips what is already there, so an interrupted run resumes.
#   scripts/sscc/run.sh            DATA=../shared/data PY=.venv/bin/python by default
# RUNGS: the trained CNN-q1..q7 bundles (scripts/reproduce-cpu.sh rate-ladder writes them to the default
# runs/cpu-wide/rate-ladder/bundles); without that folder the sources fall back to the re-quantised q8 latent.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}; DATA=${DATA:-../shared/data}; OUT=docs/results/sscc
RUNGS=${RUNGS:-runs/cpu-wide/rate-ladder/bundles}
rungs=(); [ -f "$RUNGS/cnn-q1/manifest.json" ] && rungs=(--rungs "$RUNGS")
export PYTHONPATH=$PWD
mkdir -p $OUT
# 1. BLER of every rate-matched CNN-q<n> code (k = 64 n + CRC16, n = budget x bits/symbol), soft and hard inputs
$PY scripts/sscc/bler.py --decisions soft --out $OUT/bler-awgn.jsonl
$PY scripts/sscc/bler.py --decisions hard --modulations bpsk --max-n 512 --out $OUT/bler-awgn-hard.jsonl
# 2. the picture codes (WebP payloads): rates 0.5 / 0.9 at 512-2048 coded bits
$PY scripts/sscc/bler.py --decisions soft --modulations none --out $OUT/bler-awgn-picture.jsonl \
  --extra 445:512:bpsk,445:512:16qam,496:1024:bpsk,906:1024:bpsk,496:1024:16qam,906:1024:16qam,1349:2048:bpsk,1349:2048:16qam
# 3. every source's per-image correctness on the two halves of the validation split
[ -f $OUT/sources.json ] || $PY scripts/sscc/sources.py --data-root "$DATA" --limit 2000 --picture-images 1000 "${rungs[@]}" --out $OUT/sources.json
# 4. direct runs that check the combination
[ -f $OUT/direct.jsonl ] || $PY scripts/sscc/direct.py --data-root "$DATA" "${rungs[@]}" --out $OUT/direct.jsonl \
  --points 2:128:qpsk:awgn:2.0,4:128:16qam:awgn:6.8,4:512:bpsk:awgn:-1.75,2:128:qpsk:rayleigh:10.0
# 5. the frontier: figure, JSON, table (erase and misclassify policies)
$PY scripts/sscc/frontier.py --results $OUT --data-root "$DATA"
$PY scripts/sscc/frontier.py --results $OUT --data-root "$DATA" --on-failure misclassify
