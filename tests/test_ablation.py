import csv
import importlib
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import default
from unetjax import ablation, metrics, pixel_forest, sweep_reports
from unetjax.data import pipeline
from unetjax.errors import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(REPO, 'experiments', 'smoke.py')


def smoke_sweep(tfds_dir):
  sweep = ablation.load_sweep(SMOKE)
  sweep['fixed']['config.dataset.data_dir'] = tfds_dir
  return sweep


def never_train(config, workdir):
  raise AssertionError(f'{workdir} was trained again')


@pytest.fixture(scope='module')
def smoke_run(tfds_dir, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('smoke'))
  sweep = smoke_sweep(tfds_dir)
  return sweep, out, ablation.run_sweep(sweep, out)


def read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


@pytest.mark.slow
def test_smoke_sweep_writes_a_row_per_run_tables_and_plots(smoke_run):
  sweep, out, failures = smoke_run
  assert failures == []
  names = {r.name for r in ablation.expand(sweep)}
  assert names == {'model=unet,aug=off,seed=0', 'model=unet,aug=on,seed=0',
                   'model=resunet,aug=off,seed=0', 'model=resunet,aug=on,seed=0'}
  rows = read_csv(os.path.join(out, 'results.csv'))
  assert {r['run'] for r in rows} == names
  for row in rows:
    assert row['status'] == 'ok' and row['best_step'] in ('2', '4')
    assert f'model={row["model"]},aug={row["aug"]},seed={row["seed"]}' == row['run']
    for split in ('validation', 'test'):
      scores = metrics.main_metrics(
          k.split('/')[1] for k, v in row.items() if k.startswith(f'{split}/') and v)
      scores = [k for k in scores if not metrics.METRICS[k].lower_is_better]
      assert {'dice', 'iou', 'precision', 'recall'} <= set(scores)
      for key in scores:
        assert 0 <= float(row[f'{split}/{key}']) <= 1, (split, key)
    assert float(row['wall_time_s']) > 0 and 'cpu' in row['device'].lower()
  with open(os.path.join(out, 'results.md')) as f:
    markdown = f.read()
  assert '4 of 4 runs finished' in markdown
  device = rows[0]['device']  # every line says which device made its runs
  assert markdown.count(f'| unet | off | {device} | 1 |') == 2  # test, validation
  assert '| model | aug | device | seeds | Dice | IoU |' in markdown
  for png in ('validation_curves.png', 'test_dice.png'):
    with open(os.path.join(out, png), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  resunet = os.path.join(out, 'model=resunet,aug=on,seed=0')
  assert ablation.read_json(os.path.join(resunet, 'result.json'))['labels'] == {
      'model': 'resunet', 'aug': 'on'}
  assert sweep_reports.validation_curves(resunet, 'dice')[0] == [2, 4]


@pytest.mark.slow
def test_rerun_trains_nothing_and_rebuilds_the_tables(smoke_run, capsys):
  sweep, out, _ = smoke_run
  results = [os.path.join(out, r.name, 'result.json')
             for r in ablation.expand(sweep)]
  mtimes = [os.stat(p).st_mtime_ns for p in results]
  os.remove(os.path.join(out, 'results.md'))
  assert ablation.run_sweep(sweep, out, train_fn=never_train) == []
  assert [os.stat(p).st_mtime_ns for p in results] == mtimes
  assert capsys.readouterr().out.count('finished, skipped') == 4
  assert os.path.exists(os.path.join(out, 'results.md'))


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tfds_dir, tmp_path):
  sweep = smoke_sweep(tfds_dir)
  calls = []

  def fake_train(config, workdir):
    calls.append(os.path.basename(workdir))
    if config.model.name == 'resunet':
      raise RuntimeError('out of memory')
    scores = {k: 0.5 for k in metrics.main_metrics(metrics.METRICS)}
    return {'best_step': 4, 'wall_time_s': 1.0, 'validation': scores,
            'test': scores}

  failures = ablation.run_sweep(sweep, str(tmp_path), train_fn=fake_train)
  assert len(calls) == 4
  assert sorted(name for name, _ in failures) == [
      'model=resunet,aug=off,seed=0', 'model=resunet,aug=on,seed=0']
  assert all(error == 'RuntimeError: out of memory' for _, error in failures)
  rows = {r['run']: r for r in read_csv(str(tmp_path / 'results.csv'))}
  assert rows['model=resunet,aug=on,seed=0']['status'] == 'failed'
  assert rows['model=unet,aug=on,seed=0']['status'] == 'ok'
  with open(tmp_path / 'results.md') as f:
    markdown = f.read()
  assert 'out of memory' in markdown
  device = rows['model=unet,aug=on,seed=0']['device']
  assert (f'| unet | on | {device} | 1 | ' + '0.5000 | ' * len(metrics.main_metrics(metrics.METRICS))
          + '1 |') in markdown
  # A re-run retries only the failures.
  calls.clear()
  ablation.run_sweep(sweep, str(tmp_path), train_fn=fake_train)
  assert sorted(calls) == ['model=resunet,aug=off,seed=0',
                           'model=resunet,aug=on,seed=0']


