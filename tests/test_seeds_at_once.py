"""Seeds trained at once: each member is the run its seed would have been."""

import collections
import json
import os
import shutil
import signal
import subprocess
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from unetjax import ablation, logs, parallel, seeds_at_once, train
from unetjax.errors import ConfigError, DivergenceError
from tests import test_main
from tests.test_train import small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_losses(workdir):
  return [r['loss'] for r in logs.read_metrics(workdir) if r['event'] == 'train']


def member_configs(tfds_dir, seeds, **overrides):
  configs = []
  for seed in seeds:
    config = small_config(tfds_dir, **{'log_every_steps': 1, **overrides})
    config.seed = seed
    configs.append(config)
  return configs


@pytest.fixture(scope='module')
def standalone(tfds_dir, tmp_path_factory):
  """Seeds 0 and 1 trained one after another, as before."""
  out = tmp_path_factory.mktemp('standalone')
  return {config.seed: (train.train_and_evaluate(config, str(out / str(config.seed))),
                        str(out / str(config.seed)))
          for config in member_configs(tfds_dir, (0, 1))}


@pytest.mark.parametrize('layout', ['loop', 'vmap'])
def test_each_member_trains_as_its_seed_alone(tfds_dir, tmp_path, standalone,
                                              layout):
  workdirs = [str(tmp_path / f'seed_{s}') for s in (0, 1)]
  finals = seeds_at_once.train_seeds(member_configs(tfds_dir, (0, 1)), workdirs,
                                     layout=layout)
  for seed, final, workdir in zip((0, 1), finals, workdirs):
    alone, alone_dir = standalone[seed]
    # Same data, keys and updates: the losses agree to float reordering.
    np.testing.assert_allclose(train_losses(workdir), train_losses(alone_dir),
                               rtol=1e-4)
    assert final['best_step'] == alone['best_step']
    for split in ('validation', 'test'):
      assert final[split]['dice'] == pytest.approx(alone[split]['dice'], abs=1e-3)
    # An ordinary run folder: its config (with its seed) and its figures.
    assert json.load(open(os.path.join(workdir, 'config.json')))['seed'] == seed
    assert os.path.exists(os.path.join(workdir, train.PREDICTIONS_FILE))
  # Two seeds learn differently.
  assert train_losses(workdirs[0]) != train_losses(workdirs[1])


def test_a_member_a_save_ahead_goes_back_to_the_step_all_reached(tfds_dir,
                                                                 tmp_path):
  configs = member_configs(tfds_dir, (0, 1))
  done = [str(tmp_path / 'done' / str(s)) for s in (0, 1)]
  seeds_at_once.train_seeds(configs, done, layout='loop')
  cut = [str(tmp_path / 'cut' / str(s)) for s in (0, 1)]
  for source, target in zip(done, cut):
    shutil.copytree(source, target)
  # As a kill between the members' saves of step 4 leaves them: member 1
  # has step 2 only (and no final record).
  shutil.rmtree(os.path.join(cut[1], 'checkpoints', '4'))
  records = logs.read_metrics(cut[1])
  with open(os.path.join(cut[1], logs.METRICS_FILE), 'w') as f:
    for record in records:
      if record['step'] <= 2 and record['event'] != 'final':
        f.write(json.dumps(record) + '\n')
  finals = seeds_at_once.train_seeds(configs, cut, layout='loop')
  assert [r['step'] for r in logs.read_metrics(cut[0])
          if r['event'] == 'resume'] == [2]
  state = lambda workdir: ocp.StandardCheckpointer().restore(
      os.path.join(workdir, 'checkpoints', '4', 'state'))
  for a, b in zip(jax.tree.leaves(state(done[1])), jax.tree.leaves(state(cut[1]))):
    np.testing.assert_array_equal(a, b)
  assert finals[1]['test']['dice'] == logs.read_metrics(done[1])[-1]['test']['dice']


def test_a_diverged_member_stops_alone(tfds_dir, tmp_path, monkeypatch):
  record_loss = train.record_loss

  def seed_1_diverges(loop, progress, step, outputs):
    if loop.config.seed == 1 and step == 2:
      raise loop.untrusted(step, 'diverged (test)')
    record_loss(loop, progress, step, outputs)

  monkeypatch.setattr(train, 'record_loss', seed_1_diverges)
  workdirs = [str(tmp_path / str(s)) for s in (0, 1)]
  finals = seeds_at_once.train_seeds(member_configs(tfds_dir, (0, 1)), workdirs,
                                     layout='loop')
  assert isinstance(finals[1], DivergenceError)
  assert finals[0]['best_step'] in (2, 4)
  assert [r['event'] for r in logs.read_metrics(workdirs[1])][-1] == 'stopped'


