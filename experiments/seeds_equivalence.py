"""Is member k of K seeds trained at once the run `config.seed = k`?

Trains seeds 0..K-1 at once (`unetjax.seeds_at_once`), each seed alone, and
seed 0 alone again under pmap instead of jit: the last pair differs by float
reordering alone, the bound a member's difference is held to. Writes
<out>/equivalence.json and prints a markdown table: the largest training-loss
difference over the first 20 logged steps, each split's test Dice and the
best step, member against alone.

python -m experiments.seeds_equivalence --config=configs/default.py --out=runs/equivalence
python -m experiments.seeds_equivalence --config=configs/drive_native.py --out=runs/eq_drive \
  --config.dataset.manual_dir=../shared/data/drive --config.num_train_steps=200 \
  --config.eval_every_steps=100 --config.checkpoint_every_steps=100
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import copy
import json
import os

from absl import flags
from ml_collections import config_flags

from unetjax import logs, seeds_at_once, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'The config to train.',
                                lock_config=True)
flags.DEFINE_string('out', None, 'Folder of the runs and equivalence.json.')
flags.DEFINE_integer('seeds', 3, 'K: seeds 0..K-1.', lower_bound=1)
command_line.define_seeds_layout()
command_line.define_cpu_devices()
flags.mark_flags_as_required(['config', 'out'])

COMPARED_STEPS = 20
METRICS = ('dice', 'dice_per_image')


def seeded(seed: int, **changes):
  config = copy.deepcopy(FLAGS.config)
  config.seed = seed
  config.log_every_steps = 1  # every step's loss, for the comparison
  for key, value in changes.items():
    config[key] = value
  return config


def losses(workdir: str) -> list[float]:
  return [r['loss'] for r in logs.read_metrics(workdir) if r['event'] == 'train']


def final(workdir: str) -> dict:
  return [r for r in logs.read_metrics(workdir) if r['event'] == 'final'][-1]


def compare(a: str, b: str) -> dict:
  """Loss difference over the first steps, test metrics and best steps."""
  first_a, first_b = losses(a)[:COMPARED_STEPS], losses(b)[:COMPARED_STEPS]
  fa, fb = final(a), final(b)
  return {
      'max_loss_difference_first_steps': max(abs(x - y) for x, y in zip(first_a, first_b)),
      'best_step': [fa['best_step'], fb['best_step']],
      **{f'test_{m}': [fa['test'][m], fb['test'][m]] for m in METRICS},
      **{f'test_{m}_difference': abs(fa['test'][m] - fb['test'][m]) for m in METRICS},
  }


def run() -> None:
  out, k = FLAGS.out, FLAGS.seeds
  members = [os.path.join(out, 'at_once', f'seed_{s}') for s in range(k)]
  seeds_at_once.train_seeds([seeded(s) for s in range(k)], members,
                            layout=FLAGS.seeds_layout)
  alone = [os.path.join(out, 'alone', f'seed_{s}') for s in range(k)]
  for seed, workdir in enumerate(alone):
    train.train_and_evaluate(seeded(seed), workdir)
  pmap = os.path.join(out, 'alone_pmap', 'seed_0')
  train.train_and_evaluate(seeded(0, parallel='pmap'), pmap)
  report = {
      'config': FLAGS.config.dataset.name, 'seeds': k,
      'layout': FLAGS.seeds_layout,
      'float_reordering_bound (seed 0, jit against pmap)': compare(alone[0], pmap),
      **{f'seed {s}: at once against alone': compare(m, a)
         for s, (m, a) in enumerate(zip(members, alone))},
  }
  with open(os.path.join(out, 'equivalence.json'), 'w') as f:
    json.dump(report, f, indent=2)
  print('| pair | max loss difference, first 20 steps | best step | '
        + ' | '.join(f'test {m}' for m in METRICS) + ' |')
  print('| --- | --- | --- |' + ' --- |' * len(METRICS))
  for name, row in report.items():
    if isinstance(row, dict):
      print(f'| {name} | {row["max_loss_difference_first_steps"]:.2e} | '
            f'{row["best_step"][0]} / {row["best_step"][1]} | ' + ' | '.join(
                f'{row[f"test_{m}"][0]:.4f} / {row[f"test_{m}"][1]:.4f}'
                for m in METRICS) + ' |')


if __name__ == '__main__':
  command_line.main(run, storage_path=lambda: FLAGS.out)
