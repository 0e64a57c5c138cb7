#!/usr/bin/env bash
# The study's CPU protocol on a 2-core machine, unattended: two sweep
# processes, each pinned to one core (small convolutions use two cores
# poorly: two runs side by side train ~1.5x faster than one after another).
# Core 0 trains the runs without augmentation and the pixel forests, core 1
# the augmented runs, seed by seed, so an interrupted study still holds whole
# seeds. Re-running resumes it; the last step writes the tables and plots.
#
#   bash experiments/study_cpu.sh [OUT]      (default ./runs/study_cpu)
set -uo pipefail
out=$(realpath -m "${1:-runs/study_cpu}")
cd "$(dirname "$0")/.."
mkdir -p "$out"
export UNETJAX_PROTOCOL=cpu

one_core() {  # core, augmentation label
  for seed in 0 1 2; do
    taskset -c "$1" python -m unetjax.ablation --sweep=experiments/study.py \
      --out="$out" --only="aug=$2,seed=$seed"
  done
}

one_core 0 off > "$out/core0.log" 2>&1 &
one_core 1 on > "$out/core1.log" 2>&1 &
wait
python -m unetjax.ablation --sweep=experiments/study.py --out="$out"
