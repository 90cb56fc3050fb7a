#!/usr/bin/env bash
# The CPU-scale reproduction of issue 5, stage by stage (no argument, help or -h: this text, exit 0). Every stage
# is resumable: a finished bundle is skipped, an interrupted training continues from its last epoch checkpoint.
#   scripts/reproduce-cpu.sh backbone        step 1 (quarter-width ResNet-18 on CIFAR-10, 12 epochs)
#   scripts/reproduce-cpu.sh backbone-long   step 1's second leg: 30 more epochs from the 12-epoch weights
#   scripts/reproduce-cpu.sh backbone-wide   a half-width ResNet-18 (30 epochs) for the >= 90% target (LINEAGE=v3)
#   scripts/reproduce-cpu.sh backbone-wide-extend   its second leg: 8 epochs, label smoothing 0.1
#   scripts/reproduce-cpu.sh default         the two shipped bundles (SNN T=8 BSC 0.15 and its CNN-q8)
#   scripts/reproduce-cpu.sh fig4 [T]        SNN and CNN-q<T> on BSC/BEC 0.15/0.25 (T = 8 by default)
#   scripts/reproduce-cpu.sh ablations       IF / IHF / IHF-m without the regularizer; alpha 0.3/0.7
#   scripts/reproduce-cpu.sh ladder          the matched-bits CNN ladder: 1-, 2-, 4-bit quantizers on c2*8/n channels
#                                            (512 bits like the shipped pair; the 8-bit rung is the shipped CNN-q8)
#   scripts/reproduce-cpu.sh seeds           training seeds 1 and 2 of the SNN, CNN-q8 and CNN-q1 (seed 0: the runs
#                                            above), for paired SNN - CNN gaps (scripts/results_tables.py --gap-*)
#   scripts/reproduce-cpu.sh bursts          the SNN, CNN-q8 and CNN-q1 on the Gilbert-Elliott channel (mean burst
#                                            BURST=8 bits), without and with the bit interleaver
#   scripts/reproduce-cpu.sh train NAME...   named runs, e.g. snn-T4-bec0.25, cnn-T8-bsc0.15, snn-T8-bsc0.15-ihfm;
#                                            variants can be chained: cnn-T1-bsc0.15-c32-s2 (c2 = 32, training seed 2)
#   scripts/reproduce-cpu.sh eval NAME...    sweeps for named runs into $RESULTS (waits for the bundle); SWEEPS picks
#                                            the channels (bsc, bec, ge, ge-il: GE with the interleaver INTERLEAVE)
#   scripts/reproduce-cpu.sh matched         issue 16 in one go (LINEAGE=v3s): the ladder, the three seeds of the SNN,
#                                            CNN-q8 and CNN-q1, each swept as soon as it is trained (BSC; seed 0 also
#                                            BEC, GE and GE + interleaver; the ladder's rungs BSC and BEC)
#   scripts/reproduce-cpu.sh rate-ladder     issue 15's fixed-rate ladder: CNN-q<n>, n = 1..7, at the shipped CNN-q8's
#                                            latent size (64 n bits), each warm-started from bundles/baseline-cnn-q8
#                                            (backbone and codec) and fine-tuned, swept at BSC p = 0, 0.1, 0.2
#   scripts/reproduce-cpu.sh progressive     the progressive codec from bundles/default -> bundles/progressive
#   scripts/reproduce-cpu.sh progressive-eval   its sweep (BSC 0, 0.1, 0.2) with --confidence and fixed prefixes, and
#                                            CNN-q8 cut after t bit planes, into $RESULTS/progressive
# Run names, lineages and the runs of each stage are code: sjscc/training/runs.py (python -m sjscc.training.runs),
# run with PYTHON (default .venv/bin/python, else python3).
# JOBS=2 runs two trainings side by side (one thread each; the backbone stages use BACKBONE_THREADS=2).
# LINEAGE picks a backbone and the trees that go with it (each default can be overridden by RUNS (run folders),
# BACKBONE (the step-1 run the codecs start from), BUNDLES, SHIPPED (where the two shipped runs go), RESULTS and
# CODEC (the step-2/3 config pair)):
#   v1, v2, v3 (default), v3s: what each is and where it lands, LINEAGES in sjscc/training/runs.py.
# A BACKBONE folder with a manifest.json is a bundle: its head and tail (not its codec) start step 2.
# REPEATS (10) channel draws per point; GE_PS the mean error rates of the burst sweeps.
set -euo pipefail
SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
cd "$(dirname "$0")/.."
SJSCC=${SJSCC:-.venv/bin/sjscc}
CFG=sjscc/training/configs
DATA=${DATA:-../shared/data}
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
runs() { "$PYTHON" -m sjscc.training.runs "$@"; }
lineage=$(runs lineage "${LINEAGE:-v3}") || exit 2
eval "$lineage"  # runs= bb= shipped= results= codec=, shell-quoted by runs.py
RUNS=${RUNS:-$runs}
BACKBONE=${BACKBONE:-$bb}
BUNDLES=${BUNDLES:-$RUNS/bundles}
SHIPPED=${SHIPPED:-$shipped}
RESULTS=${RESULTS:-$results}
CODEC=${CODEC:-$codec}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

