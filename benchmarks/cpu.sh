#!/usr/bin/env bash
# The speed benchmarks on this machine's CPU (the results in
# benchmarks/results/cpu and the README's Performance section):
#
#   pip install torch==2.13.0    # the PyTorch baseline (CPU build)
#   bash benchmarks/cpu.sh benchmarks/results/cpu [MANUAL_DIR]
#
# MANUAL_DIR holds Kvasir-SEG for the input pipeline benchmark (default
# ../shared/data/kvasir_seg; skipped when absent).
set -uo pipefail
out=${1:?usage: bash benchmarks/cpu.sh OUT_DIR [MANUAL_DIR]}
kvasir=${2:-../shared/data/kvasir_seg}
mkdir -p "$out"
rm -f "$out"/*.jsonl
export PYTHONUNBUFFERED=1
python -m benchmarks.train_throughput --preset=cpu --devices=1,2 --torch --out="$out/train_throughput.jsonl"
python -m benchmarks.inference --preset=cpu --torch --out="$out/inference.jsonl"
python -m benchmarks.layer_formulations --torch --out="$out/layer_formulations.jsonl"
# One core's share of the 2-device layout, op by op.
XLA_FLAGS=--xla_cpu_multi_thread_eigen=false taskset -c 0 python -m benchmarks.profile_step \
  --preset=cpu --batch_sizes=4 --out="$out/profile_step.jsonl"
python -m benchmarks.augment_cost --config=configs/augmented.py --out="$out/augment_cost.jsonl"
if [ -d "$kvasir" ]; then
  python -m benchmarks.input_pipeline --manual_dir="$kvasir" --steps=3 \
    --out="$out/input_pipeline.jsonl"
fi
python -m benchmarks.summarize "$out" | tee "$out/summary.md"
