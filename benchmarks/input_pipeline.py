"""Images/s of the input pipeline alone vs the training step, on this machine.

python -m benchmarks.input_pipeline --manual_dir=../shared/data/kvasir_seg

Prints one JSON line. The pipeline reads, decodes (PNG) and batches
kvasir_seg/256px (256x256 RGB) training examples with the config's reader
threads; the train step is the default U-Net's, jitted, on the first device,
timed in the same process.
"""

import os
import platform
import time


import jax
from absl import app, flags

from benchmarks import common

from configs import default
from unetjax.data import pipeline

flags.DEFINE_string('dataset', 'kvasir_seg/256px', 'TFDS name/config.')
flags.DEFINE_string('manual_dir', '', 'Folder with the dataset files.')
flags.DEFINE_string('data_dir', '', 'TFDS data dir.')
flags.DEFINE_integer('batch_size', 16, 'Batch size.')
flags.DEFINE_integer('batches', 100, 'Batches to time for the pipeline.')
flags.DEFINE_integer('steps', 10, 'Train steps to time.')
flags.DEFINE_integer('reader_threads', 2, 'grain reader threads.')
flags.DEFINE_string('out', None, 'Also append the JSON line to this file.')
FLAGS = flags.FLAGS


def pipeline_images_per_s(config) -> float:
  batches = pipeline.train_batches(config.dataset, FLAGS.batch_size, seed=0)
  next(batches)  # start the reader threads
  start = time.perf_counter()
  for _ in range(FLAGS.batches):
    next(batches)
  return FLAGS.batches * FLAGS.batch_size / (time.perf_counter() - start)


def main(argv):
  del argv
  config = default.get_config()
  config.dataset.name = FLAGS.dataset
  config.dataset.manual_dir = FLAGS.manual_dir
  config.dataset.data_dir = FLAGS.data_dir
  config.dataset.reader_threads = FLAGS.reader_threads
  info = pipeline.prepare(config.dataset)
  pipeline_rate = pipeline_images_per_s(config)
  step_rate = FLAGS.batch_size / common.train_step_seconds(
      config, info.image_shape, FLAGS.batch_size, FLAGS.steps)
  common.emit({
      'benchmark': 'input_pipeline', 'dataset': FLAGS.dataset,
      'image_shape': info.image_shape, 'batch_size': FLAGS.batch_size,
      'reader_threads': FLAGS.reader_threads,
      'pipeline_images_per_s': round(pipeline_rate, 1),
      'train_step_images_per_s': round(step_rate, 2),
      'pipeline_to_step_ratio': round(pipeline_rate / step_rate, 1),
      'device': jax.devices()[0].device_kind, 'jax': jax.__version__,
      'cpu_count': os.cpu_count(), 'machine': platform.machine(),
  }, FLAGS.out)


if __name__ == '__main__':
  app.run(main)
