"""Ablation sweeps: every combination of named config choices, for several
seeds, trained one after another in this process, then tables and plots.

  python -m unetjax.ablation --sweep=experiments/smoke.py --out=runs/smoke

A sweep file (experiments/<name>.py) has `get_sweep()` returning a dict:

  base: a config file with get_config() (relative to the current folder or
    to the repository holding the sweep file), or a ConfigDict.
  axes: {axis: [(label, overrides), ...]}; the runs are their product.
  seeds: [0, 1, 2]; each combination runs once per seed (config.seed).
  fixed: overrides applied to every run, before the axes' (optional).
  exclude: labels -> bool, True drops a combination (optional).
  tags: {name: value} copied into every result row, e.g. the protocol.
  main_metric: the metric of the plots and the comparisons (default: the
    runs' best_metric).
  baseline: {axis: label}, the level every other level of the axis is
    compared with, paired by seed (default: each axis's first label).
  compare_metrics: the test metrics compared (default: [main_metric]).

Overrides map dotted config paths ('config.model.depth') to values; a dict or
ConfigDict value replaces a whole section ('config.model'). Every run's config
is checked before the first one trains, so a typo is one clear error.
`config.model.name = 'pixel_forest'` routes a run to the pixel classifier
baseline (`unetjax.pixel_forest`) instead of a network.

Run `model=unet,aug=on,seed=1` lives in <out>/model=unet,aug=on,seed=1/ and
writes result.json there when it finishes. Re-running the sweep resumes
partial runs from their checkpoints, skips finished ones, retries failed
ones (error.json) and rebuilds results.csv, results.md and the plots from the
result.json files; `--seeds=0-9` extends it to more seeds, training only the
new runs. results.md compares each level with its axis's baseline, paired by
seed (`unetjax.comparisons`).
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import csv
import difflib
import functools
import itertools
import json
import math
import os
import re
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from unetjax import comparisons
from unetjax import configuration
from unetjax import locks
from unetjax import logs
from unetjax import metrics as metrics_lib
from unetjax import plots
from unetjax.errors import ConfigError, Stopped, UserInputError, WorkdirInUseError
from unetjax.extras import MissingExtraError

RESULT_FILE = 'result.json'
ERROR_FILE = 'error.json'
CLAIM_FILE = 'sweep.lock'  # held by the sweep process that trains the run
SWEEP_KEYS = ('base', 'axes', 'seeds', 'fixed', 'exclude', 'tags', 'main_metric',
              'baseline', 'compare_metrics', 'slurm')
_NAME_UNSAFE = re.compile(r'[/\\,=\s]')


class Run:
  """One combination of axis labels and a seed, with its overrides."""

  def __init__(self, labels: dict[str, str], seed: int,
               overrides: dict[str, Any]):
    self.labels, self.seed, self.overrides = labels, seed, overrides

  @property
  def name(self) -> str:
    """'axis=label,...,seed=N': the run's folder under --out."""
    return ','.join([f'{k}={v}' for k, v in self.labels.items()]
                    + [f'seed={self.seed}'])


def _repository_of(sweep_path: str) -> str:
  """The folder above experiments/, where configs/ is."""
  return os.path.dirname(os.path.dirname(os.path.abspath(sweep_path)))


def load_sweep(path: str) -> dict[str, Any]:
  """get_sweep() of a sweep file, with its base config loaded and checked."""
  if not os.path.isfile(path):
    raise ConfigError(f'Sweep file not found: {path}.')
  repository = _repository_of(path)
  if repository not in sys.path:  # sweep files import configs/
    sys.path.insert(0, repository)
  module = command_line.import_file(path, 'unetjax_sweep')
  if not hasattr(module, 'get_sweep'):
    raise ConfigError(f'{path} has no get_sweep() function.')
  sweep = dict(module.get_sweep())
  base = sweep.get('base')
  if isinstance(base, str):
    candidates = [base, os.path.join(repository, base)]
    found = next((c for c in candidates if os.path.isfile(c)), None)
    if found is None:
      raise ConfigError(f'{path}: base config {base!r} not found (looked in '
                        f'{" and ".join(map(repr, candidates))}).')
    base = command_line.load_config(found)
    if isinstance(base, str):
      raise ConfigError(f'{path}: base {base}')
    sweep['base'] = base
  check_sweep(sweep, path)
  return sweep


