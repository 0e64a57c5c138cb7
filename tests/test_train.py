import functools
import json
import os
import shutil
import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from unetjax import (checkpoints, configuration, evaluation, logs, losses,
                     metrics, models, train)
from unetjax import optimizers
from unetjax import state as state_lib
from unetjax.data import pipeline
from unetjax.errors import (ConfigError, DataError, DivergenceError,
                            InputShapeError, WorkdirError)


def small_config(tfds_dir, **overrides):
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  config.model.base_filters = 8
  config.model.depth = 3
  config.model.dropout_rates = (0.0,) * 4
  config.batch_size = 8
  config.eval_batch_size = 64
  config.num_train_steps = 4
  config.log_every_steps = 2
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.progress_bar = False
  for key, value in overrides.items():
    section = config
    *parents, leaf = key.split('.')
    for parent in parents:
      section = section[parent]
    section[leaf] = value
  return config


def retype(section, key, value):
  """Sets a field to a value of another type, as a config file can."""
  del section[key]
  section[key] = value


def make_state(config, image_shape=(64, 64, 1)):
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  tx, _ = optimizers.optimizer_and_schedule(config.optimizer,
                                           config.num_train_steps)
  return state_lib.init_train_state(jax.random.key(0), model, tx, image_shape)


def state_template(config, image_shape):
  """Shapes of the run's TrainState on one device, traced without compute."""
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  tx, _ = optimizers.optimizer_and_schedule(config.optimizer,
                                           config.num_train_steps)
  shapes = jax.eval_shape(functools.partial(
      state_lib.create_train_state, model=model, tx=tx,
      image_shape=image_shape, averaged=state_lib.averaged(config)),
      jax.random.key(0))
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree.map(
      lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=device), shapes)


@pytest.mark.parametrize('name, n_classes', [('synthetic_cells/binary', 1),
                                             ('synthetic_cells/multiclass', 3)])
@pytest.mark.slow
def test_loss_halves_over_real_steps_on_a_fixed_batch(tfds_dir, name, n_classes):
  config = small_config(tfds_dir, **{'dataset.name': name,
                                     'model.n_classes': n_classes,
                                     'optimizer.schedule': 'constant'})
  batch = next(pipeline.train_batches(config.dataset, 8, seed=0))
  state = make_state(config)
  step = jax.jit(functools.partial(train.train_step,
                                   loss_fn=losses.get_loss(config.loss),
                                   dropout_rng=jax.random.key(1)))
  history = []
  for _ in range(60):
    state, out = step(state, batch)
    history.append(float(out['loss']))
  assert all(np.isfinite(history))
  assert history[-1] < 0.5 * history[0], history
  assert int(state.step) == 60


def test_eval_step_counts_agree_with_metrics_on_the_logits(tfds_dir):
  config = small_config(tfds_dir)
  state = make_state(config)
  batch = next(pipeline.eval_batches(config.dataset, 'validation', 16))
  batch['valid'][12:] = False
  loss_fn = losses.get_loss(config.loss)
  stats = jax.jit(functools.partial(evaluation.eval_step, loss_fn=loss_fn,
                                    **config.metrics.to_dict()))(state, batch)
  logits = state.apply_fn({'params': state.params,
                           'batch_stats': state.batch_stats},
                          state_lib.preprocess(batch['image'][:12]))
  labels = batch['mask'][:12].astype(np.int32)
  expected = metrics.batch_statistics(logits, labels)
  assert set(stats) == set(expected) | {'loss_sum'}
  for key in expected:
    np.testing.assert_allclose(stats[key], expected[key], rtol=1e-6, err_msg=key)
  per_image = [loss_fn(logits[i:i + 1], labels[i:i + 1]) for i in range(12)]
  np.testing.assert_allclose(stats['loss_sum'], np.sum(per_image), rtol=1e-5)


def test_mirrored_eval_step_scores_the_mean_of_the_four_flips(tfds_dir):
  """`eval_mirror`: the eval step's statistics are those of the logits
  averaged over the batch's flips, each flipped back (computed here one
  flip at a time in numpy), and differ from the unmirrored ones."""
  config = small_config(tfds_dir)
  state = make_state(config)
  batch = next(pipeline.eval_batches(config.dataset, 'validation', 8))
  loss_fn = losses.get_loss(config.loss)
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  pixels = np.asarray(state_lib.preprocess(batch['image']))
  flipped_back = [np.flip(np.asarray(state.apply_fn(
      variables, np.flip(pixels, axes).copy())), axes)
                  for axes in ((), (1,), (2,), (1, 2))]
  expected = metrics.batch_statistics(np.mean(flipped_back, axis=0),
                                      batch['mask'].astype(np.int32))
  step = lambda mirror: jax.jit(functools.partial(
      evaluation.eval_step, loss_fn=loss_fn, mirror=mirror,
      **config.metrics.to_dict()))(state, batch)
  mirrored, plain = step(True), step(False)
  for key in expected:
    np.testing.assert_allclose(mirrored[key], expected[key], rtol=1e-5,
                               atol=1e-4, err_msg=key)
  assert not np.allclose(mirrored['loss_sum'], plain['loss_sum'])


