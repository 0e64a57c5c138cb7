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
result.json files (`unetjax.sweep_reports`); `--seeds=0-9` extends it to more
seeds, training only the
new runs. results.md compares each level with its axis's baseline, paired by
seed (`unetjax.comparisons`).
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import difflib
import functools
import itertools
import json
import os
import re
import sys
import time
import traceback
from typing import Any, Callable, Sequence

import ml_collections

from unetjax import configuration
from unetjax import locks
from unetjax import logs
from unetjax import sweep_reports
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


def write_reports(sweep: dict[str, Any], out: str, title: str) -> list[dict[str, Any]]:
  """results.csv, results.md and the plots from the runs' result files
  (`sweep_reports`); returns the rows."""
  rows = collect(sweep, out)
  sweep_reports.write(sweep, rows, len(expand(sweep)), out, title)
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
