"""The classical baseline: a random forest classifying each pixel from a
filter bank (intensity, edges and texture at several scales; the approach of
ilastik and Fiji's Trainable Weka Segmentation).

It reads the same prepared TFDS dataset as the networks (same splits,
resolution and roi), fits on a random subsample of the training pixels, and
is scored by `unetjax.metrics` on the same confusion counts, so its numbers
sit in the same tables. In a sweep, `config.model = pixel_forest.default_config()`
(name 'pixel_forest') selects it; its fields are below.

Needs scikit-learn: pip install -e '.[experiments]'.
"""

import functools
import math
import time
from typing import Any, Iterator

import jax
import ml_collections
import numpy as np
from skimage import feature

from unetjax import configuration
from unetjax import extras
from unetjax import logs
from unetjax import metrics
from unetjax import workdir as workdir_lib
from unetjax.data import pipeline
from unetjax.errors import ConfigError

NAME = 'pixel_forest'
_FEATURE = 'The pixel forest baseline (config.model.name=pixel_forest)'
_FIELD_TYPES = {
    'name': (str,), 'n_classes': (int,), 'n_estimators': (int,),
    'max_depth': (int,), 'min_samples_leaf': (int,), 'train_pixels': (int,),
    'sigma_min': (int, float), 'sigma_max': (int, float), 'num_sigma': (int,),
    'intensity': (bool,), 'edges': (bool,), 'texture': (bool,),
    'n_jobs': (int,),
}


def default_config() -> ml_collections.ConfigDict:
  """The config.model section of the baseline."""
  return ml_collections.ConfigDict({
      'name': NAME,
      'n_classes': 1,  # 1 = binary (as the networks' sigmoid configs); K = K classes
      'n_estimators': 50,  # trees
      'max_depth': 16,  # 0 = grow until pure
      'min_samples_leaf': 1,
      'train_pixels': 100_000,  # pixels drawn from the train split (roi only)
      'sigma_min': 0.5,  # Gaussian scales of the filter bank, pixels
      'sigma_max': 8.0,
      'num_sigma': 0,  # scales between them, log-spaced; 0 = one per octave
      'intensity': True,  # smoothed intensity per scale
      'edges': True,  # gradient magnitude per scale
      'texture': True,  # Hessian eigenvalues per scale
      'n_jobs': -1,  # scikit-learn worker processes; -1 = all cores
  })


