#!/usr/bin/env bash
# Every speed benchmark on one offline GPU host, in one go.
#
#   bash benchmarks/fetch_wheels.sh .whl      # where pip reaches an index
#   bash benchmarks/gpu.sh OUT_DIR [quick]    # on the GPU host, repo root
#
# The host needs jax (with CUDA), flax, optax, chex, orbax and torch; the
# rest of unetjax's dependencies come from the wheels in .whl, installed
# without network into a private folder. Each benchmark appends its JSON
# lines to OUT_DIR/<benchmark>.jsonl and its log to OUT_DIR/<benchmark>.log,
# so a benchmark that fails or runs out of time leaves the others' results;
# OUT_DIR/summary.md holds the tables of benchmarks/summarize.py. 'quick'
# times the U-Net alone (fp32 and bf16, batch 32) against PyTorch, for a
# first look in about two minutes.
set -uo pipefail
out=${1:?usage: bash benchmarks/gpu.sh OUT_DIR [quick]}
mode=${2:-full}
mkdir -p "$out"
. benchmarks/offline_env.sh
"$python" - <<'EOF' | tee "$out/host.log"
import jax, torch, flax, optax
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__,
      'optax', optax.__version__, 'torch', torch.__version__,
      'cuda', torch.cuda.is_available())
EOF
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm \
  --format=csv >> "$out/host.log" 2>&1

run() {  # run NAME ARGS...: one benchmark, its JSON lines and its log
  local name=$1; shift
  echo "== $name $*" | tee -a "$out/$name.log"
  "$python" -m "benchmarks.$name" "$@" --out="$out/$name.jsonl" \
    >> "$out/$name.log" 2>&1 || echo "!! $name failed (exit $?)" | tee -a "$out/$name.log"
}

if [ "$mode" = quick ]; then
  run train_throughput --preset=gpu --models=unet --torch
else
  run train_throughput --preset=gpu --models=unet --torch --batch_sizes=8,16,32,64
  run train_throughput --preset=gpu --models=unet_pp,attention_unet,resunet,resunet_pp,fcn8s
  run inference --preset=gpu --torch
  run augment_cost --config=configs/augmented.py --shapes=256x256x3 --batch_size=32
  run seeds_at_once --configs=default,kvasir_native --seeds=1,3,8 --layouts=vmap,loop
fi
"$python" -m benchmarks.summarize "$out" > "$out/summary.md"
cat "$out/summary.md"
