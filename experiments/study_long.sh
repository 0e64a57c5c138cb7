#!/usr/bin/env bash
# The study's `long` protocol on a 2-core machine, unattended: every dataset
# at its own resolution with its recipe, to convergence (about an hour per
# dataset on one core). Two sweep processes, each pinned to one core: core 0
# trains DRIVE then Kvasir-SEG, core 1 ISBI 2012. Re-running resumes every
# run where it stopped; the last step writes the tables and plots, and
# copies them, with each finished run's result.json, metrics.jsonl and
# config.json, to experiments/results/study_long.
#
#   bash experiments/study_long.sh [OUT]      (default ./runs/study_long)
set -uo pipefail
out=$(realpath -m "${1:-runs/study_long}")
cd "$(dirname "$0")/.."
results=experiments/results/study_long
mkdir -p "$out"
export UNETJAX_PROTOCOL=long
# Runs finished before (their result, metrics and config are committed in
# $results/runs) count as finished: only the others train.
for done in "$results"/runs/*/; do
  [ -d "$done" ] && [ ! -e "$out/$(basename "$done")" ] && cp -r "$done" "$out/"
done

one_core() {  # core, datasets...
  local core=$1
  shift
  for dataset in "$@"; do
    taskset -c "$core" python -m unetjax.ablation --sweep=experiments/study.py \
      --out="$out" --only="dataset=$dataset"
  done
}

one_core 0 drive kvasir_seg > "$out/core0.log" 2>&1 &
one_core 1 isbi2012_em > "$out/core1.log" 2>&1 &
wait
python -m unetjax.ablation --sweep=experiments/study.py --out="$out"
mkdir -p "$results/runs"
cp "$out"/results.csv "$out"/results.md "$out"/*.png "$results/"
for run in "$out"/*/result.json; do
  name=$(basename "$(dirname "$run")")
  mkdir -p "$results/runs/$name"
  cp "$out/$name"/{result.json,metrics.jsonl,config.json} "$results/runs/$name/"
done
