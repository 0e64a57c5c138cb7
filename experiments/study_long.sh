#!/usr/bin/env bash
# The study's `long` protocol on a 2-core machine, unattended: every dataset
# at its own resolution with its recipe, to convergence, with and without the
# recipe's augmentation (about an hour per run on one core). Two sweep
# processes, each pinned to one core, three runs each: core 0 trains DRIVE
# (on, off) then Kvasir-SEG (on), core 1 ISBI 2012 (on, off) then Kvasir-SEG
# (off). Re-running resumes every
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

one_core() {  # core, run-name patterns...
  local core=$1
  shift
  for pattern in "$@"; do
    taskset -c "$core" python -m unetjax.ablation --sweep=experiments/study.py \
      --out="$out" --only="$pattern"
  done
}

one_core 0 dataset=drive, 'dataset=kvasir_seg,.*aug=on' > "$out/core0.log" 2>&1 &
one_core 1 dataset=isbi2012_em, 'dataset=kvasir_seg,.*aug=off' \
  > "$out/core1.log" 2>&1 &
wait
python -m unetjax.ablation --sweep=experiments/study.py --out="$out"
mkdir -p "$results/runs"
cp "$out"/results.csv "$out"/results.md "$out"/*.png "$results/"
for run in "$out"/*/result.json; do
  name=$(basename "$(dirname "$run")")
  mkdir -p "$results/runs/$name"
  cp "$out/$name"/{result.json,metrics.jsonl,config.json} "$results/runs/$name/"
done