@pytest.mark.parametrize('overrides, message', [
    ({'config.optimizer.learning_rat': 1e-3},
     r'config.optimizer.learning_rat is not a known field; did you mean '
     r'config.optimizer.learning_rate\? \(every run\)'),
    ({'config.modle.depth': 2},
     r"config.modle is not a config section; did you mean 'model'\?"),
    ({'model.depth': 2}, r'start with "config."'),
    ({'config.batch_size': 'eight'}, r'config.batch_size'),
])
def test_a_typo_in_a_sweep_is_one_clear_error_before_training(
    tfds_dir, tmp_path, overrides, message):
  sweep = smoke_sweep(tfds_dir)
  sweep['fixed'].update(overrides)
  with pytest.raises(ConfigError, match=message):
    ablation.run_sweep(sweep, str(tmp_path), train_fn=never_train)
  assert os.listdir(tmp_path) == []


def test_malformed_sweeps_are_named():
  sweep = {'base': default.get_config(), 'axis': {}, 'seeds': [0, 0]}
  with pytest.raises(ConfigError, match=r"unknown key 'axis'; did you mean "
                     r"'axes'\?(.|\n)*distinct ints"):
    ablation.check_sweep(sweep)


def test_cli_exits_with_one_message_for_a_typo(tmp_path):
  sweep_file = tmp_path / 'experiments' / 'typo.py'
  sweep_file.parent.mkdir()
  sweep_file.write_text(
      f'def get_sweep():\n'
      f'  return {{"base": {os.path.join(REPO, "configs", "default.py")!r},\n'
      f'          "axes": {{"lr": [("a", {{"config.optimizer.lr": 1.0}})]}},\n'
      f'          "seeds": [0]}}\n')
  typo = subprocess.run(
      [sys.executable, '-m', 'unetjax.ablation', f'--sweep={sweep_file}',
       f'--out={tmp_path / "out"}'], cwd=REPO, capture_output=True, text=True)
  assert typo.returncode != 0
  assert 'error: The sweep has invalid run configs' in typo.stderr
  assert 'config.optimizer.lr is not a known field' in typo.stderr
  assert 'Traceback' not in typo.stderr
  assert not os.path.exists(tmp_path / 'out')


def test_dry_run_lists_the_selected_runs_and_trains_nothing(tfds_dir, tmp_path,
                                                             capsys):
  sweep = smoke_sweep(tfds_dir)
  os.makedirs(tmp_path / 'model=unet,aug=on,seed=0')
  assert ablation.run_sweep(sweep, str(tmp_path), only='aug=on', dry_run=True,
                            train_fn=never_train) == []
  out = capsys.readouterr().out
  assert 'model=unet,aug=on,seed=0: partial' in out
  assert 'model=resunet,aug=on,seed=0: to train' in out
  assert 'aug=off' not in out
  assert '2 runs, all configs valid' in out
  assert os.listdir(tmp_path) == ['model=unet,aug=on,seed=0']


def test_mean_std_matches_numpy():
  values = [0.81, 0.79, 0.86]
  assert sweep_reports.mean_std(values) == (
      f'{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}')
  assert sweep_reports.mean_std([0.5, None, float('nan')]) == '0.5000'
  assert sweep_reports.mean_std([]) == '–'
  rows = [{'status': 'ok', 'labels': {'m': 'a'}, 'seed': s, 'wall_time_s': 10.0 * s,
           'device': 'cpu', 'test': {'dice': d}} for s, d in enumerate(values)]
  table = sweep_reports.markdown_table(rows, ['m'], 'test')
  assert table.splitlines()[2] == (
      f'| a | cpu | 3 | {np.mean(values):.4f} ± {np.std(values, ddof=1):.4f} | 10 |')
  rows[2]['device'] = 'NVIDIA H100 x1 (jit)'  # another device: its own line
  lines = sweep_reports.markdown_table(rows, ['m'], 'test').splitlines()[2:]
  assert lines == [
      f'| a | cpu | 2 | {np.mean(values[:2]):.4f} ± {np.std(values[:2], ddof=1):.4f} | 5 |',
      f'| a | NVIDIA H100 x1 (jit) | 1 | {values[2]:.4f} | 20 |']


