#!/usr/bin/env bash
# Packs the study's data small, for an accelerator host that receives it
# over a limited upload: ISBI 2012 EM and DRIVE already prepared as TFDS
# datasets at the sizes of the protocol in UNETJAX_PROTOCOL (gpu by default:
# a few MB, where their source files take 36 MB; long_gpu: the native
# datasets of the long recipes, ~20 MB), Kvasir-SEG as its source JPEGs
# (32 MB; prepared it is ~90 MB, so the host prepares it).
# experiments/study_gpu.sh takes DEST as its DATA.
#
#   [UNETJAX_PROTOCOL=long_gpu] bash experiments/pack_study_data.sh DEST [SOURCE]
#   (SOURCE: ../shared/data)
set -euo pipefail
dest=$(realpath -m "${1:?usage: bash experiments/pack_study_data.sh DEST [SOURCE]}")
src=$(realpath -m "${2:-../shared/data}")
cd "$(dirname "$0")/.."
mkdir -p "$dest"
python - "$dest/tensorflow_datasets" "$src" <<'PY'
import importlib.util, os, sys
import ml_collections
from unetjax.data import pipeline
data_dir, source = sys.argv[1:]
spec = importlib.util.spec_from_file_location('study', 'experiments/study.py')
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)
long = os.environ.get('UNETJAX_PROTOCOL', 'gpu').startswith('long')
for name in ('isbi2012_em', 'drive'):
  dataset = (study.LONG_RECIPES[name].get_config().dataset.name if long
             else f'{name}/{study.PROTOCOLS["gpu"][name][0]}px')
  info = pipeline.prepare(ml_collections.ConfigDict({
      'name': dataset, 'data_dir': data_dir,
      'manual_dir': os.path.join(source, name)}))
  print(info.name, info.split_sizes)
PY
rm -rf "$dest/tensorflow_datasets/downloads"
cp -r "$src/kvasir_seg" "$dest/"
du -sh "$dest"
