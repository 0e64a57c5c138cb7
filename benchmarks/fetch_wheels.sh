#!/usr/bin/env bash
# Downloads, into DIR (default .whl), the wheels that an offline GPU host
# with jax, flax, optax, chex, orbax, torch, numpy, scipy, pillow, tqdm,
# matplotlib, etils, protobuf, pyarrow, psutil, requests and wrapt lacks to
# run unetjax (Python 3.12, x86-64 Linux). benchmarks/gpu.sh installs them
# there without network. Run it where pip reaches an index.
set -euo pipefail
dir=${1:-.whl}
mkdir -p "$dir"
packages=(
  ml-collections==1.1.0 tensorboardX==2.6.5
  tensorflow-datasets==4.9.10 array-record==0.8.6 grain==0.2.18
  portpicker==1.6.0 dm-tree==0.1.10 immutabledict==4.3.1
  simple-parsing==0.1.9 docstring-parser==0.18.0 tensorflow-metadata==1.21.0
  googleapis-common-protos==1.76.0 termcolor==3.3.0 toml==0.10.2
  importlib-resources==7.1.0
  scikit-image==0.26.0 imageio==2.38.2 lazy-loader==0.6 networkx==3.6.1
  tifffile==2026.3.3
)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$dir" "${packages[@]}"
# Pure-Python packages published as source only: build their wheels here.
python3 -m pip wheel -q --no-deps -w "$dir" promise==2.3
ls "$dir"
du -sh "$dir"
