"""unetjax.plan: the fingerprint against numpy on a hand-made folder, each
rule on small fingerprints, the budget arithmetic on a fake timer, and a
planned config that validates and trains."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from configs import default
from unetjax import command_line, configuration, train
from unetjax.errors import ConfigError, DataError
from unetjax.plan import budget as budget_lib
from unetjax.plan import fingerprint, render, rules
from unetjax.plan import __main__ as plan_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_folder(root, n=10):
  """Greyscale images of varied heights; masks with two 6x6 squares and a
  horizontal band 4 px wide."""
  rng = np.random.default_rng(0)
  os.makedirs(root / 'images')
  os.makedirs(root / 'masks')
  for i in range(n):
    height = 40 + 2 * i
    image = rng.integers(0, 256, (height, 48), dtype=np.uint8)
    mask = np.zeros((height, 48), np.uint8)
    mask[4:10, 4:10] = mask[4:10, 30:36] = 255
    mask[20:24, :] = 255
    Image.fromarray(image).save(root / 'images' / f'{i:02d}.png')
    Image.fromarray(mask).save(root / 'masks' / f'{i:02d}.png')


def folder_config(tmp_path):
  config = default.get_config().dataset
  config.name, config.data_dir = 'image_folder', str(tmp_path / 'tfds')
  config.manual_dir = str(tmp_path / 'data')
  config.folder = dict(image_size=0, n_channels=1, mask_values=(0, 255),
                       split_fractions=(0.8, 0.1, 0.1))
  return config


def test_fingerprint_of_a_folder_against_numpy(tmp_path):
  write_folder(tmp_path / 'data')
  config = folder_config(tmp_path)
  fp = fingerprint.measure(config)
  from unetjax.data import pipeline
  info = pipeline.prepare(config)
  with open(os.path.join(config.data_dir, info.build, 'metadata.json')) as f:
    train_files = json.load(f)['split_files']['train']
  images = [np.asarray(Image.open(tmp_path / 'data' / 'images' / f'{n}.png'))
            for n in train_files]
  masks = [np.asarray(Image.open(tmp_path / 'data' / 'masks' / f'{n}.png')) > 127
           for n in train_files]
  heights = [im.shape[0] for im in images]
  assert fp['n_images'] == len(images) == 8
  assert fp['split_sizes'] == {'train': 8, 'validation': 1, 'test': 1}
  assert fp['height'] == {'median': np.median(heights), 'min': min(heights),
                          'max': max(heights)}
  assert fp['width'] == {'median': 48, 'min': 48, 'max': 48}
  assert fp['channels'] == 1 and fp['bit_depth'] == 8
  pixels = np.concatenate([im.ravel() for im in images])
  expected = np.percentile(pixels, [0.5, 50, 99.5], method='inverted_cdf')
  got = fp['intensity'][0]
  assert [got['p0.5'], got['p50'], got['p99.5']] == list(expected)
  assert got['mean'] == pytest.approx(pixels.mean())
  foreground = np.concatenate([m.ravel() for m in masks]).mean()
  assert fp['class_fractions'] == pytest.approx([1 - foreground, foreground])
  assert fp['objects_per_image'] == {'median': 3, 'min': 3, 'max': 3}
  assert fp['object_pixels'] == {'median': 36, 'min': 36, 'max': 4 * 48}
  assert fp['roi_coverage'] == 1.0
  # The class's mean distance to the background, recomputed with scipy.
  distances = np.concatenate([ndimage.distance_transform_edt(m)[m] for m in masks])
  assert fp['structure_width'][1] == pytest.approx(4 * (distances.mean() - 0.5))


def test_a_folder_of_varied_sizes_is_planned_at_its_own_size(tmp_path, monkeypatch):
  write_folder(tmp_path / 'data', n=20)
  config = default.get_config()
  config.dataset = folder_config(tmp_path)
  config.dataset.folder.image_size = 256  # configs/folder.py's resize
  measured = []
  monkeypatch.setattr(fingerprint, 'measure', lambda d, measure=fingerprint.measure:
                      measured.append(d.folder.image_size) or measure(d))
  monkeypatch.setattr(budget_lib, 'probe', lambda c, import_s: budget_lib.Timing(
      start=1, step=0.01, first_eval=1, eval=0.5, final=1))
  decided, fp, _ = plan_main.plan(config, budget_lib.Budget(60), 0.0, 'f.py')
  planned = render.apply(plan_main.configuration_defaults(), decided)
  configuration.validate(planned)
  assert measured == [0]  # measured once, at the images' own size
  assert planned.dataset.folder.image_size == 0
  assert planned.dataset.patch_size == 48  # median 58x48, 2**4 | sides
  assert fp['stored_shape'][:2] == [None, None]


@pytest.mark.parametrize('width', [2, 4, 6, 10])
def test_structure_width_is_exact_for_bands_of_even_width(width):
  mask = np.zeros((40, 30), np.int64)
  mask[10:10 + width] = 1
  distances = fingerprint.class_distances(mask, np.ones(mask.shape, bool), 2)
  assert fingerprint.structure_width(distances[1].mean()) == width


def test_histogram_percentiles_match_numpy():
  values = np.random.default_rng(1).integers(0, 256, 5000)
  counts = np.bincount(values, minlength=256)
  for q in (0.5, 10, 50, 99.5, 100):
    assert fingerprint.histogram_percentiles(counts, [q])[0] == np.percentile(
        values, q, method='inverted_cdf')


def fp_of(height, width, n=100, fractions=(0.8, 0.2), widths=(50.0, 20.0),
          same_size=True, channels=3):
  spread = lambda m: {'median': m, 'min': m if same_size else m // 2,
                      'max': m if same_size else 2 * m}
  return {'task': 'segmentation', 'n_images': n, 'height': spread(height),
          'width': spread(width), 'channels': channels, 'bit_depth': 8,
          'class_fractions': list(fractions), 'structure_width': list(widths),
          'class_names': ['background', 'foreground'][:len(fractions)]
          + [f'c{i}' for i in range(2, len(fractions))]}


def test_thin_structures_keep_their_size_thick_ones_are_resized():
  vessels = fp_of(1024, 1024, widths=(80.0, 4.0))
  assert rules.folder_size(vessels, 'cpu').value == 0  # 4 px -> 1 px at 256
  polyps = fp_of(1024, 1024, widths=(80.0, 60.0))
  assert rules.folder_size(polyps, 'cpu').value == 256  # 60 px -> 15 px
  same = fp_of(200, 200, widths=(80.0, 1.0))
  assert rules.folder_size(same, 'cpu').value == 200  # stored as is, whole
  varied = fp_of(200, 200, widths=(80.0, 1.0), same_size=False)
  assert rules.folder_size(varied, 'cpu').value == 0


def test_huge_images_get_patches_and_same_size_images_stay_whole():
  huge = rules.patch(fp_of(4096, 4096), 'cpu')
  assert huge.value == 256 and 'patches' in huge.reason
  assert rules.patch(fp_of(4096, 4096), 'gpu').value == 512
  assert rules.patch(fp_of(256, 256), 'cpu').value == 0
  drive = rules.patch(fp_of(584, 565, n=20, same_size=False), 'cpu')
  assert drive.value == (256, 240)  # the median's aspect ratio, 2**4 | sides
  varied = rules.patch(fp_of(120, 100, same_size=False), 'cpu')
  assert varied.value == (112, 96)  # sizes vary: patches of the median
  native = dict(fp_of(256, 256), stored_shape=[None, None, 3])
  assert rules.patch(native, 'cpu').value == 256  # own sizes: patches
  assert rules.depth((256, 240)).value == 4
  assert rules.depth((32, 32)).value == 2  # 8 px at the bottleneck
  assert rules.depth((16, 16)).value == 1


def test_batch_holds_at_most_five_percent_of_the_training_pixels():
  assert rules.batch_size(fp_of(256, 256, n=800), (256, 256), 'cpu', 1).value == 8
  # 25 slices of 512x512: 5% of their pixels is 5 patches of 256x256.
  assert rules.batch_size(fp_of(512, 512, n=25), (256, 256), 'cpu', 1).value == 5
  assert rules.batch_size(fp_of(512, 512, n=25), (256, 256), 'cpu', 2).value == 4
  assert rules.batch_size(fp_of(512, 512, n=4), (256, 256), 'cpu', 1).value == 2
  assert rules.batch_size(fp_of(256, 256, n=800), (256, 256), 'cpu', 8).value == 8
  assert rules.batch_size(fp_of(256, 256, n=800), (256, 256), 'gpu', 1).value == 32


def test_a_rare_class_gets_weights_and_oversampling():
  rare = fp_of(256, 256, fractions=(0.95, 0.045, 0.005), widths=(9, 9, 9))
  weights = rules.class_weights(rare).value
  assert len(weights) == 3 and np.mean(weights) == pytest.approx(1, abs=1e-3)
  assert weights[2] / weights[0] == pytest.approx(np.sqrt(0.95 / 0.005), rel=1e-2)
  assert rules.class_weights(fp_of(256, 256)).value == ()
  assert rules.oversampling(rare, patches=True).value == pytest.approx(1 / 3)
  membranes = fp_of(512, 512, fractions=(0.78, 0.22))
  assert rules.oversampling(membranes, patches=True).value == 0.0
  assert rules.oversampling(rare, patches=False).value == 0.0


def test_the_rate_halves_from_forty_training_images():
  rate = lambda n: rules.learning_rate(fp_of(256, 256, n=n)).value
  assert rate(16) == rate(20) == rate(39) == 4e-3  # DRIVE, ISBI 2012
  assert rate(40) == rate(60) == rate(200) == rate(798) == 2e-3  # Kvasir-SEG
  made = {d.field: d for d in rules.training_choices(fp_of(256, 256, n=798))}
  assert made['optimizer.learning_rate'].value == 2e-3
  assert '798 training images' in made['optimizer.learning_rate'].reason


def test_full_augmentation_only_over_long_training():
  from unetjax import augment
  short = {d.field: d.value for d in rules.augmentation(10)}
  on = {f for f, v in short.items() if f.endswith('_prob') and v > 0}
  assert on == {'augment.flip_horizontal_prob', 'augment.flip_vertical_prob'}
  # Trained on both flips, scored on them too.
  assert short['eval_mirror'] is True
  # Every op is decided, so a source config's rotations do not slip through.
  assert {f'augment.{op}_prob' for op in augment.OPS} <= set(short)
  long = {d.field: d.value for d in rules.augmentation(200)}
  assert long['augment.rotate_degrees'] == 15.0 and 'augment.gamma_range' in long
  assert long['augment.elastic_prob'] == 0.0


@pytest.mark.parametrize('text, seconds, steps', [
    ('60m', 3600, None), ('90min', 5400, None), ('2h', 7200, None),
    ('1.5h', 5400, None), ('5400s', 5400, None), ('3200steps', None, 3200)])
def test_budget_parsing(text, seconds, steps):
  assert budget_lib.parse(text) == budget_lib.Budget(seconds, steps)


@pytest.mark.parametrize('text, message', [
    ('60', '60m, 2h'), ('an hour', '60m, 2h'), ('-1h', '60m, 2h'),
    ('0m', 'must be positive'), ('2.5steps', 'whole number of steps')])
def test_a_bad_budget_says_what_to_write(text, message):
  with pytest.raises(ConfigError, match=message):
    budget_lib.parse(text)


N = budget_lib.Network
DOUBLING = budget_lib.NETWORKS


def fake_timer(per_width):
  """A timer of networks: seconds per step by width (doubling networks) or
  by Network."""
  calls = []

  def time_network(network):
    calls.append(network.width if not network.slim else network)
    step = per_width.get(network, per_width.get(network.width))
    return budget_lib.Timing(start=30, step=step, first_eval=20, eval=10,
                             final=40)
  return time_network, calls


def test_budget_spends_the_time_on_steps_and_picks_the_width_by_epochs():
  time_width, calls = fake_timer({8: 1.0, 16: 2.0, 32: 4.0})
  choice = budget_lib.choose(budget_lib.Budget(3600), 800, 8, time_width, DOUBLING)
  # 5 validations (5% of the hour holds 18); 3600 - 30 - 40 - 20 - 4 * 10
  # = 3470 s of steps at 1 s: 35 epochs at width 8; width 16 would give 17.
  assert (choice.width, choice.steps, choice.evals) == (8, 3470, 5)
  assert choice.epochs == pytest.approx(34.7)
  assert choice.predicted_s == pytest.approx(3600)
  assert calls == [8, 16]  # width 32 not timed: 16 already fell short
  # 2.5 h: width 16 trains 44 epochs, width 32 only 22.
  time_width, calls = fake_timer({8: 1.0, 16: 2.0, 32: 4.0})
  longer = budget_lib.choose(budget_lib.Budget(9000), 800, 8, time_width, DOUBLING)
  assert longer.width == 16 and longer.epochs == pytest.approx(44.35)
  assert calls == [8, 16, 32]
  assert 9000 - 2.0 <= longer.predicted_s <= 9000
  short = budget_lib.choose(budget_lib.Budget(600), 800, 8,
                            fake_timer({8: 1.0, 16: 2.0, 32: 4.0})[0], DOUBLING)
  assert short.width == 8 and short.epochs < budget_lib.MIN_EPOCHS
  # 16 images of batch 4 (DRIVE): width 16 holds 1735 steps, 434 epochs, in
  # the hour, short of MIN_STEPS, so the narrowest width trains 3470 steps.
  time_width, calls = fake_timer({8: 1.0, 16: 2.0, 32: 4.0})
  small = budget_lib.choose(budget_lib.Budget(3600), 16, 4, time_width, DOUBLING)
  assert (small.width, small.steps) == (8, 3470) and calls == [8, 16]
  fields = {d.field: d.value
            for d in budget_lib.decisions(choice, 8, budget_lib.Budget(3600), 4)}
  assert fields['num_train_steps'] == 3470 and fields['eval_every_steps'] == 694
  assert 'model.level_filters' not in fields  # doubling: the default


def test_under_10_epochs_the_slim_network_trains_more_steps():
  slim = N(8, slim=True)
  assert slim.level_filters(4) == (8, 8, 16, 32, 64)  # BasicUNet's plan
  assert N(8).level_filters(4) == ()
  per_step = {slim: 0.7, 8: 1.0, 16: 2.0, 32: 4.0}
  time_network, calls = fake_timer(per_step)
  short = budget_lib.choose(budget_lib.Budget(600), 800, 8, time_network)
  # 3 validations in 5% of 600 s; 600 - 30 - 40 - 20 - 2 * 10 = 490 s of
  # steps: 490 at width 8 (4.9 epochs), 700 at 0.7 s with the slim plan.
  assert short.network == slim and short.steps == 700 and calls == [8, slim]
  made = budget_lib.decisions(short, 8, budget_lib.Budget(600), 4)
  fields = {d.field: d.value for d in made}
  assert fields['model.base_filters'] == 8
  # the reason gives each timed network's epochs, not only the chosen one's
  reason = next(d.reason for d in made if d.field == 'model.base_filters')
  assert '1.00 s/step (5 epochs)' in reason and '0.70 s/step (7 epochs)' in reason
  assert fields['model.level_filters'] == (8, 8, 16, 32, 64)
  # 160 images: width 8 trains 460 steps, 23 epochs, under 30 but past
  # SLIM_EPOCHS: capacity beats the slim plan's extra steps there.
  time_network, calls = fake_timer(per_step)
  middling = budget_lib.choose(budget_lib.Budget(600), 160, 8, time_network)
  assert budget_lib.SLIM_EPOCHS < middling.epochs < budget_lib.MIN_EPOCHS
  assert middling.network == N(8) and calls == [8]
  # 16 images (DRIVE): width 8 trains 460 steps, 115 epochs: short of 3000
  # steps but not of epochs, so width 8 as it is; the slim plan is not timed.
  time_network, calls = fake_timer(per_step)
  small = budget_lib.choose(budget_lib.Budget(600), 16, 4, time_network)
  assert small.network == N(8) and calls == [8]
  # 2.5 h of 800 images: width 16 reaches 44 epochs.
  time_network, calls = fake_timer(per_step)
  longer = budget_lib.choose(budget_lib.Budget(9000), 800, 8, time_network)
  assert longer.network == N(16) and calls == [8, 16, 32]
  # A fixed number of steps: no time to gain, no slim plan.
  time_network, calls = fake_timer(per_step)
  steps = budget_lib.choose(budget_lib.Budget(steps=300), 800, 8, time_network)
  assert steps.network == N(8) and calls == [8]


def test_a_budget_below_one_epoch_names_the_numbers():
  with pytest.raises(ConfigError, match=r'holds 30 steps of batch 8 .* less '
                     r'than one epoch of the training images \(800 inputs\); '
                     r'give at least 4 min'):
    budget_lib.choose(budget_lib.Budget(120), 800, 8,
                      fake_timer({8: 1.0, 16: 2.0, 32: 4.0})[0], DOUBLING)


def test_probe_timing_from_its_records():
  records = [{'event': 'train', 'step': 5, 'time': 130.0},
             {'event': 'train', 'step': 10, 'time': 140.0},
             {'event': 'eval', 'step': 10, 'time': 160.0},
             {'event': 'train', 'step': 15, 'time': 166.0},  # read ahead
             {'event': 'train', 'step': 20, 'time': 178.0},
             {'event': 'eval', 'step': 20, 'time': 184.0},
             {'event': 'final', 'step': 20, 'time': 190.0}]
  timing = budget_lib.timing_from_records(records, start=100.0, end=200.0,
                                          import_s=4.0)
  # Steps from (5, 10] and (15, 20]: (10 + 12) / 10 s; not (10, 15].
  assert timing == budget_lib.Timing(start=23.0, step=2.2, first_eval=20.0,
                                     eval=6.0, final=16.0)
  assert timing.predict(100, 3) == pytest.approx(23 + 220 + 20 + 12 + 16)
  probe = budget_lib.probe_config(default.get_config())
  assert (probe.num_train_steps, probe.log_every_steps, probe.eval_every_steps
          ) == (20, 5, 10)


@pytest.mark.slow
def test_the_probe_times_a_real_run(tfds_dir):
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  config.model.base_filters, config.model.depth = 4, 2
  config.model.dropout_rates = (0.0,)
  timing = budget_lib.probe(config, import_s=1.0)
  assert all(v > 0 for v in vars(timing).values()), timing
  assert timing.first_eval > timing.eval  # the first one compiles
  assert timing.start > 1.0


def test_too_small_to_split_and_too_large_for_memory_are_one_message_each():
  fp = fp_of(256, 256)
  fp.update(dataset='image_folder', split_sizes={'train': 4, 'validation': 0, 'test': 1})
  with pytest.raises(DataError, match='too small to split.*validation split holds no image'):
    plan_main.check_splits(fp)
  huge = fp_of(60000, 60000, channels=1)
  with pytest.raises(DataError, match=r'60000x60000 px\) needs 53.6 GiB'):
    plan_main.check_memory(huge, 1, 24 * 2**30)
  plan_main.check_memory(fp_of(4096, 4096), 1, 24 * 2**30)


@pytest.mark.slow
def test_a_planned_config_validates_and_trains(tfds_dir, tmp_path, monkeypatch):
  config = default.get_config()
  config.dataset.data_dir = tfds_dir
  timed = []
  monkeypatch.setattr(budget_lib, 'probe', lambda c, import_s: timed.append(c)
                      or budget_lib.Timing(start=5, step=0.05, first_eval=2,
                                           eval=1, final=3))
  decided, fp, choice = plan_main.plan(config, budget_lib.Budget(60), 0.0,
                                       'configs/default.py')
  assert fp['dataset'] == 'synthetic_cells/binary' and fp['channels'] == 1
  # Each network is timed once per augmentation set (again only for nnU-Net's).
  probed = [(c.model.base_filters, c.model.level_filters, c.augment.rot90_prob)
            for c in timed]
  assert len(probed) == len(set(probed)), probed
  # The probes time the mirrored evaluation the plan scores with.
  assert all(c.eval_mirror for c in timed)
  path = tmp_path / 'planned.py'
  path.write_text(render.config_source(decided, 'A test plan.\n'))
  monkeypatch.chdir(ROOT)  # the file imports configs.default, as every config
  planned = command_line.load_config(str(path))
  assert not isinstance(planned, str), planned
  configuration.validate(planned)
  assert planned.model.norm == 'instance' and planned.dataset.data_dir == tfds_dir
  assert planned.eval_mirror and planned.num_train_steps == choice.steps > 100
  planned.num_train_steps = planned.eval_every_steps = 2
  planned.checkpoint_every_steps = planned.log_every_steps = 2
  planned.progress_bar = False
  final = train.train_and_evaluate(planned, str(tmp_path / 'run'))
  assert 0 <= final['validation']['dice'] <= 1
  table = render.table(decided)
  assert 'model.norm' in table and 'from configs/default.py' in table


@pytest.mark.slow
@pytest.mark.parametrize('source, n_classes, model', [
    ('configs/multiclass.py', 3, 'unet'), ('configs/classify.py', 3, 'resnet'),
    ('configs/instances.py', 1, 'unet')])
def test_multiclass_instance_and_classification_plans_validate(
    tfds_dir, tmp_path, monkeypatch, source, n_classes, model):
  config = command_line.load_config(os.path.join(ROOT, source))
  config.dataset.data_dir = tfds_dir
  monkeypatch.setattr(budget_lib, 'probe', lambda c, import_s: budget_lib.Timing(
      start=5, step=0.05, first_eval=2, eval=1, final=3))
  decided, fp, _ = plan_main.plan(config, budget_lib.Budget(60), 0.0, source)
  planned = render.apply(plan_main.configuration_defaults(), decided)
  configuration.validate(planned)
  assert planned.model.n_classes == n_classes and planned.model.name == model
  assert planned.dataset.name == config.dataset.name


@pytest.mark.slow
def test_keep_recipe_plans_only_the_steps(tfds_dir, monkeypatch):
  config = command_line.load_config(os.path.join(ROOT, 'configs/augmented.py'))
  config.dataset.data_dir = tfds_dir
  timed = []
  monkeypatch.setattr(budget_lib, 'probe', lambda c, import_s: timed.append(c)
                      or budget_lib.Timing(start=5, step=0.1, first_eval=2,
                                           eval=1, final=3))
  decided, _, choice = plan_main.plan(config, budget_lib.Budget(120), 0.0,
                                      'configs/augmented.py', keep_recipe=True)
  planned = render.apply(plan_main.configuration_defaults(), decided)
  configuration.validate(planned)
  assert [c.model.base_filters for c in timed] == [config.model.base_filters]
  for path in ('model', 'augment', 'optimizer', 'loss', 'batch_size'):
    assert planned[path] == config[path], path
  # 120 s = 5 + 3 + 2 + 4 * 1 s of validation... (5% holds 6, capped at 5)
  assert planned.num_train_steps == choice.steps == int((120 - 5 - 3 - 2 - 4) / 0.1)
  assert planned.eval_every_steps == -(-choice.steps // 5)


def test_the_command_never_writes_over_an_existing_file(tmp_path):
  existing = tmp_path / 'mine.py'
  existing.write_text('# the user\'s own config\n')
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.plan', '--config=configs/default.py',
       '--budget=60m', f'--out={existing}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert 'exists and is kept' in result.stderr.strip().splitlines()[-1]
  assert existing.read_text() == '# the user\'s own config\n'


def test_the_command_refuses_a_bad_budget_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.plan', '--config=configs/default.py',
       '--budget=soon', f'--out={tmp_path / "p.py"}'],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "error: --budget='soon': give a time such as 60m")
  assert 'Traceback' not in result.stderr


def test_applied_decisions_keep_the_configs_field_references():
  """configs/drive_native.py sets an int patch size on default.py's
  reference of any type; a planned (256, 240) must still apply, as it does
  in the rendered file."""
  config = default.get_config()
  config.dataset.patch_size = 128
  planned = render.apply(config, [rules.Decision('dataset.patch_size', (256, 240), '')])
  assert tuple(planned.dataset.patch_size) == (256, 240)
  assert config.dataset.patch_size == 128  # a copy
  configuration.validate(planned)


def write_deep_folder(root, kind, n=10):
  """12-bit PNGs (values 1000..1400 of 0..4095) or float TIFFs (CT-like,
  -1000..3000), with write_folder's masks."""
  write_folder(root, n)
  rng = np.random.default_rng(1)
  for path in sorted((root / 'images').iterdir()):
    height = np.asarray(Image.open(path)).shape[0]
    if kind == '12-bit':
      values = rng.integers(1000, 1401, (height, 48)).astype(np.uint16)
      Image.fromarray(values).save(path)
    else:
      values = rng.uniform(-1000, 3000, (height, 48)).astype(np.float32)
      os.remove(path)
      Image.fromarray(values, mode='F').save(path.with_suffix('.tif'))