def parse_seeds(text: str) -> list[int]:
  """'0-9', '0,1,2' or '0-2,7' as a list of seeds."""
  seeds = []
  for part in text.split(','):
    match = re.fullmatch(r'\s*(\d+)\s*(?:-\s*(\d+)\s*)?', part)
    if not match or (match.group(2) and int(match.group(2)) < int(match.group(1))):
      raise ConfigError(f'--seeds={text!r}: give seeds such as 0-9, 0,1,2 or 0-2,7.')
    first = int(match.group(1))
    seeds += range(first, int(match.group(2) or first) + 1)
  return list(dict.fromkeys(seeds))


def check_sweep(sweep: dict[str, Any], where: str = 'sweep') -> None:
  """Raises ConfigError for a malformed sweep dict."""
  problems = []
  for key in sweep:
    if key not in SWEEP_KEYS:
      close = difflib.get_close_matches(key, SWEEP_KEYS, n=1)
      hint = f'; did you mean {close[0]!r}?' if close else ''
      problems.append(f'unknown key {key!r}{hint}')
  if not isinstance(sweep.get('base'), ml_collections.ConfigDict):
    problems.append("'base' must be a config file path or a ConfigDict")
  axes = sweep.get('axes', {})
  if not isinstance(axes, dict):
    problems.append("'axes' must be a dict {axis: [(label, overrides), ...]}")
    axes = {}
  for axis, choices in axes.items():
    if _NAME_UNSAFE.search(axis) or axis == 'seed':
      problems.append(f'axis name {axis!r} must not be "seed" nor contain '
                      "'/', ',', '=' or spaces")
    labels = []
    for choice in choices:
      if not (isinstance(choice, (tuple, list)) and len(choice) == 2
              and isinstance(choice[0], str) and isinstance(choice[1], dict)):
        problems.append(f'axis {axis!r}: each choice must be (label, '
                        f'overrides dict), not {choice!r}')
        continue
      if _NAME_UNSAFE.search(choice[0]) or not choice[0]:
        problems.append(f'axis {axis!r}: label {choice[0]!r} must be non-empty '
                        "without '/', ',', '=' or spaces")
      labels.append(choice[0])
    if not labels or len(set(labels)) != len(labels):
      problems.append(f'axis {axis!r} needs one or more choices with distinct '
                      'labels')
  seeds = sweep.get('seeds')
  if not (isinstance(seeds, (list, tuple)) and seeds
          and all(isinstance(s, int) and s >= 0 for s in seeds)
          and len(set(seeds)) == len(seeds)):
    problems.append("'seeds' must be a non-empty list of distinct ints >= 0")
  if not isinstance(sweep.get('fixed', {}), dict):
    problems.append("'fixed' must be a dict of overrides")
  for axis, label in (sweep.get('baseline') or {}).items():
    labels = [c[0] for c in axes.get(axis, ()) if isinstance(c, (tuple, list))]
    if label not in labels:
      problems.append(f'baseline {axis}={label!r}: ' + (
          f'axis {axis!r} has the labels {labels}' if labels
          else f'no axis {axis!r}'))
  if problems:
    raise ConfigError(f'Invalid {where}:\n  ' + '\n  '.join(problems))