plan() {  # defines describe NAME (sets run_bundle, run_overrides, run_sweeps, run_matched_sweeps) for the runs
  local code; code=$(runs plan "$@" --shipped "$SHIPPED" --bundles "$BUNDLES") || exit 2
  eval "$code"
}

train_run() {
  local name=$1; describe "$name" || return 1
  if [ -f "$run_bundle/manifest.json" ]; then echo "== $name: bundle exists, skipped"; return; fi
  local o=("${run_overrides[@]}")
  echo "== $name -> $run_bundle"
  local t0=$SECONDS; mkdir -p "$RUNS"
  local cache=(--set "feature_cache=$RUNS/feature-cache") init=(--set "init=$BACKBONE")
  if [ -f "$BACKBONE/manifest.json" ]; then
    init=(--set "init=" --set "init_bundle=$BACKBONE" --set init_bundle_codec=false)
  fi
  $SJSCC train --config $CFG/$CODEC-step2.yaml --set "out=$RUNS/$name/step2" "${init[@]}" \
    "${cache[@]}" "${o[@]}" --resume
  $SJSCC train --config $CFG/$CODEC-step3.yaml --set "out=$RUNS/$name/step3" \
    --set "init=$RUNS/$name/step2" --set "export=$run_bundle" "${cache[@]}" "${o[@]}" --resume
  echo "{\"run\": \"$name\", \"wall_seconds\": $((SECONDS - t0))}" >> "$RUNS/timings.jsonl"
}

eval_run() {  # a run is swept on the channel it was trained on; the two shipped bundles on both
  local name=$1 chan; describe "$name" || return 1; mkdir -p "$RESULTS"
  for chan in ${SWEEPS:-$run_sweeps}; do
    local ps="0,0.05,0.1,0.15,0.2,0.25,0.3,0.35" link=(); [ $chan = bec ] && ps="0,0.1,0.2,0.3,0.4,0.5,0.6"
    case $chan in  # the burst channel at the BSC sweep's mean error rates, mean burst BURST bits
      ge) link=(--burst "${BURST:-8}"); ps=${GE_PS:-$ps} ;;
      ge-il) link=(--burst "${BURST:-8}" --interleave "${INTERLEAVE:-1}"); ps=${GE_PS:-$ps} ;;
    esac
    [ -f "$RESULTS/$name-$chan.json" ] && continue
    $SJSCC eval --bundle "$run_bundle" --data-root "$DATA" --dataset cifar10 --split val --channel ${chan%-il} \
      --p "$ps" --repeats "${REPEATS:-10}" "${link[@]}" --out "$RESULTS/$name-$chan.json"
  done
}

train_backbone() {  # step 1 alone on the machine: both cores
  OMP_NUM_THREADS=${BACKBONE_THREADS:-2} $SJSCC train --config "$CFG/$1" --resume
}

train_progressive() {  # steps 2 and 3 of the progressive codec, warm-started from the shipped SNN bundle
  local bundle=${PROGRESSIVE:-bundles/progressive}
  if [ -f "$bundle/manifest.json" ]; then echo "== progressive: $bundle exists, skipped"; return; fi
  local t0=$SECONDS
  $SJSCC train --config $CFG/cpu-progressive-step2.yaml --set "data.root=$DATA" --resume
  $SJSCC train --config $CFG/cpu-progressive-step3.yaml --set "data.root=$DATA" --set "export=$bundle" --resume
  mkdir -p "$RUNS"; echo "{\"run\": \"progressive\", \"wall_seconds\": $((SECONDS - t0))}" >> "$RUNS/timings.jsonl"
}