def test_too_many_members_for_memory_stop_before_training(tfds_dir, tmp_path,
                                                          monkeypatch):
  """The check reads XLA's analysis of the compiled step: two members need
  more than one, at most twice (the loop layout reuses the activation
  buffers of one member for the next), and a program over the free memory
  stops at its first step with the estimate, before any checkpoint."""
  needed = {}
  check = seeds_at_once.check_memory

  def recorded(stats, n_members, free, devices=1):
    needed[n_members] = devices * (
        stats.argument_size_in_bytes + stats.temp_size_in_bytes
        + stats.output_size_in_bytes - stats.alias_size_in_bytes)
    check(stats, n_members, free, devices)

  monkeypatch.setattr(seeds_at_once, 'check_memory', recorded)
  monkeypatch.setattr(seeds_at_once, 'available_bytes', lambda device: 0)
  for seeds in ((0,), (0, 1)):
    workdirs = [str(tmp_path / f'{len(seeds)}_{s}') for s in seeds]
    with pytest.raises(ConfigError, match=rf'{len(seeds)} seeds at once need '
                       r'about .* GiB.*not even one member fits'):
      seeds_at_once.train_seeds(member_configs(tfds_dir, seeds), workdirs,
                                layout='loop')
    assert not os.path.exists(os.path.join(workdirs[0], 'checkpoints', '1'))
  assert needed[1] * 1.2 < needed[2] <= needed[1] * 2.05, needed


def test_the_memory_estimate_names_how_many_fit():
  Stats = collections.namedtuple('Stats', 'argument_size_in_bytes '
                                 'temp_size_in_bytes output_size_in_bytes '
                                 'alias_size_in_bytes')
  gib = 2**30
  stats = Stats(1 * gib, 6 * gib, 1 * gib, 1 * gib)  # 1 held + 6 new, 4 members
  seeds_at_once.check_memory(stats, 4, free=6 * gib)
  seeds_at_once.check_memory(None, 4, free=0)  # no analysis: no check
  with pytest.raises(ConfigError, match=(
      r'4 seeds at once need about 7.00 GiB \(1.75 GiB per member.*and '
      r'4.50 GiB is there: train at most 2 at once.*--seeds_at_once=2\)')):
    seeds_at_once.check_memory(stats, 4, free=int(3.5 * gib))
  # Two CPU devices share the host: twice the bytes against the same free.
  with pytest.raises(ConfigError, match=r'about 14.00 GiB'):
    seeds_at_once.check_memory(stats, 4, free=6 * gib, devices=2)


def test_only_the_seed_may_differ(tfds_dir):
  configs = member_configs(tfds_dir, (0, 1))
  configs[1].model.depth = 2
  with pytest.raises(ConfigError, match=r'also differ in config.model.depth'):
    seeds_at_once.check_stackable(configs)
  with pytest.raises(ConfigError, match=r'distinct seeds'):
    seeds_at_once.check_stackable(member_configs(tfds_dir, (3, 3)))


def test_layouts_are_chosen_by_platform_and_device_count():
  assert jax.device_count() == 8
  assert parallel.choose_seeds_layout('auto', 3) == 'loop'
  assert parallel.choose_seeds_layout('auto', 16) == 'loop'
  assert parallel.choose_seeds_layout('devices', 16) == 'devices'
  with pytest.raises(ConfigError, match='a multiple of 8 seeds, not 3'):
    parallel.choose_seeds_layout('devices', 3)
  with pytest.raises(ConfigError, match="choose one of auto, vmap"):
    parallel.choose_seeds_layout('grouped', 3)