def expand(sweep: dict[str, Any]) -> list[Run]:
  """The runs of a sweep: the product of its axes (in their order) times
  its seeds, less the combinations `exclude` drops."""
  axes = sweep.get('axes', {})
  exclude = sweep.get('exclude') or (lambda labels: False)
  runs = []
  for combination in itertools.product(*axes.values()):
    labels = {axis: label for axis, (label, _) in zip(axes, combination)}
    if exclude(labels):
      continue
    overrides = dict(sweep.get('fixed', {}))
    for _, choice_overrides in combination:
      overrides.update(choice_overrides)
    runs += [Run(labels, seed, overrides) for seed in sweep['seeds']]
  return runs


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted overrides ('config.a.b': value) set."""
  config = ml_collections.ConfigDict(config.to_dict())
  for key, value in overrides.items():
    if not key.startswith('config.'):
      raise ConfigError(f'Override {key!r}: keys are dotted config paths that '
                        'start with "config.", e.g. config.model.depth.')
    *parents, leaf = key[len('config.'):].split('.')
    section = config
    for depth, name in enumerate(parents):
      if not isinstance(section.get(name), ml_collections.ConfigDict):
        close = difflib.get_close_matches(name, list(section.keys()), n=1)
        hint = f'; did you mean {close[0]!r}?' if close else ''
        raise ConfigError(f'Override {key!r}: config.{".".join(parents[:depth + 1])} '
                          f'is not a config section{hint}')
      section = section[name]
    if isinstance(value, (dict, ml_collections.ConfigDict)):
      value = ml_collections.ConfigDict(dict(value))
    try:
      section[leaf] = value
    except (TypeError, ValueError) as e:
      raise ConfigError(f'Override {key}={value!r}: {e}') from e
  return config


def check_run_config(config: ml_collections.ConfigDict) -> None:
  """The checks train_and_evaluate makes before touching a workdir, short of
  reading the dataset."""
  from unetjax import losses, models, pixel_forest
  configuration.validate(config)
  if config.model.name == pixel_forest.NAME:
    pixel_forest.check_config(config.model)
  else:
    models.get_model(config.model, config.dtype, config.param_dtype)
    losses.get_loss(config.loss)


def run_configs(sweep: dict[str, Any],
                runs: Sequence[Run]) -> list[ml_collections.ConfigDict]:
  """Each run's config, all checked first: raises one ConfigError naming
  every problem and the runs it concerns."""
  configs, problems = [], {}
  for run in runs:
    try:
      config = apply_overrides(sweep['base'], run.overrides)
      config.seed = run.seed
      check_run_config(config)
      configs.append(config)
    except MissingExtraError:
      raise  # one line for the sweep: what to install
    except UserInputError as e:
      problems.setdefault(str(e), []).append(run.name)
  if problems:
    lines = []
    for message, names in problems.items():
      which = ('every run' if len(names) == len(runs) else
               ', '.join(names[:3]) + (f' and {len(names) - 3} more'
                                       if len(names) > 3 else ''))
      lines.append(f'{message} ({which})')
    raise ConfigError('The sweep has invalid run configs; nothing was '
                      'trained:\n' + '\n'.join(lines))
  return configs


def write_json(path: str, record: dict[str, Any]) -> None:
  """Written whole or not at all (temporary file, then rename)."""
  with open(path + '.tmp', 'w') as f:
    json.dump(logs.json_safe(record), f, indent=2)
  os.replace(path + '.tmp', path)


def read_json(path: str) -> dict[str, Any] | None:
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def device_description(config: ml_collections.ConfigDict) -> str:
  from unetjax import pixel_forest
  if config.model.name == pixel_forest.NAME:
    return 'cpu (scikit-learn)'
  import jax
  return f'{jax.devices()[0].device_kind} x{jax.device_count()} ({config.parallel})'


def train_run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains and evaluates one run (a network or the pixel forest)."""
  from unetjax import pixel_forest, train
  if config.model.name == pixel_forest.NAME:
    return pixel_forest.train_and_evaluate(config, workdir)
  return train.train_and_evaluate(config, workdir)


def train_seeds_run(configs: Sequence[ml_collections.ConfigDict],
                    workdirs: Sequence[str], layout: str = 'auto'
                    ) -> list[dict[str, Any] | Exception]:
  """Trains the seeds of one config at once (`unetjax.seeds_at_once`)."""
  from unetjax import seeds_at_once
  return seeds_at_once.train_seeds(configs, workdirs, layout=layout)


def seed_groups(runs: Sequence[Run], configs: Sequence[ml_collections.ConfigDict],
                seeds_at_once: int) -> list[list[tuple[Run, Any]]]:
  """The runs in groups trained together: the seeds of one combination,
  `seeds_at_once` at a time, in sweep order (the pixel forest, not a
  network, one run at a time)."""
  from unetjax import pixel_forest
  groups, open_groups = [], {}
  for run, config in zip(runs, configs):
    key = tuple(sorted(run.labels.items()))
    group = open_groups.get(key)
    if (seeds_at_once == 1 or config.model.name == pixel_forest.NAME
        or group is None or len(group) == seeds_at_once):
      group = open_groups[key] = []
      groups.append(group)
    group.append((run, config))
  return groups


