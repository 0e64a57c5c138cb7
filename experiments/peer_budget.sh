#!/usr/bin/env bash
# The planned recipe, the hand-tuned *_native.py recipe and MONAI's
# BasicUNet at the same wall-time budget, on DRIVE, ISBI 2012 (512 px) and
# Kvasir-SEG from ../shared/data, one CPU core, one seed per call.
#
#   bash experiments/peer_budget.sh OUT BUDGET SEED CORE [DATASET...]
#   bash experiments/peer_budget.sh runs/peer_budget 10m 0 1 drive isbi kvasir
#   RECIPES=planned bash experiments/peer_budget.sh ...   # without the hand-tuned one
#   PEER_CORE=1 bash experiments/peer_budget.sh runs/peer_budget 10m 0 0 drive
#       # the peer on core 1, started with the first recipe's run on core 0
#
# For each dataset: `unetjax.plan --budget` writes OUT/<dataset>/planned.py
# (its --explain table beside it) and `--keep_recipe` fits the hand-tuned
# recipe to the same budget (hand.py); unetjax.main trains both; the peer
# (benchmarks/peer_monai.py, the 'peers' extra) trains BasicUNet on the
# planned config's data settings (patch, batch, flips) at the planned width
# with --budget_s, after the recipes on the same core, or beside them on
# PEER_CORE (each side then shares the machine with a training neighbour, as
# the plan's probe did when it ran beside one). Each command's wall time goes to OUT/times.jsonl next to
# the plan's prediction, and OUT/results.md tabulates them
# (experiments/peer_budget_table.py). A finished step is skipped, so re-running resumes.
set -uo pipefail
out=$(realpath -m "$1"); budget=$2; seed=$3; core=$4; shift 4
cd "$(dirname "$0")/.."
declare -A CONFIG=([drive]=drive_native [isbi]=membranes_native [kvasir]=kvasir_native)
declare -A DATA=([drive]=drive [isbi]=isbi2012_em [kvasir]=kvasir_seg)
seconds=$(python -c "from unetjax.plan import budget; print(budget.parse('$budget').seconds)")

timed() {  # core, name, predicted seconds, command...
  local on=$1 name=$2 predicted=$3; shift 3
  local start; start=$(date +%s.%N)
  taskset -c "$on" "$@" || return 1
  python -c "import json, time; print(json.dumps({'run': '$name', 'seed': $seed, \
'budget': '$budget', 'wall_s': round(time.time() - $start, 1), \
'predicted_s': $predicted}))" >> "$out/times.jsonl"
}

predicted() {  # the planned config's predicted wall time, from its docstring
  python -c "import re, sys; m = re.search(r'predicted wall time .*? ([0-9.]+) min', open(sys.argv[1]).read()); print(float(m.group(1)) * 60)" "$1"
}

run_peer() {  # core: BasicUNet at the planned width, data settings and budget
  local width
  width=$(python -c "import re, sys; print(re.search(r'base_filters = (\d+)', open(sys.argv[1]).read()).group(1))" "$dir/planned-$budget.py")
  timed "$1" "$dataset/basic_unet" "$seconds" python -m benchmarks.peer_monai \
    --config="$dir/planned-$budget.py" --network=basic_unet --width="$width" \
    --seed="$seed" --steps=1000000 --budget_s="$seconds" --threads=1 \
    --out="$peer"
}

for dataset in "$@"; do
  dir=$out/$dataset; mkdir -p "$dir"
  base=(--config.dataset.manual_dir="../shared/data/${DATA[$dataset]}")
  for recipe in ${RECIPES:-planned hand}; do
    cfg=$dir/$recipe-$budget.py
    keep=(); [[ $recipe == hand ]] && keep=(--keep_recipe)
    if [[ ! -f $cfg ]]; then
      taskset -c "$core" python -m unetjax.plan --config="configs/${CONFIG[$dataset]}.py" \
        "${base[@]}" --budget="$budget" --out="$cfg" --explain --cpu_devices=1 \
        "${keep[@]}" > "$dir/$recipe-$budget.explain.txt" || exit 1
    fi
  done
  peer=$dir/basic_unet-$budget-seed$seed.json
  peer_pid=
  if [[ -n ${PEER_CORE:-} && ! -f $peer ]]; then
    run_peer "$PEER_CORE" &
    peer_pid=$!
  fi
  for recipe in ${RECIPES:-planned hand}; do
    cfg=$dir/$recipe-$budget.py
    run=$dir/$recipe-$budget-seed$seed
    if ! grep -qs '"event": "final"' "$run/metrics.jsonl"; then
      timed "$core" "$dataset/$recipe" "$(predicted "$cfg")" python -m unetjax.main \
        --config="$cfg" --config.seed="$seed" --workdir="$run" --cpu_devices=1 || exit 1
    fi
  done
  if [[ -n $peer_pid ]]; then
    wait "$peer_pid" || exit 1
  elif [[ ! -f $peer ]]; then
    run_peer "$core" || exit 1
  fi
done
python experiments/peer_budget_table.py "$out" > "$out/results.md"
