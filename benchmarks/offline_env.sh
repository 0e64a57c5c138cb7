# Sourced by the scripts for an offline accelerator host (benchmarks/gpu.sh,
# experiments/study_gpu.sh): installs the wheels of .whl (made by
# benchmarks/fetch_wheels.sh) without network into /tmp/unetjax-site, puts
# that folder on PYTHONPATH and sets $python. The host brings jax, flax,
# optax, chex and orbax (and torch for the benchmarks).
python=${PYTHON:-python3}
if [ -d .whl ]; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/unetjax-site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/unetjax-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