def execute(sweep: dict[str, Any], out: str, only: str | None = None,
            train_fn: Callable[..., dict[str, Any]] = train_run,
            skip_claimed: bool = False, seeds_at_once: int = 1,
            group_fn: Callable[..., list[Any]] = train_seeds_run
            ) -> list[tuple[str, str]]:
  """Trains the runs of `sweep` (those whose name matches `only`) that have
  no result.json, one after another (or `seeds_at_once` seeds of a
  combination at a time, by `group_fn`); returns (run, error) for each
  failure. A failure is written to the run's error.json and the sweep goes
  on.

  Each run is claimed (a lock on its CLAIM_FILE) from before it trains
  until its result.json is written: a run another process has claimed is
  skipped with `skip_claimed` (sweep workers) and stops the sweep otherwise."""
  runs = [r for r in expand(sweep) if not only or re.search(only, r.name)]
  configs = run_configs(sweep, runs)
  number = {run.name: index + 1 for index, run in enumerate(runs)}
  failures = []
  for group in seed_groups(runs, configs, seeds_at_once):
    claims, todo = [], []
    try:
      for run, config in group:
        workdir = os.path.join(out, run.name)
        where = f'[{number[run.name]}/{len(runs)}] {run.name}'
        if os.path.exists(os.path.join(workdir, RESULT_FILE)):
          print(f'{where}: finished, skipped.')
          continue
        os.makedirs(workdir, exist_ok=True)
        claim = locks.FileLock(os.path.join(workdir, CLAIM_FILE))
        if not claim.acquire(blocking=False):
          if skip_claimed:
            print(f'{where}: trained by {claim.holder()}, skipped.', flush=True)
            continue
          raise WorkdirInUseError(f'{workdir} is in use by {claim.holder()}, which '
                                  'is training it; wait for it to finish (or stop it).')
        claims.append(claim)
        if os.path.exists(os.path.join(workdir, RESULT_FILE)):  # finished meanwhile
          print(f'{where}: finished, skipped.')
          continue
        print(f'{where}: training{" (seeds at once)" if len(group) > 1 else ""}.',
              flush=True)
        todo.append((run, config, workdir))
      if len(todo) == 1 and len(group) == 1:
        outcomes = [_outcome(lambda: train_fn(todo[0][1], todo[0][2]))]
      elif todo:
        outcomes = _outcome(lambda: group_fn([c for _, c, _ in todo],
                                             [w for _, _, w in todo]))
        outcomes = outcomes if isinstance(outcomes, list) else [outcomes] * len(todo)
      else:
        outcomes = []
      for (run, config, workdir), outcome in zip(todo, outcomes):
        failure = _record(sweep, run, config, workdir, outcome)
        if failure:
          failures.append((run.name, failure))
    finally:
      for claim in claims:
        claim.release()
  return failures


def _outcome(train: Callable[[], Any]) -> Any:
  """What `train` returned, or the exception it raised (with its
  traceback printed); stops and a workdir in use end the sweep."""
  try:
    return train()
  except (KeyboardInterrupt, SystemExit):
    raise
  except Exception as e:  # noqa: BLE001 - recorded, then the sweep goes on
    if isinstance(e, (Stopped, WorkdirInUseError)):
      raise  # stops the sweep; another process trains this run
    traceback.print_exc()
    e.traceback_text = traceback.format_exc()
    return e


def _record(sweep: dict[str, Any], run: Run, config: ml_collections.ConfigDict,
            workdir: str, outcome: dict[str, Any] | Exception) -> str | None:
  """Writes a run's result.json, or its error.json and returns the error."""
  error_path = os.path.join(workdir, ERROR_FILE)
  if isinstance(outcome, Exception):
    message = f'{type(outcome).__name__}: {outcome}'
    write_json(error_path, {'run': run.name, 'error': message,
                            'traceback': getattr(outcome, 'traceback_text', '')})
    return message
  final = outcome
  write_json(os.path.join(workdir, RESULT_FILE), {
      'run': run.name, 'labels': run.labels, 'seed': run.seed,
      'tags': sweep.get('tags', {}), 'device': device_description(config),
      'model': config.model.name, 'dataset': config.dataset.name,
      'best_step': final['best_step'], 'best_metric': final.get('best_metric'),
      'best_restored_from': final.get('best_restored_from'),
      'wall_time_s': final['wall_time_s'],
      'validation': final['validation'], 'test': final['test'],
      'finished': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
  })
  if os.path.exists(error_path):
    os.remove(error_path)
  return None


def collect(sweep: dict[str, Any], out: str) -> list[dict[str, Any]]:
  """The result.json (or error.json, as status 'failed') of every run of
  the sweep that has one, in sweep order."""
  rows = []
  for run in expand(sweep):
    workdir = os.path.join(out, run.name)
    result = read_json(os.path.join(workdir, RESULT_FILE))
    if result is not None:
      rows.append({**result, 'status': 'ok'})
      continue
    error = read_json(os.path.join(workdir, ERROR_FILE))
    if error is not None:
      rows.append({'run': run.name, 'labels': run.labels, 'seed': run.seed,
                   'tags': sweep.get('tags', {}), 'status': 'failed',
                   'error': error['error']})
  return rows