@pytest.mark.parametrize('kind', ['12-bit', 'float'])
def test_deep_images_are_planned_with_their_own_intensity_window(tmp_path, monkeypatch, kind):
  write_deep_folder(tmp_path / 'data', kind)
  config = default.get_config()
  config.dataset = folder_config(tmp_path)
  monkeypatch.setattr(budget_lib, 'probe', lambda c, import_s: budget_lib.Timing(
      start=1, step=0.01, first_eval=1, eval=0.5, final=1))
  from unetjax.data import pipeline
  files = pipeline.folder_image_files(config.dataset, 'train')
  assert len(files) == 8
  raw = np.concatenate([np.asarray(Image.open(f), np.float64).ravel() for f in files])
  decided, fp, _ = plan_main.plan(config, budget_lib.Budget(60), 0.0, 'f.py')
  window = next(d for d in decided if d.field == 'dataset.folder.intensity_window')
  assert window.value == pytest.approx(tuple(np.percentile(raw, [0.5, 99.5])))
  assert 'their 0.5-99.5 percentiles' in window.reason
  # What the model sees spans the 8 bits, not 16 of the 256 levels (12-bit
  # by the 16-bit range) nor a refusal (floats outside [0, 1]).
  assert fp['intensity'][0]['p0.5'] <= 2 and fp['intensity'][0]['p99.5'] >= 253
  planned = render.apply(plan_main.configuration_defaults(), decided)
  configuration.validate(planned)


