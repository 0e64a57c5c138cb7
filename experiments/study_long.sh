#!/usr/bin/env bash
# The study's `long` protocol on a 2-core machine, unattended: every dataset
# at its own resolution with its recipe, with and without the recipe's
# augmentation, one run after another, each data parallel over both cores
# (--cpu_devices=2; each recipe is sized for about an hour that way).
# Re-running resumes every run where it stopped; the last step writes the
# tables and plots, and copies them, with each finished run's result.json,
# metrics.jsonl and config.json, to experiments/results/study_long.
#
#   bash experiments/study_long.sh [OUT] [--only=REGEX]   (default OUT ./runs/study_long)
set -uo pipefail
out=$(realpath -m "${1:-runs/study_long}")
shift || true
cd "$(dirname "$0")/.."
results=experiments/results/study_long
mkdir -p "$out"
export UNETJAX_PROTOCOL=long
# Runs finished before (their result, metrics and config are committed in
# $results/runs) count as finished: only the others train.
for done in "$results"/runs/*/; do
  [ -d "$done" ] && [ ! -e "$out/$(basename "$done")" ] && cp -r "$done" "$out/"
done

# Trains the runs not finished (those --only names), then writes the tables
# and plots of every finished run.
python -m unetjax.ablation --sweep=experiments/study.py --out="$out" \
  --cpu_devices=2 "$@" > "$out/train.log" 2>&1
mkdir -p "$results/runs"
cp "$out"/results.csv "$out"/results.md "$out"/*.png "$results/"
for run in "$out"/*/result.json; do
  name=$(basename "$(dirname "$run")")
  mkdir -p "$results/runs/$name"
  cp "$out/$name"/{result.json,metrics.jsonl,config.json} "$results/runs/$name/"
done
