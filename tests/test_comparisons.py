"""Paired comparisons of a sweep's levels with their baseline: the
statistics against their formulas and scipy.stats, the pairing by seed and
other labels, and results.md / --seeds in a sweep whose training is faked."""

import math
import os
import random

import numpy as np
import pytest
from scipy import stats

from configs import default
from unetjax import ablation, comparisons, metrics
from unetjax.errors import ConfigError


def test_statistics_are_the_paired_t_formulas_and_scipys_wilcoxon():
  rng = np.random.default_rng(0)
  baseline = rng.normal(0.80, 0.02, 7)
  level = baseline + rng.normal(0.01, 0.01, 7)
  found = comparisons.compare(level, baseline)
  d = level - baseline
  half = stats.t.ppf(0.975, 6) * d.std(ddof=1) / math.sqrt(7)
  t = d.mean() / (d.std(ddof=1) / math.sqrt(7))
  assert found['n'] == 7 and found['mean'] == pytest.approx(d.mean())
  assert (found['low'], found['high']) == pytest.approx((d.mean() - half, d.mean() + half))
  assert found['t_p'] == pytest.approx(2 * stats.t.sf(abs(t), 6))
  # Wilcoxon's exact p on 7 signed ranks: count the sign patterns whose
  # rank sum is as extreme as the observed one.
  ranks = stats.rankdata(np.abs(d))
  observed = ranks[d > 0].sum()
  sums = [sum(r for r, s in zip(ranks, signs) if s) for signs in
          np.ndindex(*(2,) * 7)]
  extreme = sum(abs(x - ranks.sum() / 2) >= abs(observed - ranks.sum() / 2) for x in sums)
  assert found['wilcoxon_p'] == pytest.approx(extreme / 2**7)
  assert found['wilcoxon_p'] == pytest.approx(stats.wilcoxon(level, baseline).pvalue)
  five = comparisons.compare(level[:5], baseline[:5])
  assert five['wilcoxon_p'] is None and math.isfinite(five['t_p'])
  one = comparisons.compare(level[:1], baseline[:1])
  assert math.isnan(one['low']) and one['mean'] == pytest.approx(d[0])
  same = comparisons.compare(baseline, baseline)
  assert same['mean'] == 0 and same['low'] == same['high'] == 0


def row(labels, seed, value, status='ok'):
  return {'run': ','.join(f'{a}={l}' for a, l in labels.items()) + f',seed={seed}',
          'labels': labels, 'seed': seed, 'status': status,
          'test': {'dice': value}}


def test_runs_pair_by_seed_and_by_the_other_axes_labels():
  """aug=on adds 0.01 + 0.001 * seed to aug=off, for each model; rows come
  shuffled, one run failed and one is missing."""
  rows = []
  for model, base in (('unet', 0.8), ('resunet', 0.7)):
    for seed in range(4):
      rows.append(row({'model': model, 'aug': 'off'}, seed, base + 0.003 * seed))
      rows.append(row({'model': model, 'aug': 'on'}, seed,
                      base + 0.003 * seed + 0.01 + 0.001 * seed))
  rows[-1]['status'] = 'failed'  # resunet, aug=on, seed 3
  del rows[0]  # unet, aug=off, seed 0
  random.Random(0).shuffle(rows)
  found = comparisons.comparisons(rows, {'model': ['unet', 'resunet'], 'aug': ['off', 'on']},
                                  {'model': 'unet', 'aug': 'off'}, 'dice')
  by = {(c.axis, c.context): c for c in found}
  unet = by[('aug', (('model', 'unet'),))]
  assert unet.n == 3 and unet.mean == pytest.approx(0.01 + 0.001 * 2)  # seeds 1-3
  resunet = by[('aug', (('model', 'resunet'),))]
  assert resunet.n == 3 and resunet.mean == pytest.approx(0.01 + 0.001)  # seeds 0-2
  assert unet.distinguishable and resunet.distinguishable
  model = by[('model', (('aug', 'off'),))]
  assert model.level == 'resunet' and model.mean == pytest.approx(-0.1)