def _metric_keys(rows: Sequence[dict[str, Any]], split: str) -> list[str]:
  keys = {k for row in rows for k in row.get(split, {})}
  main = metrics_lib.main_metrics(keys)
  return main + sorted(keys - set(main))


def write_csv(rows: Sequence[dict[str, Any]], axes: Sequence[str],
              path: str) -> None:
  """One row per run: labels, seed, tags, device, best step, wall time and
  every validation/ and test/ metric."""
  tags = sorted({k for row in rows for k in row.get('tags', {})})
  metric_columns = [f'{split}/{k}' for split in ('validation', 'test')
                    for k in _metric_keys(rows, split)]
  columns = (['run', *axes, 'seed', *tags, 'device', 'status', 'best_step',
              'scored_checkpoint', 'wall_time_s'] + metric_columns + ['error'])
  with open(path + '.tmp', 'w', newline='') as f:
    writer = csv.DictWriter(f, columns, restval='')
    writer.writeheader()
    for row in rows:
      flat = {'run': row['run'], **row['labels'], 'seed': row['seed'],
              **row.get('tags', {}), 'device': row.get('device', ''),
              'status': row['status'], 'best_step': row.get('best_step'),
              'scored_checkpoint': (row.get('best_restored_from') or {}).get('checkpoint'),
              'wall_time_s': row.get('wall_time_s'),
              'error': row.get('error', '')}
      for split in ('validation', 'test'):
        for key, value in row.get(split, {}).items():
          flat[f'{split}/{key}'] = value
      writer.writerow({k: ('' if v is None else v) for k, v in flat.items()})
  os.replace(path + '.tmp', path)


def mean_std(values: Sequence[float | None], digits: int = 4) -> str:
  """'mean ± std' of the defined values, std the sample standard deviation
  (ddof 1); the mean alone for one value, '–' for none."""
  values = np.array([v for v in values
                     if v is not None and math.isfinite(v)], np.float64)
  if len(values) == 0:
    return '–'
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  return f'{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}'


def group_rows(rows: Sequence[dict[str, Any]], axes: Sequence[str]
               ) -> dict[tuple[str, ...], list[dict[str, Any]]]:
  """Finished rows by their non-seed labels, in order of appearance."""
  groups = {}
  for row in rows:
    if row['status'] == 'ok':
      groups.setdefault(tuple(row['labels'][a] for a in axes), []).append(row)
  return groups


def markdown_table(rows: Sequence[dict[str, Any]], axes: Sequence[str],
                   split: str) -> str:
  """Mean ± std over seeds of the main metrics of `split`, a line per group
  and device (rows of one combination made on two devices stay apart)."""
  groups = {}
  for labels, group in group_rows(rows, axes).items():
    for row in group:
      groups.setdefault((*labels, row.get('device', '')), []).append(row)
  metrics = [(k, metrics_lib.METRICS[k].heading) for k in metrics_lib.main_metrics(
      k for g in groups.values() for r in g for k in r.get(split, {}))]
  header = [*axes, 'device', 'seeds', *(h for _, h in metrics), 'wall time (s)']
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  for labels, group in groups.items():
    cells = [*labels, str(len(group))]
    cells += [mean_std([r[split].get(k) for r in group]) for k, _ in metrics]
    cells.append(f'{np.mean([r["wall_time_s"] for r in group]):.0f}')
    lines.append('| ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def comparison_section(sweep: dict[str, Any], rows: Sequence[dict[str, Any]],
                       metrics: Sequence[str]) -> list[str]:
  """results.md's paired comparisons of each level with its axis's
  baseline, one table per compared test metric."""
  axes = {axis: [label for label, _ in choices]
          for axis, choices in sweep.get('axes', {}).items() if len(choices) > 1}
  if not axes:
    return []
  baselines = {axis: (sweep.get('baseline') or {}).get(axis, levels[0])
               for axis, levels in axes.items()}
  parts = ['', '## Compared with the baseline', '',
           'Each level against its axis\'s baseline on the runs that share '
           'the seed and every other label: the mean of the paired '
           f'differences (level − baseline), its {comparisons.CONFIDENCE:.0%} '
           'confidence interval (Student\'s t), the paired t-test and, from '
           f'{comparisons.MIN_WILCOXON} seeds, the Wilcoxon signed-rank test '
           '(scipy.stats). An interval that contains 0: not distinguishable '
           'at this number of seeds.']
  for metric in metrics:
    found = comparisons.comparisons(rows, axes, baselines, metric)
    if found:
      definition = metrics_lib.METRICS.get(metric)
      lower = bool(definition and definition.lower_is_better)
      parts += ['', f'Test {metric}:', '', comparisons.markdown(found, lower)]
  return parts


