"""Trains and evaluates a segmentation model.

  python -m unetjax.main --config=configs/default.py --workdir=runs/default

Re-running the same command resumes the run in --workdir. Any config field
can be overridden, e.g. --config.batch_size=32 --config.model.depth=3.
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import copy

import jax
from absl import flags
from ml_collections import config_flags

from unetjax import ablation, config_schema, seeds_at_once, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    'config', None, 'Python file with get_config(), e.g. configs/default.py. '
    'Fields with a fixed set of names take:\n' + config_schema.choices_help(),
    lock_config=True)
flags.DEFINE_string('workdir', None, 'Directory for checkpoints, logs and the '
                    'saved config; re-using it resumes the run.')
flags.DEFINE_bool('allow_config_change', False, 'Resume a workdir even though '
                  'its saved config differs from --config.')
flags.DEFINE_bool('distributed', False, 'Multi-process run: call '
                  'jax.distributed.initialize(), which finds the other '
                  'processes itself on TPU pods and SLURM.')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0, for '
                    'multi-process runs where it is not detected.')
flags.DEFINE_integer('num_processes', None, 'Number of processes (with '
                     '--coordinator_address).')
flags.DEFINE_integer('process_id', None, 'This process, 0..num_processes-1 '
                     '(with --coordinator_address).')
flags.DEFINE_string('seeds', None, 'Train these seeds at once, as one program '
                    '(e.g. 0-2 or 0,1,2; unetjax.seeds_at_once), each in '
                    '--workdir/seed_<seed>; config.seed is then not used.')
command_line.define_seeds_layout()
command_line.define_cpu_devices()
flags.mark_flags_as_required(['config', 'workdir'])


def run():
  if FLAGS.distributed or FLAGS.coordinator_address:
    jax.distributed.initialize(coordinator_address=FLAGS.coordinator_address,
                               num_processes=FLAGS.num_processes,
                               process_id=FLAGS.process_id)
  if jax.process_index() == 0:
    print(f'JAX {jax.__version__}, process {jax.process_index() + 1} of '
          f'{jax.process_count()}, devices: {jax.devices()}')
  if FLAGS.seeds is None:
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir,
                             allow_config_change=FLAGS.allow_config_change)
    return
  seeds = ablation.parse_seeds(FLAGS.seeds)
  configs = [copy.deepcopy(FLAGS.config) for _ in seeds]
  for config, seed in zip(configs, seeds):
    config.seed = seed
  outcomes = seeds_at_once.train_seeds(
      configs, [seeds_at_once.member_workdir(FLAGS.workdir, s) for s in seeds],
      allow_config_change=FLAGS.allow_config_change, layout=FLAGS.seeds_layout)
  for seed, outcome in zip(seeds, outcomes):
    if isinstance(outcome, Exception):  # the others trained on
      raise type(outcome)(f'seed {seed}: {outcome}')


if __name__ == '__main__':
  command_line.main(run, resume='Re-run the same command to resume from the '
                    'last checkpoint.', storage_path=lambda: FLAGS.workdir)