def fake_sweep(seeds=(0, 1, 2)):
  return {'base': default.get_config(), 'seeds': list(seeds),
          'axes': {'aug': [('off', {}), ('on', {'config.augment.flip_horizontal_prob': 0.5})],
                   'lr': [('low', {'config.optimizer.learning_rate': 1e-4}),
                          ('high', {'config.optimizer.learning_rate': 1e-2})]},
          'baseline': {'lr': 'high'}, 'main_metric': 'dice',
          'compare_metrics': ['dice', 'hd95']}


def fake_train(calls):
  def train(config, workdir):
    calls.append(os.path.basename(workdir))
    # Flips gain 0.02 + 0.001 * seed (real); the learning rate changes
    # Dice by +-1e-4 at random (noise).
    gain = (0.02 + 0.001 * config.seed) * (config.augment.flip_horizontal_prob > 0)
    noise = 1e-4 * (-1) ** config.seed * (config.optimizer.learning_rate > 1e-3)
    scores = {k: 0.5 for k in metrics.main_metrics(metrics.METRICS)}
    scores.update(dice=0.7 + 0.01 * config.seed + gain + noise, hd95=10.0 - 100 * gain)
    return {'best_step': 1, 'wall_time_s': 1.0, 'validation': scores, 'test': scores}
  return train


def table_lines(markdown, start):
  return [line.split(' | ') for line in markdown.splitlines() if line.startswith(start)]


def test_results_md_compares_each_level_with_its_baseline_and_more_seeds_train_only_new_runs(
    tmp_path):
  calls = []
  ablation.run_sweep(fake_sweep(), str(tmp_path), train_fn=fake_train(calls))
  assert len(calls) == 12
  markdown = (tmp_path / 'results.md').read_text()
  assert '## Compared with the baseline' in markdown
  aug = table_lines(markdown, '| aug | on | off |')
  assert len(aug) == 4  # dice and hd95, for each lr level
  # Columns: axis, level, baseline, other labels, seeds, mean, CI, t p, Wilcoxon p, verdict.
  assert sorted(cells[5] for cells in aug) == ['+0.0210', '+0.0210', '-2.1000', '-2.1000']
  assert all(cells[4] == '3' and cells[8] == '–' for cells in aug)  # Wilcoxon from 6
  assert all(cells[9].startswith('on better') for cells in aug)
  assert any('lower is better' in cells[9] for cells in aug)
  lr = table_lines(markdown, '| lr | low | high |')
  assert len(lr) == 4 and all('not distinguishable' in cells[9] for cells in lr)
  # Three more seeds: only their 12 runs train, and Wilcoxon appears.
  calls.clear()
  ablation.run_sweep(fake_sweep(range(6)), str(tmp_path), train_fn=fake_train(calls))
  assert sorted(calls) == sorted(r.name for r in ablation.expand(fake_sweep(range(3, 6))))
  markdown = (tmp_path / 'results.md').read_text()
  six = table_lines(markdown, '| aug | on | off |')
  assert all(cells[4] == '6' for cells in six)
  assert all(cells[8] == '0.031' for cells in six)  # exact: 2 / 2**6
  assert (tmp_path / 'test_dice.png').exists()


def test_baseline_and_seeds_are_checked():
  sweep = fake_sweep()
  sweep['baseline'] = {'lr': 'medium'}
  with pytest.raises(ConfigError, match=r"baseline lr='medium': axis 'lr' has the labels \['low', 'high'\]"):
    ablation.check_sweep(sweep)
  sweep['baseline'] = {'depth': '3'}
  with pytest.raises(ConfigError, match="no axis 'depth'"):
    ablation.check_sweep(sweep)
  assert ablation.parse_seeds('0-3,7,2') == [0, 1, 2, 3, 7]
  with pytest.raises(ConfigError, match='give seeds such as 0-9'):
    ablation.parse_seeds('5-2')


