"""Trains and evaluates a segmentation model.

  python -m unetjax.main --config=configs/default.py --workdir=runs/default

Re-running the same command resumes the run in --workdir. Any config field
can be overridden, e.g. --config.batch_size=32 --config.model.depth=3.
"""

import sys

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from unetjax import train
from unetjax.errors import UserInputError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Python file with get_config(), e.g. configs/default.py.',
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and the '
                    'saved config; re-using it resumes the run.')
flags.DEFINE_bool('allow_config_change', False, 'Resume a workdir even though '
                  'its saved config differs from --config.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS['verbosity'].present:
    # Orbax and TFDS log every step at INFO; --verbosity=0 shows them.
    logging.set_verbosity(logging.WARNING)
  if jax.process_index() == 0:
    print(f'JAX {jax.__version__}, process {jax.process_index() + 1} of '
          f'{jax.process_count()}, devices: {jax.devices()}')
  try:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                             allow_config_change=FLAGS.allow_config_change)
  except UserInputError as e:
    sys.exit(f'error: {e}')
  except KeyboardInterrupt as e:
    print(e, file=sys.stderr)
    sys.exit(130)


if __name__ == '__main__':
  app.run(main)