def check_config(model_config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for unknown, missing or mistyped fields, and
  MissingExtraError without scikit-learn."""
  extras.check('sklearn', 'experiments', _FEATURE)
  problems = []
  for key, value in model_config.items():
    if key not in _FIELD_TYPES:
      problems.append(f'config.model.{key} is not a field of the pixel forest; '
                      f'it takes: {", ".join(sorted(_FIELD_TYPES))}')
    elif isinstance(value, bool) != (bool in _FIELD_TYPES[key]) or not isinstance(
        value, _FIELD_TYPES[key]):
      problems.append(f'config.model.{key}={value!r} should be '
                      f'{" or ".join(t.__name__ for t in _FIELD_TYPES[key])}')
  for key in set(_FIELD_TYPES) - set(model_config.keys()):
    problems.append(f'config.model.{key} is missing (pixel_forest.default_config '
                    'has every field)')
  if not problems and not 0 < model_config.sigma_min <= model_config.sigma_max:
    problems.append('config.model needs 0 < sigma_min <= sigma_max')
  if problems:
    raise ConfigError('Invalid pixel forest config:\n  ' + '\n  '.join(problems))


def features(image: np.ndarray, model_config: ml_collections.ConfigDict) -> np.ndarray:
  """(H, W, F) float32 filter responses of a uint8 (H, W, C) image."""
  num_sigma = model_config.num_sigma or None
  return feature.multiscale_basic_features(
      image.astype(np.float32) / 255.0, intensity=model_config.intensity,
      edges=model_config.edges, texture=model_config.texture,
      sigma_min=model_config.sigma_min, sigma_max=model_config.sigma_max,
      num_sigma=num_sigma, channel_axis=-1).astype(np.float32)


def _examples(dataset_config: ml_collections.ConfigDict,
              split: str) -> Iterator[dict[str, np.ndarray]]:
  """The examples of `split` in order, as the networks' evaluation reads them."""
  for batch in pipeline.eval_batches(dataset_config, split, 16):
    for i in np.flatnonzero(batch['valid']):
      yield {k: v[i] for k, v in batch.items()}


def fit(config: ml_collections.ConfigDict, info: pipeline.DatasetInfo):
  """A RandomForestClassifier on `train_pixels` pixels drawn uniformly from
  the roi of each training image (an equal share per image)."""
  ensemble = extras.require('sklearn.ensemble', 'experiments', _FEATURE)
  model_config = config.model
  rng = np.random.default_rng(config.seed)
  per_image = math.ceil(model_config.train_pixels / info.split_sizes['train'])
  inputs, targets = [], []
  for example in _examples(config.dataset, 'train'):
    roi = example.get('roi', np.ones(example['mask'].shape, bool)).astype(bool)
    pixels = np.flatnonzero(roi)
    chosen = rng.choice(pixels, min(per_image, len(pixels)), replace=False)
    responses = features(example['image'], model_config)
    inputs.append(responses.reshape(-1, responses.shape[-1])[chosen])
    targets.append(example['mask'].reshape(-1)[chosen])
  forest = ensemble.RandomForestClassifier(
      n_estimators=model_config.n_estimators,
      max_depth=model_config.max_depth or None,
      min_samples_leaf=model_config.min_samples_leaf,
      n_jobs=model_config.n_jobs, random_state=config.seed)
  return forest.fit(np.concatenate(inputs), np.concatenate(targets))


def probabilities(forest, images: np.ndarray,
                  model_config: ml_collections.ConfigDict,
                  n_classes: int) -> np.ndarray:
  """(N, H, W, n_classes) class probabilities of uint8 images (N, H, W, C),
  in one call to the forest; classes absent from the training pixels get 0."""
  responses = np.stack([features(image, model_config) for image in images])
  known = forest.predict_proba(responses.reshape(-1, responses.shape[-1]))
  full = np.zeros((len(known), n_classes), np.float32)
  full[:, forest.classes_.astype(int)] = known
  return full.reshape(responses.shape[:3] + (n_classes,))


def predict(forest, images: np.ndarray, model_config: ml_collections.ConfigDict,
            n_classes: int) -> np.ndarray:
  """(N, H, W) class ids: the most probable class (ties: the lower id)."""
  return np.argmax(probabilities(forest, images, model_config, n_classes), -1)


def as_logits(probs: np.ndarray, binary: bool) -> np.ndarray:
  """Probabilities as the logits `metrics.predict_classes` expects: one
  log-odds channel for binary (sigmoid) configs, else log-probabilities."""
  log_p = np.log(np.clip(probs, 1e-7, 1.0))
  return (log_p[..., 1:2] - log_p[..., 0:1]) if binary else log_p


def evaluate(forest, config: ml_collections.ConfigDict,
             info: pipeline.DatasetInfo, split: str) -> dict[str, float]:
  """The networks' metrics (same batch statistics and summary) on `split`."""
  n_classes = len(info.class_names)
  binary = config.model.n_classes == 1
  statistics = jax.jit(functools.partial(metrics.batch_statistics,
                                         **config.metrics.to_dict()))
  total = None
  for batch in pipeline.eval_batches(config.dataset, split, 16):
    logits = np.zeros(batch['mask'].shape + (1 if binary else n_classes,),
                      np.float32)
    valid = np.flatnonzero(batch['valid'])
    logits[valid] = as_logits(probabilities(forest, batch['image'][valid],
                                            config.model, n_classes), binary)
    roi = batch.get('roi', np.ones_like(batch['mask'])).astype(bool)
    total = metrics.merge(total, statistics(
        logits, batch['mask'].astype(np.int32), batch['valid'], mask=roi))
  return metrics.summarize(total, info.class_names)


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> dict[str, Any]:
  """Fits the forest and scores it on validation and test; returns the
  record train.train_and_evaluate returns (best_step None: no steps)."""
  start = time.time()
  check_config(config.model)
  info = pipeline.prepare(config.dataset)
  configuration.check_dataset_fits(config.model.n_classes,
                                   config.loss.class_weights, info.name,
                                   info.class_names)
  workdir_lib.record_config(workdir, config)
  forest = fit(config, info)
  final = {'best_step': None, 'best_metric': config.best_metric,
           'validation': evaluate(forest, config, info, 'validation'),
           'test': evaluate(forest, config, info, 'test'),
           'wall_time_s': time.time() - start}
  logger = logs.MetricLogger(workdir)
  logger.write('final', 0, **final)
  logger.close()
  print(logs.format_summary(final, config.best_metric))
  return final