def test_warmup_cosine_schedule_peaks_then_decays_to_zero():
  config = default.get_config()
  schedule = optimizers.create_learning_rate_schedule(config.optimizer, 1000)
  peak = config.optimizer.learning_rate
  assert float(schedule(0)) == 0.0
  assert float(schedule(config.optimizer.warmup_steps)) == pytest.approx(peak)
  assert float(schedule(1000)) == pytest.approx(0.0, abs=1e-9)


def test_poly_schedule_is_nnunets_decay_after_the_warmup():
  config = default.get_config()
  config.optimizer.schedule = 'poly'
  schedule = optimizers.create_learning_rate_schedule(config.optimizer, 1000)
  peak, warmup = config.optimizer.learning_rate, config.optimizer.warmup_steps
  assert float(schedule(0)) == 0.0
  assert float(schedule(warmup // 2)) == pytest.approx(peak / 2)
  for step in (warmup, 300, 700, 999):
    expected = peak * (1 - (step - warmup) / (1000 - warmup)) ** 0.9
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-4)
  assert float(schedule(1000)) == pytest.approx(0.0, abs=1e-9)


def test_default_config_is_valid():
  configuration.validate(default.get_config())


@pytest.mark.parametrize('edit, message', [
    (lambda c: delattr(c.optimizer, 'learning_rate'),
     r'config.optimizer.learning_rate is missing'),
    (lambda c: c.__setattr__('batch_size', 0), r'config.batch_size=0 must be > 0'),
    (lambda c: retype(c.optimizer, 'learning_rate', '1e-3'),
     r"config.optimizer.learning_rate='1e-3' should be int or float, not str"),
    (lambda c: c.__setattr__('num_train_step', 5),
     r'config.num_train_step is not a known field; did you mean '
     r'config.num_train_steps\?'),
    (lambda c: c.loss.__setattr__('name', 'dice_loss'), r"Unknown loss 'dice_loss'"),
    (lambda c: c.optimizer.__setattr__('schedule', 'cosine'),
     r"config.optimizer.schedule='cosine' must be one of: 'constant', "
     r"'warmup_cosine'"),
])
def test_config_mistakes_are_one_clear_error(tmp_path, edit, message):
  config = default.get_config()
  edit(config)
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_unknown_model_name_is_a_clear_error(tmp_path):
  config = default.get_config()
  config.model.name = 'unet3d'
  with pytest.raises(ConfigError, match="Unknown model 'unet3d'.*choose one of: unet"):
    train.train_and_evaluate(config, str(tmp_path))


def test_batch_size_must_split_over_devices(tmp_path):
  assert jax.device_count() == 8
  config = default.get_config()
  config.batch_size = 12
  with pytest.raises(ConfigError, match=r'multiple of the number of devices \(8\)'):
    train.train_and_evaluate(config, str(tmp_path))


def test_image_size_the_model_cannot_take_is_a_clear_error(tfds_dir, tmp_path):
  config = small_config(tfds_dir, **{'model.depth': 7,
                                     'model.dropout_rates': (0.0,) * 8})
  with pytest.raises(InputShapeError, match=r'64x64.*depth 7.*2\*\*depth = 128'):
    train.train_and_evaluate(config, str(tmp_path))


def test_n_classes_must_match_the_dataset(tfds_dir, tmp_path):
  config = small_config(tfds_dir, **{'dataset.name': 'synthetic_cells/multiclass'})
  with pytest.raises(DataError, match='has 3 classes.*n_classes=3'):
    train.train_and_evaluate(config, str(tmp_path))


def test_a_run_trains_evaluates_and_resumes_without_repeating_work(tfds_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = small_config(tfds_dir)
  final = train.train_and_evaluate(config, workdir)
  for split in ('validation', 'test'):
    assert 0 <= final[split]['dice'] <= 1
  assert final['best_step'] in (2, 4)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  assert saved['model']['base_filters'] == 8
  for figure in (train.CURVES_FILE, train.PREDICTIONS_FILE):
    with open(os.path.join(workdir, figure), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', figure

  config.num_train_steps = 6  # a longer run is a different run
  with pytest.raises(WorkdirError, match=r'num_train_steps: 4 -> 6'):
    train.train_and_evaluate(config, workdir)
  assert json.load(open(os.path.join(workdir, 'config.json'))) == saved

  config.num_train_steps = 4
  config.progress_bar = True  # changes nothing about the results
  again = train.train_and_evaluate(config, workdir)
  assert again['validation'] == final['validation']
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    events = [json.loads(line)['event'] for line in f]
  assert events.count('resume') == 1 and events.count('train') == 2


@pytest.mark.slow
def test_extending_a_run_with_allow_config_change_keeps_the_old_config(tfds_dir,
                                                                      tmp_path):
  workdir = str(tmp_path / 'run')
  config = small_config(tfds_dir, num_train_steps=2)
  train.train_and_evaluate(config, workdir)
  config.num_train_steps = 4
  final = train.train_and_evaluate(config, workdir, allow_config_change=True)
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4']
  previous = json.load(open(os.path.join(workdir, 'config.previous-1.json')))
  assert previous['num_train_steps'] == 2
  assert np.isfinite(final['test']['dice'])


@pytest.mark.slow
def test_diverging_loss_stops_naming_the_step_and_keeps_good_checkpoints(
    tfds_dir, tmp_path):
  config = small_config(tfds_dir, **{'optimizer.learning_rate': 1e30,
                                     'optimizer.schedule': 'constant',
                                     'checkpoint_every_steps': 1})
  with pytest.raises(DivergenceError, match=r'non-finite at step 2 \(loss nan\)'):
    train.train_and_evaluate(config, str(tmp_path))
  assert os.listdir(tmp_path / 'checkpoints') == ['1']


@pytest.mark.parametrize('skip', [False, True])
def test_nonfinite_steps_are_flagged_and_optionally_skipped(tfds_dir, skip):
  config = small_config(tfds_dir)
  state = make_state(config)
  batch = next(pipeline.train_batches(config.dataset, 8, seed=0))
  nan_loss = lambda outputs, labels, mask=None: jnp.mean(outputs) * jnp.nan
  step = jax.jit(functools.partial(train.train_step, loss_fn=nan_loss,
                                   dropout_rng=jax.random.key(1),
                                   skip_nonfinite=skip))
  new_state, outputs = step(state, batch)
  assert not bool(outputs['finite'])
  assert int(new_state.step) == 1
  params_finite = all(bool(jnp.all(jnp.isfinite(p)))
                      for p in jax.tree.leaves(new_state.params))
  assert params_finite == skip
  if skip:
    for a, b in zip(jax.tree.leaves(new_state.params), jax.tree.leaves(state.params)):
      np.testing.assert_array_equal(a, b)


def tensorboard_points(folder):
  """(tag, step) of the scalars TensorBoard shows: the event files in order,
  each one's purge_step (a SessionLog START) dropping earlier points at or
  after it, as TensorBoard does."""
  from tensorboardX.proto import event_pb2
  points = []
  for path in sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns):
    data, offset = path.read_bytes(), 0
    while offset < len(data):  # TFRecords: length, its CRC, data, its CRC
      length = struct.unpack('<Q', data[offset:offset + 8])[0]
      event = event_pb2.Event.FromString(data[offset + 12:offset + 12 + length])
      offset += 16 + length
      if event.session_log.status == event_pb2.SessionLog.START:
        points = [p for p in points if p[1] < event.step]
      for value in event.summary.value:
        points.append((value.tag, event.step))
  return points


@pytest.mark.slow
def test_a_save_cut_short_is_ignored_and_the_run_resumes_before_it(
    tfds_dir, tmp_path, complete_run):
  source, complete = complete_run
  workdir = tmp_path / 'run'
  shutil.copytree(source, workdir)
  config = small_config(tfds_dir)
  # As if killed while writing step 4: orbax only renames a finished save.
  shutil.rmtree(workdir / 'checkpoints' / '4')
  partial = workdir / 'checkpoints' / '4.orbax-checkpoint-tmp'
  (partial / 'state').mkdir(parents=True)
  (partial / 'state' / 'half_written').write_bytes(b'\x00' * 100)
  again = train.train_and_evaluate(config, str(workdir))
  resumed = [r['step'] for r in logs.read_metrics(str(workdir))
             if r['event'] == 'resume']
  assert resumed == [2]
  assert again['validation'] == complete['validation']
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']
  # Steps 3-4 were logged twice, but TensorBoard draws each point once.
  points = tensorboard_points(workdir / 'tensorboard')
  assert len(points) == len(set(points)) and ('train/train/loss', 4) in points


@pytest.fixture(scope='module')
def complete_run(tfds_dir, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('complete') / 'run'
  final = train.train_and_evaluate(small_config(tfds_dir), str(workdir))
  return workdir, final


def largest_file(folder):
  files = [p for p in folder.rglob('*') if p.is_file()]
  return max(files, key=lambda p: p.stat().st_size)


def damage_file(step_dir, how):
  """Damages a real checkpoint as a disk or a person might."""
  data = largest_file(step_dir / 'state')
  if how == 'delete':
    data.unlink()
  elif how == 'truncate':
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
  elif how == 'flip':
    raw = bytearray(data.read_bytes())
    for i in range(len(raw) // 2, len(raw) // 2 + 8):
      raw[i] ^= 0xFF
    data.write_bytes(bytes(raw))
  else:
    (step_dir / 'meta' / 'metadata').write_text('{"wall_time')


def tree_files(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob('*'))


@pytest.mark.parametrize('norm', ['group', 'batch'])
def test_inference_restores_the_variables_alone(tmp_path, norm):
  """A checkpoint's params and batch statistics, read without an optimizer
  (models without batch norm have none), equal the saved ones."""
  config = default.get_config()
  config.model.norm, config.model.base_filters = norm, 4
  saved = jax.device_get(make_state(config, (32, 32, 1)))
  writer = checkpoints.Checkpoints(str(tmp_path))
  writer.save_best(3, saved, 0.5, {'wall_time_s': 0.0})
  writer.close()
  reader = checkpoints.Checkpoints(str(tmp_path), read_only=True)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  variables, kind, step = reader.restore_variables(state_lib.variables_template(
      models.get_model(config.model), (32, 32, 1), device))
  reader.close()
  assert (kind, step) == ('best', 3)
  assert jax.tree.structure(variables) == jax.tree.structure(
      state_lib.variables(saved))
  assert (len(jax.tree.leaves(variables['batch_stats'])) > 0) == (norm == 'batch')
  for restored, original in zip(jax.tree.leaves(variables),
                                jax.tree.leaves(state_lib.variables(saved))):
    np.testing.assert_array_equal(restored, original)


@pytest.mark.parametrize('how', ['delete', 'truncate', 'flip', 'meta'])
@pytest.mark.slow
def test_a_damaged_checkpoint_is_reported_and_set_aside_for_an_older_one(
    tfds_dir, tmp_path, complete_run, how):
  workdir = tmp_path / 'run'
  shutil.copytree(complete_run[0], workdir)
  step_4 = workdir / 'checkpoints' / '4'
  damage_file(step_4, how)
  files = tree_files(step_4)
  config = small_config(tfds_dir)
  template = state_template(config, (64, 64, 1))
  messages = []
  reader = checkpoints.Checkpoints(str(workdir), read_only=True)
  state, meta, step = reader._restore_intact(reader._latest, 'checkpoints',
                                             template, report=messages.append)
  assert step == 2 and int(state.step) == 2 and meta['state_crc32']
  assert messages == [messages[0]] and messages[0].startswith(
      f'Checkpoint step 4 ({step_4}) is damaged: ')
  assert tree_files(step_4) == files  # a reader moves nothing
  reader.close()
  writer = checkpoints.Checkpoints(str(workdir))
  messages.clear()
  _, _, step = writer._restore_intact(writer._latest, 'checkpoints', template,
                                      report=messages.append)
  aside = workdir / 'damaged' / 'checkpoints-4'
  assert step == 2 and f'Moved it to {aside}' in messages[0]
  assert tree_files(aside) == files and not step_4.exists()
  assert writer.restore_latest(template)[2] == 2  # no message the next time
  writer.close()


@pytest.mark.slow
def test_a_run_resumes_before_a_checkpoint_with_flipped_bytes(
    tfds_dir, tmp_path, complete_run, capsys):
  source, complete = complete_run
  workdir = tmp_path / 'run'
  shutil.copytree(source, workdir)
  damage_file(workdir / 'checkpoints' / '4', 'flip')
  capsys.readouterr()
  again = train.train_and_evaluate(small_config(tfds_dir), str(workdir))
  err = capsys.readouterr().err
  assert 'Checkpoint step 4' in err and 'is damaged' in err, err
  resumed = [r['step'] for r in logs.read_metrics(str(workdir))
             if r['event'] == 'resume']
  assert resumed == [2]
  assert again['validation'] == complete['validation']
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['2', '4']


def test_a_nonfinite_checkpoint_is_damaged():
  state = {'w': np.array([1.0, np.inf], np.float32), 'step': np.int32(3)}
  assert checkpoints.damage(state, {}) == 'it holds non-finite values'
  state['w'][1] = 2.0
  meta = {'state_crc32': checkpoints.checksum(state)}
  assert checkpoints.damage(state, meta) is None
  state['w'][0] = np.nextafter(np.float32(1), np.float32(2))  # one bit
  assert 'do not match the checksum' in checkpoints.damage(state, meta)


@pytest.mark.slow
def test_allow_config_change_refuses_a_model_the_checkpoint_does_not_fit(
    tfds_dir, tmp_path, complete_run):
  workdir = tmp_path / 'run'
  shutil.copytree(complete_run[0], workdir)
  before = {str(p): p.read_bytes() for p in workdir.rglob('*') if p.is_file()}
  config = small_config(tfds_dir, **{'model.base_filters': 16})
  with pytest.raises(WorkdirError, match=r'--allow_config_change: a checkpoint '
                     r'in .* does not fit the new config \(checkpoints/4: '
                     r'batch_stats/.* is \(8,\) float32 there, \(16,\) float32 in '
                     r'the new config\); nothing was changed'):
    train.train_and_evaluate(config, str(workdir), allow_config_change=True)
  after = {str(p): p.read_bytes() for p in workdir.rglob('*') if p.is_file()}
  assert after == before


def test_weight_average_follows_its_recursion_and_leaves_training_alone(tfds_dir):
  """With ema_decay the params train as without it (to float rounding: the
  compiled steps differ), and ema_params is
  a_t = r_t a_{t-1} + (1 - r_t) p_t, r_t = min(decay, (1 + t) / (10 + t)),
  computed here in numpy from the params of each step."""
  config = small_config(tfds_dir)
  decay = 0.9
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  tx, _ = optimizers.optimizer_and_schedule(config.optimizer, 8)
  plain = state_lib.init_train_state(jax.random.key(0), model, tx, (64, 64, 1))
  averaged = state_lib.init_train_state(jax.random.key(0), model, tx,
                                        (64, 64, 1), averaged=True)
  assert plain.ema_params is None
  step = jax.jit(functools.partial(train.train_step, loss_fn=losses.get_loss(
      config.loss), dropout_rng=jax.random.key(1)), static_argnames='ema_decay')
  expected = [np.asarray(p) for p in jax.tree.leaves(averaged.params)]
  for t, batch in zip(range(1, 6), pipeline.train_batches(config.dataset, 8, seed=0)):
    plain, _ = step(plain, batch)
    averaged, _ = step(averaged, batch, ema_decay=decay)
    rate = min(decay, (1 + t) / (10 + t))
    expected = [rate * a + (1 - rate) * np.asarray(p)
                for a, p in zip(expected, jax.tree.leaves(averaged.params))]
    for a, b in zip(jax.tree.leaves(plain.params), jax.tree.leaves(averaged.params)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)  # fused apart
  for got, want in zip(jax.tree.leaves(averaged.ema_params), expected):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # Evaluation uses the average; without one, the params.
  assert state_lib.variables(averaged)['params'] is averaged.ema_params
  assert state_lib.variables(plain)['params'] is plain.params
  assert not np.allclose(jax.tree.leaves(averaged.ema_params)[0],
                         jax.tree.leaves(averaged.params)[0])


def test_a_run_with_a_weight_average_predicts_with_it(tfds_dir, tmp_path):
  """Validation scores, the best checkpoint and `predict`'s variables are
  those of the average, and a resumed run gives the same result."""
  workdir = str(tmp_path / 'run')
  config = small_config(tfds_dir, **{'optimizer.ema_decay': 0.5})
  final = train.train_and_evaluate(config, workdir)
  run = state_lib.load_run(workdir)
  model = models.get_model(config.model, config.dtype, config.param_dtype)
  template = state_template(config, (64, 64, 1))
  ckpts = checkpoints.Checkpoints(workdir, read_only=True)
  best = ckpts.restore_best(template, logs.validation_scores(workdir, 'dice'), 'dice')
  ckpts.close()
  assert best.state.ema_params is not None
  images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 1), np.uint8)
  inputs = state_lib.preprocess(images)
  for name, params in (('average', best.state.ema_params),
                       ('params', best.state.params)):
    logits = state_lib.forward(model, {'params': params,
                                       'batch_stats': best.state.batch_stats}, inputs)
    same = np.allclose(run.apply_fn(inputs), logits, atol=1e-6)
    assert same == (name == 'average'), name
  again = train.train_and_evaluate(config, workdir)
  assert again['validation'] == final['validation']