def write_markdown(rows: Sequence[dict[str, Any]], axes: Sequence[str],
                   n_runs: int, title: str, path: str,
                   sections: Sequence[str] = ()) -> None:
  finished = [r for r in rows if r['status'] == 'ok']
  failed = [r for r in rows if r['status'] == 'failed']
  devices = sorted({r['device'] for r in finished})
  tags = {k: v for r in finished for k, v in r.get('tags', {}).items()}
  parts = [f'# {title}', '',
           f'{len(finished)} of {n_runs} runs finished. Each line: mean ± '
           'sample standard deviation (ddof 1) over its seeds, of the best '
           'checkpoint (by validation).']
  if devices or tags:
    parts.append('Devices: ' + ', '.join(devices) + ''.join(
        f'; {k}: {v}' for k, v in sorted(tags.items())) + '.')
  for split in ('test', 'validation'):
    parts += ['', f'## {split.capitalize()}', '',
              markdown_table(rows, axes, split)]
  parts += list(sections)
  lost = [r for r in finished if logs.best_lost(r)]
  if lost:
    parts += ['', '## Runs whose best checkpoint was lost', '',
              'Damaged; their scores above come from another checkpoint:', '']
    parts += [f'- `{r["run"]}`: best step {r["best_step"]}, scored from '
              f'`{r["best_restored_from"]["checkpoint"]}`' for r in lost]
  if failed:
    parts += ['', '## Failed runs', '']
    parts += [f'- `{r["run"]}`: {r["error"].splitlines()[0]}' for r in failed]
  with open(path + '.tmp', 'w') as f:
    f.write('\n'.join(parts) + '\n')
  os.replace(path + '.tmp', path)


def validation_curves(workdir: str, metric: str) -> tuple[list[int], list[float]]:
  """(steps, values) of `metric` in the validation evaluations of a run."""
  scores = logs.validation_scores(workdir, metric)
  return list(scores), list(scores.values())


def _group_name(labels: Sequence[str], axes: Sequence[str]) -> str:
  return ','.join(f'{a}={l}' for a, l in zip(axes, labels)) or 'all'


def plot_curves(curves: dict[str, tuple[list[int], list[float]]],
                metric: str, path: str,
                colors: dict[str, str] | None = None) -> None:
  """Validation `metric` against step, one line per run; runs sharing a
  colour (e.g. seeds of one group) share the legend entry of the first."""
  plt = plots.pyplot()
  figure, axis = plt.subplots(figsize=(8, 5))
  labelled = set()
  for name, (steps, values) in curves.items():
    if not steps:
      continue
    color = (colors or {}).get(name)
    label = None if color in labelled else name
    labelled.add(color)
    axis.plot(steps, values, marker='.', color=color, label=label, alpha=0.8)
  axis.set_xlabel('step')
  axis.set_ylabel(f'validation {metric}')
  axis.grid(alpha=0.3)
  if labelled:
    axis.legend(fontsize='x-small', loc='best')
  figure.tight_layout()
  figure.savefig(path, dpi=120)
  plt.close(figure)


def write_plots(rows: Sequence[dict[str, Any]], axes: Sequence[str], out: str,
                metric: str) -> list[str]:
  """validation_curves.png and test_<metric>.png; returns their paths."""
  plt = plots.pyplot()
  groups = group_rows(rows, axes)
  palette = plt.get_cmap('tab20').colors
  curves, colors = {}, {}
  for index, (labels, group) in enumerate(groups.items()):
    for row in group:
      name = _group_name(labels, axes)
      key = f'{name} (seed {row["seed"]})'
      curves[key] = validation_curves(os.path.join(out, row['run']), metric)
      colors[key] = palette[index % len(palette)]
  curves_path = os.path.join(out, 'validation_curves.png')
  plot_curves(curves, metric, curves_path, colors)

  names = [_group_name(labels, axes).replace(',', '\n') for labels in groups]
  values = [[r['test'].get(metric) for r in g] for g in groups.values()]
  values = [[v for v in vs if v is not None and math.isfinite(v)] for vs in values]
  means = [np.mean(v) if v else np.nan for v in values]
  figure, axis = plt.subplots(figsize=(max(4.0, 0.9 * len(names) + 1), 4.5))
  axis.bar(range(len(names)), means, yerr=[comparisons.interval(v) for v in values],
           capsize=4, alpha=0.6,
           color=[palette[i % len(palette)] for i in range(len(names))])
  for index, seeds in enumerate(values):  # each seed's value
    axis.plot([index] * len(seeds), seeds, 'k.', markersize=5)
  axis.set_xticks(range(len(names)))
  axis.set_xticklabels(names, fontsize='x-small', rotation=90 if len(names) > 8 else 0)
  axis.set_ylabel(f'test {metric} (mean, {comparisons.CONFIDENCE:.0%} CI, seeds)')
  axis.grid(axis='y', alpha=0.3)
  figure.tight_layout()
  bars_path = os.path.join(out, f'test_{metric}.png')
  figure.savefig(bars_path, dpi=120)
  plt.close(figure)
  return [curves_path, bars_path]


