"""Whether a difference between two arms of a sweep is real.

Every level of an axis is compared with that axis's baseline level on the
runs that differ only in that label: the same seed and the same labels on
every other axis (so seeds pair: the same data order and initial weights).
On the per-pair differences: their mean, its 95% confidence interval from
Student's t, the paired t-test's p-value and, from MIN_WILCOXON pairs, the
Wilcoxon signed-rank test's (which assumes no normality), all from
scipy.stats. A difference whose interval contains 0 is not distinguishable
from seed noise at this number of seeds.
"""

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
# Wilcoxon's exact two-sided p cannot go below 2 / 2**n: 0.0625 at 5 pairs,
# 0.031 at 6, the first count at which it can reach 0.05.
MIN_WILCOXON = 6


@dataclasses.dataclass(frozen=True)
class Comparison:
  """`level` minus `baseline` on `axis`, within one combination of the
  other axes' labels (`context`), over `n` seeds."""
  axis: str
  level: str
  baseline: str
  context: tuple[tuple[str, str], ...]
  metric: str
  n: int
  mean: float  # mean paired difference, level - baseline
  low: float  # its CONFIDENCE interval (NaN below 2 pairs)
  high: float
  t_p: float  # paired t-test, two-sided
  wilcoxon_p: float | None  # from MIN_WILCOXON pairs

  @property
  def distinguishable(self) -> bool:
    return bool(self.low > 0 or self.high < 0)


def pairs(rows: Sequence[dict[str, Any]], axis: str, level: str,
          baseline: str, metric: str, split: str = 'test'
          ) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
  """(level value, baseline value) pairs of `metric`, by the other axes'
  labels; a pair needs both runs finished with a finite value."""
  values = {}
  for row in rows:
    value = row.get(split, {}).get(metric) if row.get('status') == 'ok' else None
    if value is None or not math.isfinite(value):
      continue
    label = row['labels'].get(axis)
    context = tuple(sorted((a, l) for a, l in row['labels'].items() if a != axis))
    values[(label, context, row['seed'])] = value
  paired = {}
  for (label, context, seed), value in sorted(values.items(), key=lambda kv: kv[0][2]):
    if label == level and (baseline, context, seed) in values:
      paired.setdefault(context, []).append((value, values[(baseline, context, seed)]))
  return paired


def compare(level_values: Sequence[float], baseline_values: Sequence[float]
            ) -> dict[str, float | None]:
  """Mean difference, its t interval, the paired t-test and Wilcoxon p."""
  a, b = np.asarray(level_values, np.float64), np.asarray(baseline_values, np.float64)
  n, nan = len(a), float('nan')
  mean = float(np.mean(a - b)) if n else nan
  if n < 2:
    return {'n': n, 'mean': mean, 'low': nan, 'high': nan, 't_p': nan,
            'wilcoxon_p': None}
  if np.all(a - b == a[0] - b[0]):  # no spread: t undefined, the interval a point
    low = high = mean
    t_p = nan if mean == 0 else 0.0
  else:
    test = stats.ttest_rel(a, b)
    interval = test.confidence_interval(CONFIDENCE)
    low, high, t_p = float(interval.low), float(interval.high), float(test.pvalue)
  wilcoxon = None
  if n >= MIN_WILCOXON and np.any(a != b):
    wilcoxon = float(stats.wilcoxon(a, b).pvalue)
  return {'n': n, 'mean': mean, 'low': low, 'high': high, 't_p': t_p,
          'wilcoxon_p': wilcoxon}


def comparisons(rows: Sequence[dict[str, Any]], axes: dict[str, Sequence[str]],
                baselines: dict[str, str], metric: str,
                split: str = 'test') -> list[Comparison]:
  """Every non-baseline level of every axis against its baseline."""
  out = []
  for axis, levels in axes.items():
    for level in levels:
      if level == baselines[axis]:
        continue
      for context, values in pairs(rows, axis, level, baselines[axis], metric,
                                   split).items():
        out.append(Comparison(axis, level, baselines[axis], context, metric,
                              **compare(*zip(*values))))
  return out


def interval(values: Sequence[float]) -> float:
  """Half the width of the CONFIDENCE t interval of the mean of `values`
  (0 for fewer than 2)."""
  values = np.asarray([v for v in values if v is not None and math.isfinite(v)])
  if len(values) < 2:
    return 0.0
  return float(stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1)
               * values.std(ddof=1) / math.sqrt(len(values)))


def _p(value: float | None) -> str:
  if value is None or not math.isfinite(value):
    return '–'
  return f'{value:.2g}' if value >= 0.001 else '< 0.001'


def markdown(found: Sequence[Comparison], lower_is_better: bool = False) -> str:
  """The comparisons as a table, one line each."""
  better = 'lower' if lower_is_better else 'higher'
  lines = ['| axis | level | baseline | other labels | seeds | mean difference '
           '| 95% CI | paired t p | Wilcoxon p | |',
           '|---|---|---|---|---|---|---|---|---|---|']
  for c in found:
    context = ', '.join(f'{a}={l}' for a, l in c.context) or '–'
    if c.n < 2:
      verdict = 'one seed: nothing to say'
    elif c.distinguishable:
      improved = c.mean < 0 if lower_is_better else c.mean > 0
      verdict = f'{c.level if improved else c.baseline} better ({better} is better)'
    else:
      verdict = 'not distinguishable'
    ci = (f'[{c.low:+.4f}, {c.high:+.4f}]' if math.isfinite(c.low) else '–')
    lines.append(f'| {c.axis} | {c.level} | {c.baseline} | {context} | {c.n} '
                 f'| {c.mean:+.4f} | {ci} | {_p(c.t_p)} | {_p(c.wilcoxon_p)} '
                 f'| {verdict} |')
  return '\n'.join(lines)