def test_the_tables_say_which_runs_were_scored_from_another_checkpoint(tmp_path):
  """A run whose best checkpoint was damaged (unetjax.train's final record:
  best_step 40, best_restored_from checkpoints/30) is named in results.md
  and its scored checkpoint is a results.csv column."""
  def train(config, workdir):
    final = fake_train([])(config, workdir)
    lost = config.seed == 1 and config.augment.flip_horizontal_prob > 0
    final['best_step'] = 40
    final['best_restored_from'] = {'checkpoint': 'checkpoints/30' if lost else 'best/40',
                                   'step': 30 if lost else 40}
    return final
  ablation.run_sweep(fake_sweep(), str(tmp_path), train_fn=train)
  markdown = (tmp_path / 'results.md').read_text()
  section = markdown.split('## Runs whose best checkpoint was lost')[1]
  lines = [l for l in section.splitlines() if l.startswith('- ')]
  assert sorted(lines) == sorted(
      f'- `aug=on,lr={lr},seed=1`: best step 40, scored from `checkpoints/30`'
      for lr in ('low', 'high'))
  import csv
  with open(tmp_path / 'results.csv') as f:
    scored = {r['run']: r['scored_checkpoint'] for r in csv.DictReader(f)}
  assert scored['aug=on,lr=low,seed=1'] == 'checkpoints/30'
  assert scored['aug=off,lr=low,seed=1'] == 'best/40'


def test_peer_budget_table_pairs_the_plan_with_each_recipe_by_seed(tmp_path):
  """experiments/peer_budget_table.py: the plan's lead over the peer and its
  paired statistics, from run folders and the peer's JSON files."""
  import json
  from experiments import peer_budget_table
  planned, peer = [0.81, 0.80, 0.82], [0.805, 0.802, 0.811]
  folder = tmp_path / 'drive'
  for seed, (ours, theirs) in enumerate(zip(planned, peer)):
    run = folder / f'planned-10m-seed{seed}'
    run.mkdir(parents=True)
    (run / 'config.json').write_text(json.dumps({'num_train_steps': 1000}))
    final = {'event': 'final', 'test': {'dice': ours, 'dice_per_image': ours}}
    (run / 'metrics.jsonl').write_text(json.dumps(final) + '\n')
    (folder / f'basic_unet-10m-seed{seed}.json').write_text(json.dumps(
        {'steps': 2000, 'test': {'dice': theirs, 'dice_per_image': theirs}}))
  found = list(peer_budget_table.rows(str(tmp_path)))
  assert len(found) == 6
  table = peer_budget_table.paired(found)
  row = next(line for line in table.splitlines()
             if line.startswith('| recipe | planned | basic_unet'))
  cells = [c.strip() for c in row.split('|')]
  expected = stats.ttest_rel(planned, peer)
  assert cells[5] == '3'
  assert float(cells[6]) == pytest.approx(np.mean(np.subtract(planned, peer)), abs=1e-4)
  low, high = expected.confidence_interval(0.95)
  assert cells[7] == f'[{low:+.4f}, {high:+.4f}]'
  assert cells[8] == f'{expected.pvalue:.2g}'


def test_peer_budget_table_reads_any_dataset_folder_and_compares_a_named_recipe(tmp_path):
  """A dataset folder outside DRIVE, ISBI 2012 and Kvasir-SEG is read, and
  the recipe named second is the one the others are compared against."""
  import json
  from experiments import peer_budget_table
  high, low = [0.60, 0.62, 0.59], [0.55, 0.58, 0.57]
  for seed, scores in enumerate(zip(high, low)):
    for recipe, score in zip(('rate2e3', 'rate4e3'), scores):
      run = tmp_path / 'kvasir300' / f'{recipe}-10m-seed{seed}'
      run.mkdir(parents=True)
      (run / 'config.json').write_text(json.dumps({'num_train_steps': 373}))
      final = {'event': 'final', 'test': {'dice': score, 'dice_per_image': score}}
      (run / 'metrics.jsonl').write_text(json.dumps(final) + '\n')
  found = list(peer_budget_table.rows(str(tmp_path)))
  assert {r['dataset'] for r in found} == {'kvasir300'} and len(found) == 6
  table = peer_budget_table.paired(found, 'rate2e3')
  row = next(line for line in table.splitlines()
             if line.startswith('| recipe | rate2e3 | rate4e3'))
  cells = [c.strip() for c in row.split('|')]
  assert float(cells[6]) == pytest.approx(np.mean(np.subtract(high, low)), abs=1e-4)
  assert cells[8] == f'{stats.ttest_rel(high, low).pvalue:.2g}'