def test_study_sweep_is_valid_for_both_protocols(monkeypatch):
  for protocol, side in (('cpu', 128), ('gpu', 256)):
    monkeypatch.setenv('UNETJAX_PROTOCOL', protocol)
    sweep = ablation.load_sweep(os.path.join(REPO, 'experiments', 'study.py'))
    runs = ablation.expand(sweep)
    assert len(runs) == 3 * (4 * 2 + 1) * 3
    configs = ablation.run_configs(sweep, runs)
    assert configs[0].dataset.name == f'isbi2012_em/{side}px'
    assert sweep['tags'] == {'protocol': protocol}


def test_study_long_protocols_use_each_datasets_native_recipe(monkeypatch):
  from configs import drive_native, kvasir_native, membranes_native
  recipes = {'drive': drive_native, 'isbi2012_em': membranes_native,
             'kvasir_seg': kvasir_native}
  no_augmentation = default.get_config().augment.to_dict()
  for protocol, n_models, augs, n_seeds in (('long', 1, ('on', 'off'), 1),
                                            ('long_gpu', 4, ('on',), 3)):
    monkeypatch.setenv('UNETJAX_PROTOCOL', protocol)
    sweep = ablation.load_sweep(os.path.join(REPO, 'experiments', 'study.py'))
    runs = ablation.expand(sweep)
    assert len(runs) == 3 * n_models * len(augs) * n_seeds
    assert {run.labels['aug'] for run in runs} == set(augs)
    for run, config in zip(runs, ablation.run_configs(sweep, runs)):
      recipe = recipes[run.labels['dataset']].get_config()
      assert config.dataset.name == recipe.dataset.name
      assert config.dataset.patch_size == recipe.dataset.patch_size
      augment = (recipe.augment.to_dict() if run.labels['aug'] == 'on'
                 else no_augmentation)
      assert config.augment.to_dict() == augment
      assert augment != recipe.augment.to_dict() or run.labels['aug'] == 'on'
      assert config.num_train_steps == recipe.num_train_steps
      assert config.optimizer.schedule == 'poly'
      assert config.model.name == run.labels['model']
      # 'long' trains the recipe's width; 'long_gpu' each network's own.
      model = (recipe.model if protocol == 'long' else
               importlib.import_module(f"configs.{run.labels['model']}")
               .get_config().model)
      assert config.model.to_dict() == model.to_dict()


@pytest.mark.slow
def test_pixel_forest_beats_chance_and_is_scored_by_unetjax_metrics(
    tfds_dir, tmp_path, monkeypatch):
  fitted = []  # the forest the run fits, kept to score it here
  fit = pixel_forest.fit
  monkeypatch.setattr(pixel_forest, 'fit',
                      lambda *args: fitted.append(fit(*args)) or fitted[-1])
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  config.model = pixel_forest.default_config()
  config.model.update(n_estimators=8, max_depth=8, train_pixels=4000,
                      sigma_max=4.0, n_jobs=1)
  config.metrics.surface_metrics = False
  ablation.check_run_config(config)
  final = pixel_forest.train_and_evaluate(config, str(tmp_path))
  assert final['best_step'] is None
  test = final['test']

  info = pipeline.prepare(config.dataset)
  (forest,) = fitted
  batch = next(pipeline.eval_batches(config.dataset, 'test', 256))
  labels = batch['mask'].astype(np.int32)
  predictions = pixel_forest.predict(forest, batch['image'], config.model, 2)
  logits = np.where(predictions == 1, 10.0, -10.0)[..., None].astype(np.float32)
  expected = metrics.summarize(metrics.merge(None, jax.jit(
      metrics.batch_statistics, static_argnames='surface_metrics')(
          logits, labels, surface_metrics=False)), info.class_names)
  assert set(test) == set(expected)
  for key in expected:
    np.testing.assert_allclose(test[key], expected[key], rtol=1e-6, err_msg=key)
  tp = np.sum((predictions == 1) & (labels == 1))
  fp = np.sum((predictions == 1) & (labels == 0))
  fn = np.sum((predictions == 0) & (labels == 1))
  assert test['iou'] == pytest.approx(tp / (tp + fp + fn))
  foreground = labels.mean()
  assert test['pixel_accuracy'] > max(foreground, 1 - foreground) + 0.05
  assert test['dice'] > 2 * foreground / (1 + 2 * foreground) + 0.2  # chance: p