def test_a_sweep_groups_a_combinations_seeds(tfds_dir, tmp_path):
  sweep = ablation.load_sweep(os.path.join(REPO, 'experiments', 'smoke.py'))
  sweep['fixed']['config.dataset.data_dir'] = tfds_dir
  sweep['axes'].pop('aug')
  sweep['seeds'] = [0, 1, 2]
  groups = []

  def fake_group(configs, workdirs):
    groups.append([os.path.basename(w) for w in workdirs])
    return [{'best_step': 1, 'wall_time_s': 1.0, 'validation': {'dice': 0.5},
             'test': {'dice': 0.5}} for _ in configs]

  def fake_train(config, workdir):
    groups.append([os.path.basename(workdir)])
    return {'best_step': 1, 'wall_time_s': 1.0, 'validation': {}, 'test': {}}

  out = str(tmp_path / 'out')
  assert ablation.execute(sweep, out, train_fn=fake_train, group_fn=fake_group,
                          seeds_at_once=2) == []
  assert groups == [['model=unet,seed=0', 'model=unet,seed=1'],
                    ['model=unet,seed=2'],
                    ['model=resunet,seed=0', 'model=resunet,seed=1'],
                    ['model=resunet,seed=2']]
  for name in sum(groups, []):
    assert json.load(open(os.path.join(out, name, ablation.RESULT_FILE)))['run'] == name


def main_command(workdir, tfds_dir):
  return test_main.main_command(workdir, tfds_dir, *test_main.RESUME_OVERRIDES,
                                '--seeds=0-1', '--cpu_devices=2',
                                '--seeds_layout=devices')


@pytest.mark.slow
def test_seeds_over_two_cores_killed_resume_to_the_same_result(tfds_dir, tmp_path):
  """`main --seeds=0-1 --cpu_devices=2`: one seed per device ('devices'),
  killed with SIGKILL after step 10 and re-run, ends bit-identical to the
  uninterrupted run."""
  done = tmp_path / 'done'
  result = subprocess.run(main_command(done, tfds_dir), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  assert '[seed 1] Best checkpoint' in result.stdout
  cut = tmp_path / 'cut'
  process = subprocess.Popen(main_command(cut, tfds_dir), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
  deadline = time.time() + 300
  while not (cut / 'seed_1' / 'checkpoints' / '10').exists():
    assert process.poll() is None, process.communicate()
    assert time.time() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.communicate(timeout=120)
  result = subprocess.run(main_command(cut, tfds_dir), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  for seed in (0, 1):
    final = lambda run: ocp.StandardCheckpointer().restore(
        str(run / f'seed_{seed}' / 'checkpoints' / '20' / 'state'))
    for a, b in zip(jax.tree.leaves(final(done)), jax.tree.leaves(final(cut))):
      np.testing.assert_array_equal(a, b)
    assert (logs.read_metrics(str(done / f'seed_{seed}'))[-1]['test']
            == logs.read_metrics(str(cut / f'seed_{seed}'))[-1]['test'])


def composed_config(kind, tfds_dir):
  """A tiny run of each kind seeds at once must compose with."""
  if kind == 'pmap':
    return small_config(tfds_dir, parallel='pmap')
  if kind == 'patches':  # random patches, whole images evaluated by windows
    return small_config(tfds_dir, **{'dataset.patch_size': 32})
  if kind == 'classification':
    from configs import classify
    config = classify.get_config()
  else:
    from configs import instances
    config = instances.get_config()
    config.metrics.surface_metrics = False
    config.model.depth, config.model.dropout_rates = 2, (0.0,) * 3
  config.dataset.data_dir = tfds_dir
  config.model.base_filters = 4
  config.batch_size, config.eval_batch_size = 8, 64
  config.num_train_steps = config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.progress_bar = False
  return config


@pytest.mark.slow
@pytest.mark.parametrize('kind, metric', [
    ('pmap', 'dice'), ('patches', 'dice'), ('classification', 'accuracy'),
    ('instances', 'object_f1')])
def test_seeds_at_once_compose_with_pmap_patches_classes_and_objects(
    tfds_dir, tmp_path, kind, metric):
  configs = []
  for seed in (0, 1):
    config = composed_config(kind, tfds_dir)
    config.seed, config.log_every_steps = seed, 1
    configs.append(config)
  workdirs = [str(tmp_path / f'seed_{s}') for s in (0, 1)]
  finals = seeds_at_once.train_seeds(configs, workdirs, layout='vmap')
  alone = str(tmp_path / 'alone')
  train.train_and_evaluate(configs[1], alone)
  # The first step to float precision; the batched convolutions' reordering
  # grows over the next ones.
  np.testing.assert_allclose(train_losses(workdirs[1])[0], train_losses(alone)[0],
                             rtol=1e-5)
  np.testing.assert_allclose(train_losses(workdirs[1]), train_losses(alone),
                             rtol=1e-3)
  for final in finals:
    assert 0 <= final['test'][metric] <= 1
