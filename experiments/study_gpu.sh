#!/usr/bin/env bash
# The whole study (experiments/study.py) in one unattended call on an offline
# accelerator host: the gpu protocol (256 px) by default.
#
#   bash benchmarks/fetch_wheels.sh .whl        # where pip reaches an index
#   bash experiments/study_gpu.sh OUT [DATA [ABLATION FLAGS]]   # on the host
#
# DATA holds isbi2012_em/, drive/ and kvasir_seg/ as in ../shared/data (the
# default), and may hold a tensorflow_datasets/ folder of datasets already
# prepared: experiments/pack_study_data.sh packs the study's data that way
# (~40 MB). The host needs jax, flax, optax, chex, orbax and scikit-learn
# (the pixel forest); the other dependencies come
# from the wheels in .whl (benchmarks/offline_env.sh). TFDS prepares the
# datasets under $SCRATCH/tensorflow_datasets and compiled programs are
# cached in $SCRATCH/jax_cache (SCRATCH=/tmp/unetjax-study unless set); the
# runs, results.csv, results.md, plots and logs land in OUT. Re-running the same
# command resumes the study; UNETJAX_PROTOCOL=cpu selects the other protocol;
# flags after DATA go to unetjax.ablation (e.g. --dry_run, --only=REGEX).
set -uo pipefail
out=$(realpath -m "${1:?usage: bash experiments/study_gpu.sh OUT [DATA]}")
data=$(realpath -m "${2:-../shared/data}")
cd "$(dirname "$0")/.."
scratch=${SCRATCH:-/tmp/unetjax-study}
mkdir -p "$out" "$scratch"
. benchmarks/offline_env.sh
export UNETJAX_PROTOCOL=${UNETJAX_PROTOCOL:-gpu} UNETJAX_DATA=$data
export TFDS_DATA_DIR=${TFDS_DATA_DIR:-$scratch/tensorflow_datasets}
if [ -d "$data/tensorflow_datasets" ]; then  # prepared datasets, to a writable copy
  mkdir -p "$TFDS_DATA_DIR" && cp -rn "$data/tensorflow_datasets/." "$TFDS_DATA_DIR/"
fi
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$scratch/jax_cache}
"$python" -c 'import jax; print("jax", jax.__version__, jax.devices())' \
  | tee "$out/host.log"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv >> "$out/host.log" 2>&1
start=$(date +%s)
"$python" -m unetjax.ablation --sweep=experiments/study.py --out="$out" \
  "${@:3}" 2>&1 | tee -a "$out/study.log"
status=${PIPESTATUS[0]}
echo "study: exit $status after $(( $(date +%s) - start )) s" | tee -a "$out/study.log"
exit "$status"
