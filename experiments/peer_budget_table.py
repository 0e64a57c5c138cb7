"""The table of experiments/peer_budget.sh: per dataset and recipe, steps,
test Dice (pooled and per image), wall time against the plan's prediction;
then the planned recipe (or the one named second) against each other
recipe, paired by seed, with the ablation runner's statistics
(unetjax.comparisons). Each folder of OUT is a dataset.

  python experiments/peer_budget_table.py OUT > OUT/results.md
  python experiments/peer_budget_table.py OUT rate2e3 > OUT/results.md
"""

import glob
import json
import os
import re
import sys

from unetjax import comparisons

RECIPES = ('planned', 'hand', 'basic_unet', 'dyn_unet')
DATASETS = ('drive', 'isbi', 'kvasir')  # in this order, then any others


def datasets(out: str) -> list[str]:
  found = sorted(d for d in os.listdir(out) if os.path.isdir(os.path.join(out, d)))
  return sorted(found, key=lambda d: DATASETS.index(d) if d in DATASETS else len(DATASETS))


def final_record(workdir: str) -> dict | None:
  path = os.path.join(workdir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    records = [json.loads(line) for line in f if line.strip().startswith('{')]
  finals = [r for r in records if r.get('event') == 'final']
  return finals[-1] if finals else None


def rows(out: str):
  times = {}
  if os.path.exists(os.path.join(out, 'times.jsonl')):
    with open(os.path.join(out, 'times.jsonl')) as f:
      for line in f:
        t = json.loads(line)
        times[(t['run'], t['seed'], t['budget'])] = t
  for dataset in datasets(out):
    for path in sorted(glob.glob(os.path.join(out, dataset, '*-seed*'))):
      name = os.path.basename(path)
      match = re.fullmatch(r'(\w+)-(\w+)-seed(\d+)(\.json)?', name)
      if not match:
        continue
      recipe, budget, seed = match.group(1), match.group(2), int(match.group(3))
      if match.group(4):
        with open(path) as f:
          record = json.load(f)
        steps, test = record['steps'], record['test']
      else:
        final = final_record(path)
        if final is None:
          continue
        with open(os.path.join(path, 'config.json')) as f:
          steps = json.load(f)['num_train_steps']
        test = final['test']
      t = times.get((f'{dataset}/{recipe}', seed, budget), {})
      yield dict(dataset=dataset, recipe=recipe, budget=budget, seed=seed,
                 steps=steps, dice=test['dice'], per_image=test['dice_per_image'],
                 wall=t.get('wall_s'), predicted=t.get('predicted_s'))


def markdown(found) -> str:
  lines = ['| dataset | recipe | budget | seed | steps | test Dice | per image | wall time (predicted) |',
           '| --- | --- | --- | --- | --- | --- | --- | --- |']
  order = {r: i for i, r in enumerate(RECIPES)}
  dataset_order = {d: i for i, d in enumerate(dict.fromkeys(r['dataset'] for r in found))}
  for r in sorted(found, key=lambda r: (dataset_order[r['dataset']], r['budget'],
                                        r['seed'], order.get(r['recipe'], 9))):
    wall = (f"{r['wall'] / 60:.1f} min ({r['predicted'] / 60:.1f}, "
            f"{100 * (r['wall'] / r['predicted'] - 1):+.0f}%)" if r['wall'] else '–')
    lines.append(f"| {r['dataset']} | {r['recipe']} | {r['budget']} | {r['seed']} "
                 f"| {r['steps']} | {r['dice']:.4f} | {r['per_image']:.4f} | {wall} |")
  return '\n'.join(lines)


def paired(found, level: str = 'planned') -> str:
  """`level` against every other recipe, by dataset and budget, seeds paired."""
  runs = [dict(status='ok', seed=r['seed'], labels=dict(recipe=r['recipe'],
               dataset=r['dataset'], budget=r['budget']),
               test=dict(dice=r['dice'], dice_per_image=r['per_image']))
          for r in found]
  recipes = sorted({r['recipe'] for r in found}, key=lambda r: (
      RECIPES.index(r) if r in RECIPES else 9, r))
  tables = []
  for metric in ('dice', 'dice_per_image'):
    # Each other recipe in turn is the baseline, so every row reads
    # level - other.
    found_ = [c for other in recipes if other != level
              for c in comparisons.comparisons(
                  runs, {'recipe': [level]}, {'recipe': other}, metric)]
    tables.append(f'Test {metric}, {level} minus the other recipe:\n\n'
                  + comparisons.markdown(found_))
  return '\n\n'.join(tables)


if __name__ == '__main__':
  found = list(rows(sys.argv[1]))
  level = sys.argv[2] if len(sys.argv) > 2 else 'planned'
  print(markdown(found))
  if level in {r['recipe'] for r in found}:
    print()
    print(paired(found, level))
