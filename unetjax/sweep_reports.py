"""A sweep's reports from its runs' result rows: results.csv, results.md
(mean +- sd per combination, and each level against its axis's baseline,
paired by seed: `unetjax.comparisons`) and the plots (validation curves,
test bars with 95% intervals and the per-seed points)."""

import csv
import math
import os
from typing import Any, Sequence

import numpy as np

from unetjax import comparisons
from unetjax import logs
from unetjax import metrics as metrics_lib
from unetjax import plots


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


def write(sweep: dict[str, Any], rows: Sequence[dict[str, Any]], n_runs: int,
          out: str, title: str) -> None:
  """out/results.csv, out/results.md and the plots of `rows` (one per run
  that has a result or an error, of the sweep's `n_runs`)."""
  axes = list(sweep.get('axes', {}))
  os.makedirs(out, exist_ok=True)
  write_csv(rows, axes, os.path.join(out, 'results.csv'))
  chosen = [row['best_metric'] for row in rows if row.get('best_metric')]
  metric = sweep.get('main_metric') or (chosen[0] if chosen else 'dice')
  write_markdown(rows, axes, n_runs, title, os.path.join(out, 'results.md'),
                 comparison_section(sweep, rows,
                                    sweep.get('compare_metrics') or [metric]))
  write_plots(rows, axes, out, metric)
