"""What native-resolution training and evaluation cost beyond the model.

python -m benchmarks.native_resolution --manual_dir=../shared/data/drive

Two JSON lines, both on drive/native (565x584 RGB) with configs/drive_native.py,
timed in one process:
- 'patch_sampling': host milliseconds to draw one random patch (with
  foreground oversampling and the field of view), against the training
  step's milliseconds per example at that patch size (jitted, one device);
  the ratio is the share a training step would grow by if sampling were not
  overlapped with the step (the pipeline's threads overlap it).
- 'sliding_window_eval': seconds of whole-image evaluation of the validation
  images, against the seconds of the same work with the window bookkeeping
  left out: the forward passes over the same window batches plus scoring the
  full-resolution logits. The difference is what the sliding window adds
  (cropping, Gaussian blending, host copies).
"""

import os
import platform
import time


import jax
import numpy as np
from absl import app, flags

from benchmarks import common
from configs import drive_native
from unetjax import evaluation, losses, models, sliding_window
from unetjax import state as state_lib
from unetjax.data import patches, pipeline

flags.DEFINE_string('manual_dir', '../shared/data/drive', 'DRIVE files.')
flags.DEFINE_string('data_dir', '', 'TFDS data dir.')
flags.DEFINE_integer('patches', 200, 'Patches to time.')
flags.DEFINE_integer('steps', 5, 'Train steps to time.')
flags.DEFINE_string('out', None, 'Also append the JSON lines to this file.')
FLAGS = flags.FLAGS


def patch_ms(config, examples) -> float:
  sampling = pipeline.patch_sampling(config.dataset)
  rng = np.random.default_rng(0)
  start = time.perf_counter()
  for i in range(FLAGS.patches):
    patches.sample_patch(examples[i % len(examples)], rng, sampling)
  return (time.perf_counter() - start) / FLAGS.patches * 1e3


def evaluation_seconds(config, model, input_shape, examples) -> tuple[float, float]:
  """(whole-image evaluation, forward passes + scoring alone), seconds."""
  variables = jax.jit(model.init, static_argnames='train')(
      jax.random.key(0), np.zeros((1,) + input_shape, np.float32), train=False)
  apply_fn, n_devices = evaluation.local_apply_fn(model, variables)
  window = pipeline.patch_sampling(config.dataset).size
  loss_fn = losses.get_loss(config.loss)
  options = config.metrics.to_dict()
  preprocess = lambda image: np.asarray(state_lib.preprocess(image))

  def whole() -> None:
    evaluation.whole_image_statistics(
        apply_fn, examples, preprocess, window=window,
        overlap=config.dataset.eval_overlap, batch_size=config.eval_batch_size,
        batch_multiple=n_devices, loss_fn=loss_fn, metric_options=options)

  # The same window batches, fed straight to the model, and the same scoring.
  batches = []
  apply_fn_recording = lambda crops: batches.append(crops) or apply_fn(crops)
  full_logits = [sliding_window.sliding_window_logits(
      apply_fn_recording, preprocess(ex['image']), window,
      config.dataset.eval_overlap, batch_size=config.eval_batch_size,
      batch_multiple=n_devices) for ex in examples]
  options_key = tuple(sorted(options.items()))

  def model_and_metrics() -> None:
    for crops in batches:
      apply_fn(crops)
    for ex, logits in zip(examples, full_logits):
      jax.block_until_ready(evaluation.image_statistics(
          logits, ex['mask'].astype(np.int32), ex['roi'] > 0, loss_fn=loss_fn,
          metric_options=options_key))

  whole(), model_and_metrics()  # compile
  times = {fn: [] for fn in (whole, model_and_metrics)}
  for _ in range(3):  # interleaved, so both see the same machine load
    for fn in times:
      start = time.perf_counter()
      fn()
      times[fn].append(time.perf_counter() - start)
  return common.median(times[whole]), common.median(times[model_and_metrics])


def main(argv):
  del argv
  config = drive_native.get_config()
  config.dataset.manual_dir = FLAGS.manual_dir
  config.dataset.data_dir = FLAGS.data_dir
  info = pipeline.prepare(config.dataset)
  input_shape = pipeline.model_input_shape(config.dataset, info)
  model = models.get_model(config.model)
  machine = {'device': jax.devices()[0].device_kind, 'jax': jax.__version__,
             'cpu_count': os.cpu_count(), 'machine': platform.machine()}
  train_examples = list(pipeline.examples(config.dataset, 'train'))
  sample_ms = patch_ms(config, train_examples)
  step_ms = common.train_step_seconds(
      config, input_shape, config.batch_size, FLAGS.steps) / config.batch_size * 1e3
  common.emit({
      'benchmark': 'patch_sampling', 'dataset': config.dataset.name,
      'image_shape': list(input_shape), 'batch_size': config.batch_size,
      'patch_ms': round(sample_ms, 3),
      'train_step_ms_per_example': round(step_ms, 2),
      'patch_to_step_ratio': round(sample_ms / step_ms, 4), **machine},
      FLAGS.out)
  val_examples = list(pipeline.examples(config.dataset, 'validation'))
  whole_s, core_s = evaluation_seconds(config, model, input_shape, val_examples)
  common.emit({
      'benchmark': 'sliding_window_eval', 'dataset': config.dataset.name,
      'image_shape': list(input_shape), 'images': len(val_examples),
      'batch_size': config.eval_batch_size,
      'overlap': config.dataset.eval_overlap,
      'whole_image_eval_s': round(whole_s, 3),
      'forward_and_metrics_s': round(core_s, 3),
      'overhead_ratio': round(whole_s / core_s - 1, 4), **machine}, FLAGS.out)


if __name__ == '__main__':
  app.run(main)