train_rung() {  # issue 15's fixed-rate ladder: CNN-q<n> at CNN-q8's latent size, fine-tuned from the shipped CNN-q8
  local n=$1 name="cnn-q$1-rate" bundle out=$RUNS/rate-ladder; bundle=$out/bundles/cnn-q$1
  local o=(--set "model.codec=cnn-q$n" --set "model.codec_config.timesteps=$n" --set alpha=null
           --set "feature_cache=$RUNS/feature-cache" --set "data.root=$DATA")
  if ! [ -f "$bundle/manifest.json" ]; then
    local t0=$SECONDS; mkdir -p "$RUNS"
    $SJSCC train --config $CFG/$CODEC-step2.yaml --set "out=$out/cnn-q$n/step2" --set "init=" \
      --set init_bundle=bundles/baseline-cnn-q8 --set optim.epochs=2 --set optim.step_epochs=1 "${o[@]}" --resume
    $SJSCC train --config $CFG/$CODEC-step3.yaml --set "out=$out/cnn-q$n/step3" --set "init=$out/cnn-q$n/step2" \
      --set optim.epochs=1 --set export_repeats=2 --set "export=$bundle" "${o[@]}" --resume
    echo "{\"run\": \"$name\", \"wall_seconds\": $((SECONDS - t0))}" >> "$RUNS/timings.jsonl"
  fi
  local json=$RESULTS/progressive/cnn-q$n-rate.json
  [ -f "$json" ] || $SJSCC eval --bundle "$bundle" --data-root "$DATA" --dataset cifar10 --split val --channel bsc \
    --p 0,0.1,0.2 --repeats "${REPEATS:-10}" --out "$json"
}

matched_run() {  # train one issue-16 run, then sweep it: seed 0 on every channel, the ladder on BSC + BEC
  local name=$1
  train_run "$name"
  SWEEPS=$run_matched_sweeps eval_run "$name"
}

parallel() {  # run "$fn name" for each name, JOBS at a time
  local fn=$1; shift
  export SJSCC CFG DATA RUNS BACKBONE BUNDLES SHIPPED RESULTS CODEC PYTHON
  printf '%s\n' "$@" | xargs -P "${JOBS:-2}" -I{} bash -c \
    "$(declare -f runs describe train_run eval_run matched_run train_rung); $fn {}"
}

usage() {  # the header above, then the stages on one line
  sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d' | sed 's/^# \{0,1\}//'
  echo "usage: ${SCRIPT#"$PWD"/} backbone|backbone-long|backbone-wide|backbone-wide-extend|default|fig4 [T]|ablations|ladder|seeds|bursts|matched|rate-ladder [N...]|train NAME...|eval NAME...|progressive|progressive-eval"
}

stage_runs() { mapfile -t names < <(runs stage "$@"); plan "${names[@]}"; }

# No argument prints the usage and exits 0: every stage trains for hours, so none runs unasked.
stage=${1:-help}; shift || true
case "$stage" in
  help|-h|--help) usage; exit 0 ;;
  backbone) train_backbone cpu-backbone.yaml ;;
  backbone-long) train_backbone cpu-backbone-extend.yaml ;;
  backbone-wide) train_backbone cpu-backbone-wide.yaml ;;
  backbone-wide-extend) train_backbone cpu-backbone-wide-extend.yaml ;;
  default|ablations|ladder|seeds) stage_runs "$stage"; parallel train_run "${names[@]}" ;;
  fig4) stage_runs fig4 "${1:-8}"; parallel train_run "${names[@]}" ;;
  bursts) stage_runs bursts; for name in "${names[@]}"; do SWEEPS="ge ge-il" eval_run "$name"; done ;;
  matched) stage_runs matched; parallel matched_run "${names[@]}" ;;
  rate-ladder) [ $# -gt 0 ] || set -- 1 2 3 4 5 6 7; parallel train_rung "$@" ;;
  train) [ $# -gt 0 ] || { echo "train: name the runs, e.g. snn-T8-bsc0.15 cnn-T8-bsc0.15" >&2; exit 2; }
    plan "$@"; parallel train_run "$@" ;;
  progressive) train_progressive ;;
  progressive-eval) mkdir -p "$RESULTS/progressive"  # the bundle, then CNN-q8 cut after t bit planes
    out=$RESULTS/progressive
    [ -f "$out/progressive-bsc.json" ] || $SJSCC eval --bundle "${PROGRESSIVE:-bundles/progressive}" --data-root "$DATA" \
      --dataset cifar10 --split val --channel bsc --p 0,0.1,0.2 --repeats "${REPEATS:-10}" \
      --confidence 0.5,0.8,0.9,0.95,0.98,0.99,0.995 --out "$out/progressive-bsc.json"
    [ -f "$out/cnn-q8-prefixes-bsc.json" ] || $SJSCC eval --bundle bundles/baseline-cnn-q8 --data-root "$DATA" \
      --dataset cifar10 --split val --channel bsc --p 0,0.1,0.2 --repeats "${REPEATS:-10}" --prefixes \
      --out "$out/cnn-q8-prefixes-bsc.json" ;;
  eval) [ $# -gt 0 ] || { echo "eval: name the runs, e.g. snn-T8-bsc0.15" >&2; exit 2; }
    plan "$@"; for name in "$@"; do  # in order, each as soon as its bundle exists
      describe "$name"; until [ -f "$run_bundle/manifest.json" ]; do sleep 20; done
      eval_run "$name"
    done ;;
  *) echo "unknown stage $stage" >&2; usage >&2; exit 2 ;;
esac