def write_reports(sweep: dict[str, Any], out: str, title: str) -> list[dict[str, Any]]:
  """results.csv, results.md and the plots from the runs' result files;
  returns the rows."""
  axes = list(sweep.get('axes', {}))
  rows = collect(sweep, out)
  os.makedirs(out, exist_ok=True)
  write_csv(rows, axes, os.path.join(out, 'results.csv'))
  chosen = [row['best_metric'] for row in rows if row.get('best_metric')]
  metric = sweep.get('main_metric') or (chosen[0] if chosen else 'dice')
  write_markdown(rows, axes, len(expand(sweep)), title,
                 os.path.join(out, 'results.md'), comparison_section(
                     sweep, rows, sweep.get('compare_metrics') or [metric]))
  write_plots(rows, axes, out, metric)
  return rows


def run_sweep(sweep: dict[str, Any], out: str, only: str | None = None,
              dry_run: bool = False, title: str = 'Ablation',
              train_fn: Callable[..., dict[str, Any]] = train_run,
              worker: bool = False, seeds_at_once: int = 1,
              seeds_layout: str = 'auto') -> list[tuple[str, str]]:
  """Checks every run config, then (unless `dry_run`) trains what is not
  finished and writes the reports. Returns the failures of this call. A
  `worker` (one of --workers) skips runs another worker claimed and leaves
  the reports to the command that started it."""
  if dry_run:
    runs = [r for r in expand(sweep) if not only or re.search(only, r.name)]
    run_configs(sweep, runs)
    for run in runs:
      workdir = os.path.join(out, run.name)
      status = ('finished' if os.path.exists(os.path.join(workdir, RESULT_FILE))
                else 'failed before' if os.path.exists(
                    os.path.join(workdir, ERROR_FILE))
                else 'partial' if os.path.isdir(workdir) else 'to train')
      print(f'{run.name}: {status}')
    print(f'{len(runs)} runs, all configs valid; nothing trained (--dry_run).')
    return []
  failures = execute(sweep, out, only, train_fn, skip_claimed=worker,
                     seeds_at_once=seeds_at_once,
                     group_fn=functools.partial(train_seeds_run,
                                                layout=seeds_layout))
  if not worker:
    write_reports(sweep, out, title)
  return failures


def dispatch(sweep: dict[str, Any], argv: Sequence[str], options: Any,
             title: str) -> list[tuple[str, str]]:
  """Runs the sweep where --executor and --workers say: here, in worker
  processes, or as submitit jobs; returns the failures."""
  from unetjax import executors
  if options.executor == 'inline' and (options.workers == 1 or options.dry_run):
    return run_sweep(sweep, options.out, options.only, options.dry_run, title,
                     worker=bool(os.environ.get(executors.WORKER_ENV)),
                     seeds_at_once=options.seeds_at_once,
                     seeds_layout=options.seeds_layout)
  runs = [r for r in expand(sweep) if not options.only or re.search(options.only, r.name)]
  run_configs(sweep, runs)  # every config checked before anything starts
  missing = [r.name for r in runs
             if not os.path.exists(os.path.join(options.out, r.name, RESULT_FILE))]
  if options.executor == 'inline':
    codes = executors.run_workers(argv, options.workers, options.out)
    for index, code in enumerate(codes):
      if code:
        print(f'worker {index} exited with status {code}: see '
              f'{os.path.join(options.out, "workers", f"{index}.log")}.',
              file=sys.stderr)
  else:
    submitted = executors.submit(
        options.executor, options.sweep, sweep['seeds'], options.out, missing,
        slurm_parameters(sweep, options), options.cpu_devices, options.wait)
    print(f'{len(submitted)} run(s) submitted ({options.executor}), '
          f'{len(missing) - len(submitted)} still queued, '
          f'{len(runs) - len(missing)} finished.', flush=True)
    if not options.wait and submitted:
      print('Re-run the same command when they have ended: it collects the '
            'results and submits only what is missing.')
  rows = write_reports(sweep, options.out, title)
  return [(r['run'], r['error']) for r in rows if r['status'] == 'failed'
          and r['run'] in missing]