def test_a_mix_of_8_bit_and_deeper_images_keeps_no_window(tmp_path):
  write_folder(tmp_path / 'data')
  config = folder_config(tmp_path)
  from unetjax.data import pipeline
  first = pipeline.folder_image_files(config, 'train')[0]  # split by name
  Image.fromarray(np.full((40, 48), 3000, np.uint16)).save(first)
  decision = rules.intensity_window(fingerprint.raw_intensity(config))
  assert decision.value == () and '1 of 8 training images' in decision.reason
  eight_bit = tmp_path / 'eight'
  write_folder(eight_bit / 'data')
  assert fingerprint.raw_intensity(folder_config(eight_bit)) is None
  assert rules.intensity_window(None) is None


def test_patch_epochs_count_pixels_not_patches():
  """A patch of a fifth of an image is a fifth of an epoch's input."""
  fp = {'n_images': 16, 'height': {'median': 584.0}, 'width': {'median': 565.0}}
  assert rules.inputs_per_epoch(fp, 0) == 16
  assert rules.inputs_per_epoch(fp, (256, 240)) == pytest.approx(
      16 * 584 * 565 / (256 * 240))
  # A patch larger than the images (padded) still counts one image.
  assert rules.inputs_per_epoch(fp, 1024) == 16


def test_a_plan_retimed_with_costlier_augmentation_refills_the_budget():
  time_width, _ = fake_timer({8: 1.0, 16: 2.0, 32: 4.0})
  choice = budget_lib.choose(budget_lib.Budget(3600), 800, 8, time_width, DOUBLING)
  slower = budget_lib.Timing(start=30, step=1.25 * choice.timings[choice.network].step,
                             first_eval=20, eval=10, final=40)
  again = budget_lib.retimed(choice, slower, budget_lib.Budget(3600), 800, 8)
  assert again.network == choice.network
  assert again.steps < choice.steps and again.predicted_s <= 3600
  assert again.predicted_s == pytest.approx(3600, abs=2 * slower.step)
  assert again.epochs == again.steps * 8 / 800
