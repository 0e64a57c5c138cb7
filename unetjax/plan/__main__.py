"""Plans a recipe for a dataset and a time budget, as a config file.

  python -m unetjax.plan --config=configs/folder.py \\
      --config.dataset.manual_dir=/path/to/data --budget=60m --out=my_plan.py
  python -m unetjax.main --config=my_plan.py --workdir=runs/mine

--budget is the wall time of the training command (60m, 2h, 5400s) or a
number of steps (3200steps). The plan measures the training split's
fingerprint (written beside it as <out>.fingerprint.json), decides the
data-driven settings by the rules of unetjax.plan.rules, times short probe
runs of candidate widths on this machine's devices, and writes a config
file whose every value says why; --explain also prints that table.
"""

import time

_STARTED = time.time()

# pylint: disable=wrong-import-position
from unetjax import command_line  # noqa: I001 (first: a Ctrl-C while starting is one line)

import json
import os
import sys

import jax
from absl import flags
from ml_collections import config_flags

from unetjax import configuration
from unetjax import models
from unetjax import tasks
from unetjax import train  # noqa: F401 (imported here so its cost is timed)
from unetjax.data import pipeline
from unetjax.errors import DataError, UserInputError, storage_message
from unetjax.plan import budget as budget_lib
from unetjax.plan import fingerprint as fingerprint_lib
from unetjax.plan import render
from unetjax.plan import rules

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags, defined when it runs (not on import, so that this
  module can be imported beside unetjax.main, whose --config it shares)."""
  config_flags.DEFINE_config_file(
      'config', None, 'The dataset\'s config file (e.g. configs/folder.py, '
      'configs/kvasir_native.py); its dataset and task are kept.',
      lock_config=False)
  flags.DEFINE_string('budget', None, 'Wall time of the training command (60m, '
                      '2h, 5400s) or a number of steps (3200steps).')
  flags.DEFINE_string('out', None, 'The planned config file to write (.py).')
  flags.DEFINE_bool('explain', False, 'Print every planned value with its reason.')
  flags.DEFINE_bool('keep_recipe', False, 'Keep every setting of --config and '
                    'plan only the steps and evaluation interval that fill the '
                    'budget (a hand-tuned recipe fitted to your time).')
  command_line.define_cpu_devices()
  flags.mark_flags_as_required(['config', 'budget', 'out'])


MEMORY_SHARE = 0.5  # of the host's memory, for one image's evaluation


def host_memory_bytes() -> int:
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def check_splits(fp: dict) -> None:
  empty = [s for s in ('train', 'validation', 'test') if not fp['split_sizes'].get(s)]
  if empty:
    sizes = ', '.join(f'{k} {v}' for k, v in fp['split_sizes'].items())
    raise DataError(f'{fp["dataset"]} is too small to split ({sizes}): the '
                    f'{" and ".join(empty)} split holds no image; add images '
                    '(image_folder needs about 10 for an 80/10/10 split).')


def check_memory(fp: dict, n_outputs: int, available: int) -> None:
  """Whole-image evaluation holds an image's input, logits and blending
  weights in float32 on the host."""
  pixels = fp['height']['max'] * fp['width']['max']
  need = pixels * (fp['channels'] + 2 * n_outputs + 1) * 4
  if need > MEMORY_SHARE * available:
    raise DataError(
        f'The largest image ({int(fp["height"]["max"])}x{int(fp["width"]["max"])}'
        f' px) needs {need / 2**30:.1f} GiB to evaluate whole, more than '
        f'{MEMORY_SHARE:.0%} of this machine\'s {available / 2**30:.1f} GiB: '
        'tile the images into smaller files first.')


def data_decisions(config, fp: dict, kind: str) -> list[rules.Decision]:
  n_classes = len(fp['class_names'])
  if fp['task'] == tasks.CLASSIFICATION:
    return [rules.Decision('model.n_classes', n_classes,
                           f'{n_classes} classes: softmax'),
            rules.batch_size(fp, rules.median_shape(fp), kind, jax.device_count())]
  binary = n_classes == 2
  out = [rules.Decision('model.n_classes', 1 if binary else n_classes,
                        f'{n_classes} classes' + (': one sigmoid' if binary else ''))]
  patch = rules.patch(fp, kind)
  shape = rules.patch_shape(patch.value, fp)
  return out + [
      patch,
      rules.depth(shape),
      rules.batch_size(fp, shape, kind, jax.device_count()),
      rules.normalisation(),
      rules.oversampling(fp, patch.value != 0),
      rules.class_weights(fp),
      *rules.training_choices(fp),
  ]


def folder_decisions(config, kind: str) -> tuple[list[rules.Decision], dict | None]:
  """How the user's folder is stored (intensity window, image size), set in
  `config`, and its fingerprint where it was measured as stored."""
  decided, fp = [], None
  if config.dataset.name in pipeline.FOLDER_BUILDERS:
    window = (None if config.dataset.folder.get('intensity_window')
              else rules.intensity_window(fingerprint_lib.raw_intensity(config.dataset)))
    if window is not None:
      decided.append(window)
      config.dataset.folder.intensity_window = window.value
  if config.dataset.name == 'image_folder':
    config.dataset.folder.image_size = 0  # measured at the images' own size
    fp = fingerprint_lib.measure(config.dataset)
    size = rules.folder_size(fp, kind)
    decided.append(size)
    if size.value:  # stored resized: another build to measure
      config.dataset.folder.image_size = size.value
      fp = None
  return decided, fp


def plan(config, budget: budget_lib.Budget, import_s: float, source: str,
         keep_recipe: bool = False
         ) -> tuple[list[rules.Decision], dict, budget_lib.Choice]:
  """The decisions of a plan, the fingerprint and the budget's choice. With
  `keep_recipe`, every setting of `config` stays and only the steps and the
  evaluation interval are planned (a hand-tuned recipe fitted to a budget)."""
  kind = jax.default_backend()
  kind = kind if kind in rules.PATCH_CAP else 'gpu'
  decided, fp = ([], None) if keep_recipe else folder_decisions(config, kind)
  fp = fp or fingerprint_lib.measure(config.dataset)
  check_splits(fp)
  check_memory(fp, len(fp['class_names']), host_memory_bytes())
  base = render.carried(config, configuration_defaults(), source)
  if keep_recipe:
    decided = base + [rules.Decision('batch_size', config.batch_size,
                                     f'from {source}')]
    networks, slim = (budget_lib.Network(config.model.base_filters),), None
  else:
    decided = render.merged(base + decided + data_decisions(config, fp, kind))
    networks = budget_lib.NETWORKS  # classifiers (ResNets) have no slim plan
    slim = budget_lib.SLIM if fp['task'] != tasks.CLASSIFICATION else None
  batch = next(d.value for d in decided if d.field == 'batch_size')
  depth = next((d.value for d in decided if d.field == 'model.depth'),
               config.model.get('depth', 0))  # ResNets: none

  def time_network(network, augmentation=()):
    print(f'Timing width {network} on {jax.device_count()} {kind} device(s)...',
          flush=True)
    probe = render.apply(config, decided + [
        rules.Decision('eval_batch_size', 2 * batch, '')] + (
            [] if keep_recipe else budget_lib.network_decisions(network, depth))
        + list(augmentation))
    configuration.validate(probe)
    return budget_lib.probe(probe, import_s)

  patch = next((d.value for d in decided if d.field == 'dataset.patch_size'),
               config.dataset.patch_size)
  inputs = rules.inputs_per_epoch(fp, patch)
  augmentation = (lambda epochs: []) if keep_recipe else (
      rules.augmentation if fp['task'] != tasks.CLASSIFICATION
      else lambda epochs: rules.augmentation(0))
  # Timed with the short budgets' augmentation (flips); a plan long enough
  # for the full set is timed again with it, and its steps refilled.
  choice = budget_lib.choose(
      budget, inputs, batch,
      lambda network: time_network(network, augmentation(0)), networks, slim)
  if ({d.field: d.value for d in augmentation(choice.epochs)}
      != {d.field: d.value for d in augmentation(0)}):
    choice = budget_lib.retimed(
        choice, time_network(choice.network, augmentation(choice.epochs)),
        budget, inputs, batch)
  if keep_recipe:
    steps = [d for d in budget_lib.decisions(choice, batch, budget, depth)
             if not d.field.startswith('model.')]
    return render.merged(decided + steps), fp, choice
  decided = render.merged(decided + budget_lib.decisions(choice, batch, budget, depth) + [
      rules.Decision('eval_batch_size', 2 * batch, 'twice the batch '
                     '(no gradients to keep)'),
      *augmentation(choice.epochs),
  ])
  return decided, fp, choice


def configuration_defaults():
  """configs/default.py of this checkout, which the planned file starts from."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), 'configs', 'default.py')
  config = command_line.load_config(path)
  if isinstance(config, str):
    raise UserInputError(config)
  return config