SLURM_KEYS = ('partition', 'time_min', 'gpus_per_run', 'cpus_per_run',
              'mem_gb', 'array_parallelism')


def slurm_parameters(sweep: dict[str, Any], options: Any) -> dict[str, Any]:
  """submitit's parameters from the sweep file's 'slurm' dict, each
  overridden by its --slurm_<key> flag."""
  given = dict(sweep.get('slurm') or {})
  for key in SLURM_KEYS:
    flag = getattr(options, f'slurm_{key}', None)
    if flag is not None:
      given[key] = flag
  parameters = {'timeout_min': given.get('time_min', 240),
                'gpus_per_node': given.get('gpus_per_run', 0),
                'cpus_per_task': given.get('cpus_per_run', 2),
                'slurm_array_parallelism': given.get('array_parallelism', 16),
                'nodes': 1, 'tasks_per_node': 1}
  if given.get('mem_gb'):
    parameters['mem_gb'] = given['mem_gb']
  if given.get('partition') and options.executor == 'slurm':
    parameters['slurm_partition'] = given['partition']
  return parameters


def run() -> None:
  from absl import flags
  flags_ = flags.FLAGS
  sweep = load_sweep(flags_.sweep)
  if flags_.seeds:  # more (or other) seeds than the sweep file's
    sweep['seeds'] = parse_seeds(flags_.seeds)
  title = os.path.splitext(os.path.basename(flags_.sweep))[0]
  failures = dispatch(sweep, sys.argv, flags_, f'Ablation: {title}')
  if failures:
    sys.exit(f'{len(failures)} run(s) failed (their error.json has the '
             'traceback; re-running the sweep retries them):\n' +
             '\n'.join(f'  {name}: {error}' for name, error in failures))
  if not flags_.dry_run:
    print(f'Results in {os.path.join(flags_.out, "results.md")} and '
          f'{os.path.join(flags_.out, "results.csv")}.')


def _define_flags() -> None:
  from absl import flags
  flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep(), e.g. '
                      'experiments/smoke.py.')
  flags.DEFINE_string('out', None, 'Folder of the runs and the results.')
  flags.DEFINE_string('only', None, 'Train only the runs whose name matches '
                      'this regular expression (the reports cover all).')
  flags.DEFINE_string('seeds', None, "Seeds instead of the sweep file's, e.g. "
                      '0-9: finished runs are kept, only new ones train.')
  flags.DEFINE_bool('dry_run', False, 'Check every run config and list the '
                    'runs with their status; train nothing.')
  command_line.define_cpu_devices()
  flags.DEFINE_integer('seeds_at_once', 1, 'Train this many seeds of a '
                       'combination at once, as one program (unetjax.seeds_at_once); '
                       'each still gets its own run folder.', lower_bound=1)
  command_line.define_seeds_layout()
  flags.DEFINE_integer('workers', 1, 'Train this many runs at once, each in '
                       'its own process on its share of the devices (CPU '
                       'cores, or GPUs one each).', lower_bound=1)
  flags.DEFINE_enum('executor', 'inline', ('inline', 'slurm', 'local'),
                    'inline: this host (with --workers); slurm: a SLURM job '
                    "array through submitit; local: submitit's local "
                    'executor (the same jobs as subprocesses here).')
  flags.DEFINE_bool('wait', False, 'With --executor: wait for the jobs to end '
                    'and write the reports.')
  flags.DEFINE_string('slurm_partition', None, 'SLURM partition.')
  flags.DEFINE_integer('slurm_time_min', None, 'Time limit per run (default 240).')
  flags.DEFINE_integer('slurm_gpus_per_run', None, 'GPUs per run (default 0).')
  flags.DEFINE_integer('slurm_cpus_per_run', None, 'CPU cores per run (default 2).')
  flags.DEFINE_integer('slurm_mem_gb', None, 'Memory per run.')
  flags.DEFINE_integer('slurm_array_parallelism', None,
                       'Runs of the array at once (default 16).')
  flags.mark_flags_as_required(['sweep', 'out'])


if __name__ == '__main__':
  from absl import flags
  _define_flags()
  command_line.main(run, resume='Re-run the same command to resume the sweep.',
                    storage_path=lambda: flags.FLAGS.out)
