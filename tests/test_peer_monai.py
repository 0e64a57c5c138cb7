"""The MONAI peer (benchmarks/peer_monai.py) trains on unetjax's data and is
scored by unetjax's metrics: its scorer counts pixels as a hand count and
scikit-learn do, its loss is MONAI's DiceCELoss over the roi, and tiny runs
of both networks, whole-image and patch-trained, write complete records."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

# The peer's own dependencies, the 'peers' extra (pip install -e '.[peers]').
torch = pytest.importorskip('torch')
pytest.importorskip('monai', reason="the 'peers' extra is not installed")

from benchmarks import peer_monai  # noqa: E402
from configs import default  # noqa: E402
from unetjax import extras, metrics  # noqa: E402
from unetjax.data import patches  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
METRIC_OPTIONS = {'threshold': 0.5, 'boundary_tolerance': 2.0,
                  'surface_metrics': False}
RECORD_KEYS = {'network', 'width', 'depth', 'steps', 'batch_size', 'lr', 'seed',
               'threads', 'dataset', 'params', 'best_step', 'validation_curve',
               'validation', 'test', 'wall_s', 'train_s', 'step_s',
               'images_per_s'}


@pytest.fixture(autouse=True)
def _restore_torch_settings():
  """`peer_monai.run` sets torch's threads and determinism for the process:
  put them back for the tests that run after it in this worker."""
  threads = torch.get_num_threads()
  deterministic = torch.are_deterministic_algorithms_enabled()
  warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
  yield
  torch.set_num_threads(threads)
  torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def _threshold_model(x: torch.Tensor) -> torch.Tensor:
  """A fake binary model: logit +10 where the input pixel is bright."""
  return torch.where(x > 0.5, 10.0, -10.0)


def _dice(truth: np.ndarray, predicted: np.ndarray) -> float:
  tp = np.sum(truth & predicted)
  return 2 * tp / (2 * tp + np.sum(~truth & predicted) + np.sum(truth & ~predicted))


def test_scorer_pools_the_roi_pixels_of_valid_images():
  rng = np.random.default_rng(0)
  masks = rng.random((3, 16, 16)) > 0.6
  wrong = rng.random((3, 16, 16)) < 0.15  # the pixels the fake model gets wrong
  predicted = masks ^ wrong
  roi = np.ones((3, 16, 16), bool)
  roi[1, :, :5] = roi[2, 10:] = False
  images = (predicted * 255).astype(np.uint8)[..., None]
  # A padding image (valid False) of all-wrong pixels: it must not count.
  padding = {'image': np.full((1, 16, 16, 1), 255, np.uint8),
             'mask': np.zeros((1, 16, 16), np.uint8),
             'roi': np.ones((1, 16, 16), np.uint8)}
  items = [
      {'image': images[:2], 'mask': masks[:2].astype(np.uint8),
       'roi': roi[:2].astype(np.uint8), 'valid': np.array([True, True])},
      {k: np.concatenate([v, padding[k]]) for k, v in
       {'image': images[2:], 'mask': masks[2:].astype(np.uint8),
        'roi': roi[2:].astype(np.uint8)}.items()}
      | {'valid': np.array([True, False])},
  ]
  total = peer_monai.split_statistics(_threshold_model, items, METRIC_OPTIONS)
  result = metrics.summarize(total, ('background', 'cell'))

  assert result['dice'] == pytest.approx(_dice(masks[roi], predicted[roi]))
  sklearn_metrics = pytest.importorskip('sklearn.metrics')
  assert result['dice'] == pytest.approx(
      sklearn_metrics.f1_score(masks[roi], predicted[roi]))
  per_image = [_dice(masks[i][roi[i]], predicted[i][roi[i]]) for i in range(3)]
  assert result['dice_per_image'] == pytest.approx(np.mean(per_image))
  assert total['images'] == 3 and total['pixels'] == roi.sum()


def test_mirrored_scoring_averages_the_flips_logits():
  """A fake model with a left-to-right bias: averaged with its horizontal
  mirror the bias cancels, so the mirrored scores are the unbiased model's
  (and the unmirrored ones are not)."""
  rng = np.random.default_rng(2)
  masks = rng.random((2, 12, 16)) > 0.5
  images = np.where(rng.random(masks.shape) < 0.8, masks, ~masks)
  items = [{'image': (images * 255).astype(np.uint8)[..., None],
            'mask': masks.astype(np.uint8)}]

  def biased_model(x):
    return (x - 0.5) * 20 + torch.linspace(-15, 15, x.shape[-1])

  score = lambda model, mirror: metrics.summarize(peer_monai.split_statistics(
      model, items, METRIC_OPTIONS, mirror), ('background', 'cell'))['dice']
  unbiased = _dice(masks, images)
  assert score(_threshold_model, False) == pytest.approx(unbiased)
  assert score(biased_model, True) == pytest.approx(unbiased)
  assert score(biased_model, False) != pytest.approx(unbiased, abs=0.02)


def test_scorer_takes_the_argmax_of_several_classes():
  rng = np.random.default_rng(1)
  masks = rng.integers(0, 3, (2, 12, 12))
  predicted = np.where(rng.random(masks.shape) < 0.2, (masks + 1) % 3, masks)
  images = (predicted * 100).astype(np.uint8)[..., None]

  def one_hot_model(x):  # class k where the pixel is k * 100 / 255
    classes = torch.round(x * 2.55).long()[:, 0]
    return torch.nn.functional.one_hot(classes, 3).permute(0, 3, 1, 2).float()

  total = peer_monai.split_statistics(
      one_hot_model, [{'image': images, 'mask': masks.astype(np.uint8)}],
      METRIC_OPTIONS)
  result = metrics.summarize(total, ('background', 'body', 'nucleus'))
  sklearn_metrics = pytest.importorskip('sklearn.metrics')
  expected = sklearn_metrics.f1_score(masks.ravel(), predicted.ravel(),
                                      labels=[1, 2], average=None)
  assert result['dice'] == pytest.approx(expected.mean())
  assert result['dice/nucleus'] == pytest.approx(expected[1])


@pytest.mark.parametrize('n_outputs', [1, 3])
def test_roi_loss_is_dice_ce_inside_the_roi(n_outputs):
  from monai.losses import DiceCELoss
  torch.manual_seed(0)
  logits = torch.randn(2, n_outputs, 8, 8) * 3
  classes = torch.randint(0, max(2, n_outputs), (2, 1, 8, 8))
  target = classes.float() if n_outputs == 1 else classes
  loss = peer_monai.RoiDiceCELoss(n_outputs)
  plain = DiceCELoss(sigmoid=n_outputs == 1, softmax=n_outputs > 1,
                     to_onehot_y=n_outputs > 1)
  full = torch.ones(2, 1, 8, 8, dtype=torch.bool)
  assert float(loss.masked(logits, target, full)) == pytest.approx(
      float(plain(logits, target)), rel=1e-6)
  left = full.clone()
  left[..., 5:] = False  # the loss over the roi is DiceCELoss on the crop
  assert float(loss(logits, target, left)) == pytest.approx(
      float(plain(logits[..., :5], target[..., :5])), rel=1e-5)


def test_patches_and_flips_of_training_batches():
  rng = np.random.default_rng(0)
  example = {'image': rng.integers(0, 256, (20, 24, 3), dtype=np.uint8),
             'mask': (rng.random((20, 24)) > 0.5).astype(np.uint8)}
  sampling = patches.PatchSampling(size=(8, 8))
  batch = next(peer_monai.train_batches([example], 3, rng, sampling, (0.5, 0.5)))
  assert batch['image'].shape == (3, 8, 8, 3) and batch['roi'].shape == (3, 8, 8)
  flipped = peer_monai.flip(example, rng, (1.0, 0.0))
  np.testing.assert_array_equal(flipped['image'], example['image'][:, ::-1])
  np.testing.assert_array_equal(flipped['mask'], example['mask'][:, ::-1])


def test_dyn_unet_depth_stops_at_four_pixels():
  assert peer_monai.network_depth(4, 256) == 4
  assert peer_monai.network_depth(4, 32) == 3
  assert peer_monai.network_depth(2, 16) == 2


def test_missing_monai_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'monai', None)
  with pytest.raises(extras.MissingExtraError, match=r"pip install -e '\.\[peers\]'"):
    peer_monai.require_peers()


def _check_record(record, network):
  assert RECORD_KEYS <= set(record) and record['network'] == network
  for split in ('validation', 'test'):
    for key in ('dice', 'dice_per_image'):
      assert math.isfinite(record[split][key]) and 0 <= record[split][key] <= 1
  assert record['best_step'] in [step for step, _ in record['validation_curve']]
  assert record['validation']['dice'] == pytest.approx(
      dict(record['validation_curve'])[record['best_step']])


def _config(tfds_dir, name='synthetic_cells/binary'):
  config = default.get_config()
  config.dataset.name, config.dataset.data_dir = name, tfds_dir
  config.model.depth = 2
  return config


@pytest.mark.slow
def test_command_line_trains_basic_unet_and_writes_the_record(tfds_dir, tmp_path):
  out = tmp_path / 'peer.json'
  result = subprocess.run(
      [sys.executable, '-m', 'benchmarks.peer_monai', '--config=configs/default.py',
       f'--config.dataset.data_dir={tfds_dir}',
       '--config.augment.flip_vertical_prob=0.5',
       '--network=basic_unet', '--width=4', '--steps=4', '--eval_every=2',
       '--batch_size=4', f'--out={out}'],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(out.read_text())
  _check_record(record, 'basic_unet')
  assert record['flip_probs'] == [0.0, 0.5]
  assert [step for step, _ in record['validation_curve']] == [2, 4]
  assert 'test Dice' in result.stdout.splitlines()[-1]


def test_dyn_unet_trains_on_whole_images(tfds_dir):
  record = peer_monai.run(_config(tfds_dir), peer_monai.Options(
      network='dyn_unet', width=4, steps=3, batch_size=4, eval_every=2))
  _check_record(record, 'dyn_unet')
  assert record['depth'] == 2 and record['patch_size'] is None
  assert [step for step, _ in record['validation_curve']] == [2, 3]


def test_patch_trained_multiclass_is_scored_on_whole_images(tfds_dir):
  config = _config(tfds_dir, 'synthetic_cells/multiclass')
  config.dataset.patch_size = 32
  config.model.depth = 4  # capped where the 32 px patch gets under 4 px
  record = peer_monai.run(config, peer_monai.Options(
      network='dyn_unet', width=4, steps=2, batch_size=4, eval_every=2))
  _check_record(record, 'dyn_unet')
  assert record['patch_size'] == [32, 32] and record['depth'] == 3
  assert 'dice/nucleus' in record['test']


def test_a_time_budget_ends_the_steps_with_room_for_scoring():
  assert not peer_monai.out_of_time(50.0, 10.0, None)
  assert not peer_monai.out_of_time(79.0, 10.0, 100.0)
  assert peer_monai.out_of_time(80.0, 10.0, 100.0)  # a validation and the test
  # A test split five times the validation's (DRIVE: 20 images against 4)
  # keeps five validations' time for its scoring.
  assert not peer_monai.out_of_time(39.0, 10.0, 100.0, test_per_validation=5.0)
  assert peer_monai.out_of_time(40.0, 10.0, 100.0, test_per_validation=5.0)


def test_dyn_unet_stops_at_its_time_budget(tfds_dir):
  record = peer_monai.run(_config(tfds_dir), peer_monai.Options(
      network='dyn_unet', width=4, steps=10_000, batch_size=4, eval_every=5,
      budget_s=1e-3))  # spent before the first step ends
  _check_record(record, 'dyn_unet')
  assert record['steps'] == 1 and record['budget_s'] == 1e-3
  assert [step for step, _ in record['validation_curve']] == [1]