def run():
  import_s = time.time() - _STARTED
  out = FLAGS.out
  budget = budget_lib.parse(FLAGS.budget)
  if not out.endswith('.py'):
    raise UserInputError(f'--out={out}: the plan is a config file; name it '
                         '<name>.py.')
  for path in (out, out[:-3] + '.fingerprint.json'):
    if os.path.exists(path):
      raise UserInputError(f'--out={out}: {path} exists and is kept; give '
                           'a new name (or delete it to plan again).')
  source = command_line._flag_value(sys.argv, 'config')  # pylint: disable=protected-access
  decided, fp, choice = plan(FLAGS.config, budget, import_s, source,
                             keep_recipe=FLAGS.keep_recipe)
  planned = render.apply(configuration_defaults(), decided)
  configuration.validate(planned)
  models.get_model(planned.model, planned.dtype, planned.param_dtype)
  stem = out[:-3]
  header = (f'Planned by `python -m unetjax.plan --config={source} '
            f'--budget={FLAGS.budget}` on {jax.device_count()} '
            f'{jax.default_backend()} device(s): predicted wall time of '
            f'`python -m unetjax.main` {choice.predicted_s / 60:.1f} min\n'
            f'({choice.steps} steps, {choice.epochs:.1f} epochs). Fingerprint: '
            f'{os.path.basename(stem)}.fingerprint.json. Edit freely; each value '
            'says why.\n')
  try:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(stem + '.fingerprint.json', 'x') as f:
      json.dump({'fingerprint': fp, 'timings': {
          str(n): vars(t) for n, t in choice.timings.items()},
                 'predicted_s': choice.predicted_s}, f, indent=2)
    with open(out, 'x') as f:
      f.write(render.config_source(decided, header))
  except OSError as e:
    sys.exit(f'error: {storage_message(e, e.filename or out)}')
  if FLAGS.explain:
    print(render.table(decided))
  print(f'Wrote {out}: width {choice.network}, {choice.steps} steps '
        f'({choice.epochs:.1f} epochs), predicted {choice.predicted_s / 60:.1f} '
        f'min. Train it with:\n  python -m unetjax.main --config={out} '
        '--workdir=runs/<name>')


if __name__ == '__main__':
  define_flags()
  command_line.main(run, storage_path=lambda: FLAGS.out)
