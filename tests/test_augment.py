"""Augmentation against exact identities (numpy flips and turns), scipy
(map_coordinates, gaussian_filter) and the statistics each op documents.

Every test runs jitted functions on small images; one batch per op config is
computed once and shared by the tests that look at it.
"""

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage
from skimage import segmentation

from configs import augmented, default
from unetjax import augment, augment_grid, configuration, parallel
from unetjax.errors import ConfigError

SIZE = 32
BATCH = 8
# Intensity of each class in the test pattern: the image is a function of the
# mask, so image and mask are aligned when image == LEVELS[mask]. Levels stay
# far from 0 and 1 so photometric ops do not clip them.
LEVELS = np.array([0.35, 0.45, 0.55, 0.65], np.float32)


def augment_config(**fields):
  config = default.get_config().augment
  for key, value in fields.items():
    config[key] = value
  return config


def augmented_geometric_only():
  config = augmented.get_config().augment
  for op in augment.PHOTOMETRIC_OPS:
    config[op + '_prob'] = 0.0
  return config


# One op at a time, always applied, strong enough to see; plus the full set.
OP_CONFIGS = {
    'flip_horizontal': dict(flip_horizontal_prob=1.0),
    'flip_vertical': dict(flip_vertical_prob=1.0),
    'rot90': dict(rot90_prob=1.0),
    'rotate': dict(rotate_prob=1.0, rotate_degrees=30.0),
    'scale': dict(scale_prob=1.0, scale_range=(1.1, 1.3)),  # zoom in only
    'translate': dict(translate_prob=1.0, translate_fraction=0.2),
    'elastic': dict(elastic_prob=1.0, elastic_alpha=1.5, elastic_sigma=4.0),
    'brightness': dict(brightness_prob=1.0, brightness=0.3),
    'contrast': dict(contrast_prob=1.0, contrast_range=(0.5, 1.5)),
    'gamma': dict(gamma_prob=1.0, gamma_range=(0.5, 2.0)),
    'blur': dict(blur_prob=1.0, blur_sigma_range=(1.0, 1.0)),
    'noise': dict(noise_prob=1.0, noise_std=0.1),
}
GEOMETRIC = [op for op in OP_CONFIGS if op in augment.GEOMETRIC_OPS]
PHOTOMETRIC = [op for op in OP_CONFIGS if op in augment.PHOTOMETRIC_OPS]


def config_for(name):
  if name == 'augmented':
    return augmented.get_config().augment
  if name == 'augmented_geometric':
    return augmented_geometric_only()
  return augment_config(**OP_CONFIGS[name])


def pattern_batch(n=BATCH, height=SIZE, width=SIZE, seed=0):
  """(images (N, H, W, 3), (mask uint8, foreground bool)).

  The mask is a random layout of 8-pixel squares of classes 0-3; image
  channel 0 is LEVELS[mask], channels 1 and 2 are the row and column
  coordinates scaled to [0, 1], so a bilinearly resampled image tells where
  each output pixel was read. The second label map is a function of the
  first, so both must move together.
  """
  rng = np.random.default_rng(seed)
  blocks = rng.integers(0, 4, (n, height // 8 + 1, width // 8 + 1))
  mask = np.kron(blocks, np.ones((8, 8), np.int64))[:, :height, :width]
  mask = mask.astype(np.uint8)
  rows, cols = np.meshgrid(np.arange(height) / (height - 1),
                           np.arange(width) / (width - 1), indexing='ij')
  images = np.stack([LEVELS[mask],
                     np.broadcast_to(rows, mask.shape),
                     np.broadcast_to(cols, mask.shape)], -1).astype(np.float32)
  return images, (mask, mask >= 2)


def jitted_batch(config):
  return jax.jit(functools.partial(augment.augment_batch, config=config))


@functools.cache
def jitted(name):
  """augment_batch for a named config, compiled once per input shape."""
  return jitted_batch(config_for(name))


@functools.cache
def run(name):
  """Inputs and outputs (numpy) of one batch of the test pattern, key 0."""
  images, label_maps = pattern_batch()
  out_images, out_labels = jitted(name)(jax.random.key(0), images, label_maps)
  return images, label_maps, np.asarray(out_images), tuple(
      np.asarray(labels) for labels in out_labels)


def interior(mask, band=2):
  """Pixels with no other label within `band` pixels (a square window)."""
  window = 2 * band + 1
  return (ndimage.maximum_filter(mask, window, mode='nearest')
          == ndimage.minimum_filter(mask, window, mode='nearest'))


def read_positions(images):
  """Where each output pixel was read, from the coordinate channels."""
  return np.stack([images[..., 1] * (SIZE - 1), images[..., 2] * (SIZE - 1)], -1)


def fit_affine(positions, margin=SIZE // 4):
  """Least-squares (matrix, offset) with positions = matrix @ o + offset over
  the central pixels o of one example, in coordinates about the center."""
  center = (SIZE - 1) / 2
  grid = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing='ij'),
                  -1) - center
  central = slice(margin, SIZE - margin)
  o = grid[central, central].reshape(-1, 2)
  p = positions[central, central].reshape(-1, 2) - center
  solution, *_ = np.linalg.lstsq(np.c_[o, np.ones(len(o))], p, rcond=None)
  return solution[:2].T, solution[2]


# --- identity and exact cases ------------------------------------------------

@pytest.mark.parametrize('fields', [
    {},  # the default config: everything off
    # Probabilities on, strengths at the identity.
    dict(rotate_prob=1.0, scale_prob=1.0, translate_prob=1.0, elastic_prob=1.0,
         brightness_prob=1.0, contrast_prob=1.0, gamma_prob=1.0, blur_prob=1.0,
         noise_prob=1.0),
])
def test_identity_config_returns_the_input_bitwise(fields):
  config = augment_config(**fields)
  assert augment.enabled_ops(config) == ()
  images, (mask, foreground) = pattern_batch()
  images = np.random.default_rng(1).random(images.shape).astype(np.float32)
  label_maps = (mask, foreground, mask.astype(np.int32))
  out_images, out_labels = jitted_batch(config)(jax.random.key(0), images,
                                                label_maps)
  assert out_images.dtype == images.dtype
  np.testing.assert_array_equal(out_images, images, strict=True)
  for out, labels in zip(out_labels, label_maps, strict=True):
    np.testing.assert_array_equal(out, labels, strict=True)


@pytest.mark.parametrize('border_mode', augment.BORDER_MODES)
def test_identity_transform_resamples_exactly(border_mode):
  images, (mask, _) = pattern_batch(n=1, height=24, width=40)
  image = np.random.default_rng(1).random(images[0].shape).astype(np.float32)
  grid = augment.sampling_grid(jnp.eye(2), jnp.zeros(2),
                               jnp.zeros((24, 40, 2)), 24, 40)
  out_image, (out_mask,) = jax.jit(augment.resample, static_argnums=3)(
      image, (mask[0],), grid, border_mode)
  np.testing.assert_array_equal(out_image, image, strict=True)
  np.testing.assert_array_equal(out_mask, mask[0], strict=True)


def test_flips_equal_numpy_flips():
  for name, axis in [('flip_horizontal', 2), ('flip_vertical', 1)]:
    images, label_maps, out_images, out_labels = run(name)
    np.testing.assert_array_equal(out_images, np.flip(images, axis), err_msg=name)
    for out, labels in zip(out_labels, label_maps):
      np.testing.assert_array_equal(out, np.flip(labels, axis), err_msg=name)


def test_flips_alone_skip_the_grid_and_give_what_it_reads_bitwise():
  config = default.get_config().augment
  config.flip_horizontal_prob = config.flip_vertical_prob = 0.5
  rng = np.random.default_rng(2)
  image = jnp.asarray(rng.random((6, 7, 3)), jnp.float32)
  maps = (jnp.asarray(rng.integers(0, 3, (6, 7)), jnp.uint8),
          jnp.asarray(rng.random((6, 7)), jnp.float32))

  def through_grid(key):
    draws = augment._draws(key)  # pylint: disable=protected-access
    grid = augment.sampling_grid(
        *augment._sample_transform(draws, config, 6, 7), 6, 7)  # pylint: disable=protected-access
    return augment.resample(image, maps, grid, config.border_mode)

  outcomes = set()
  for seed in range(24):
    key = jax.random.key(seed)
    fast = augment.augment_example(key, image, maps, config)
    for out, ref in zip(jax.tree.leaves(fast), jax.tree.leaves(through_grid(key))):
      np.testing.assert_array_equal(out, ref, strict=True)
    outcomes.add(next(name for name, flipped in [
        ('none', image), ('vertical', image[::-1]),
        ('horizontal', image[:, ::-1]), ('both', image[::-1, ::-1])]
                      if jnp.array_equal(fast[0], flipped)))
  assert len(outcomes) == 4  # none, either and both flips were drawn


def test_quarter_turns_equal_numpy_rot90_and_use_every_turn():
  images, (mask, foreground), out_images, (out_mask, out_foreground) = run(
      'rot90')
  turns = []
  for i in range(BATCH):
    matches = [k for k in (1, 2, 3)
               if np.array_equal(out_images[i], np.rot90(images[i], k))]
    assert len(matches) == 1, f'example {i} is not a quarter turn'
    k = matches[0]
    np.testing.assert_array_equal(out_mask[i], np.rot90(mask[i], k))
    np.testing.assert_array_equal(out_foreground[i], np.rot90(foreground[i], k))
    turns.append(k)
  # 8 examples with a fixed key: all three turns occur.
  assert set(turns) == {1, 2, 3}, turns


def test_quarter_turns_of_non_square_images_are_half_turns():
  images, label_maps = pattern_batch(n=4, height=24, width=40)
  out_images, (out_mask, _) = jitted_batch(config_for('rot90'))(
      jax.random.key(0), images, label_maps)
  np.testing.assert_array_equal(out_images, np.rot90(images, 2, axes=(1, 2)))
  np.testing.assert_array_equal(out_mask, np.rot90(label_maps[0], 2, axes=(1, 2)))


def test_rotation_by_90_degrees_is_a_quarter_turn():
  """The arbitrary-angle path (float cos/sin, bilinear) at 90 degrees."""
  images, (mask, _) = pattern_batch(n=1)
  angle = np.float32(np.pi / 2)
  matrix = jnp.array([[np.cos(angle), np.sin(angle)],
                      [-np.sin(angle), np.cos(angle)]], jnp.float32)
  grid = augment.sampling_grid(matrix, jnp.zeros(2), None, SIZE, SIZE)
  out_image, (out_mask,) = jax.jit(augment.resample)(images[0], (mask[0],), grid)
  np.testing.assert_allclose(out_image, np.rot90(images[0]), atol=1e-5)
  np.testing.assert_array_equal(out_mask, np.rot90(mask[0]))


@pytest.mark.parametrize('border_mode, scipy_mode', [
    ('reflect', 'mirror'), ('nearest', 'nearest'), ('constant', 'grid-constant')])
def test_resampling_matches_scipy_map_coordinates(border_mode, scipy_mode):
  """Bilinear image and nearest labels at random positions, many outside."""
  rng = np.random.default_rng(2)
  height, width = 20, 28
  image = rng.random((height, width, 2)).astype(np.float32)
  labels = rng.integers(0, 5, (height, width)).astype(np.uint8)
  grid = np.stack([rng.uniform(-15, height + 15, (30, 30)),
                   rng.uniform(-15, width + 15, (30, 30))], -1).astype(np.float32)
  out_image, (out_labels,) = jax.jit(augment.resample, static_argnums=3)(
      image, (labels,), grid, border_mode)
  coordinates = np.moveaxis(grid.astype(np.float64), -1, 0)
  expected = np.stack([ndimage.map_coordinates(image[..., c].astype(np.float64),
                                               coordinates, order=1,
                                               mode=scipy_mode)
                       for c in range(2)], -1)
  np.testing.assert_allclose(out_image, expected, atol=1e-5)
  expected_labels = ndimage.map_coordinates(labels, coordinates, order=0,
                                            mode=scipy_mode)
  np.testing.assert_array_equal(out_labels, expected_labels)


# --- every op: labels, alignment, ranges -------------------------------------

@pytest.mark.parametrize('name', list(OP_CONFIGS) + ['augmented',
                                                     'augmented_geometric'])
def test_labels_keep_dtype_and_values_and_images_stay_in_unit_range(name):
  images, label_maps, out_images, out_labels = run(name)
  assert out_images.dtype == np.float32 and out_images.shape == images.shape
  assert out_images.min() >= 0.0 and out_images.max() <= 1.0
  for out, labels in zip(out_labels, label_maps, strict=True):
    assert out.dtype == labels.dtype and out.shape == labels.shape
    assert set(np.unique(out)) <= set(np.unique(labels))
  # Both label maps moved together: the second is still a function of the first.
  np.testing.assert_array_equal(out_labels[1], out_labels[0] >= 2)
  # Every op here is always applied and changes every example.
  for i in range(BATCH):
    assert not np.array_equal(out_images[i], images[i]), f'example {i}'


@pytest.mark.parametrize('name', GEOMETRIC + ['augmented_geometric'])
def test_image_stays_aligned_with_mask(name):
  _, _, out_images, (out_mask, _) = run(name)
  for i in range(BATCH):
    inside = interior(out_mask[i])
    assert inside.mean() > 0.2, 'too few pixels away from label edges to test'
    np.testing.assert_allclose(out_images[i, ..., 0][inside],
                               LEVELS[out_mask[i]][inside], atol=1e-5,
                               err_msg=f'example {i}')


@pytest.mark.parametrize('name', PHOTOMETRIC)
def test_photometric_ops_leave_labels_alone(name):
  _, label_maps, _, out_labels = run(name)
  for out, labels in zip(out_labels, label_maps):
    np.testing.assert_array_equal(out, labels, strict=True)


def test_rotation_angles_stay_within_range():
  angles = []
  for i in range(BATCH):
    matrix, offset = fit_affine(read_positions(run('rotate')[2][i]))
    # A pure rotation about the center: orthonormal, no shift.
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(2), atol=1e-4)
    np.testing.assert_allclose(offset, 0, atol=1e-3)
    angles.append(np.degrees(np.arctan2(matrix[0, 1], matrix[0, 0])))
  assert np.all(np.abs(angles) <= 30 + 1e-3), angles
  assert min(angles) < -5 and max(angles) > 5, angles  # both directions


def test_zoom_enlarges_by_a_factor_within_range():
  for i in range(BATCH):
    matrix, offset = fit_affine(read_positions(run('scale')[2][i]))
    zoom = 1 / matrix[0, 0]  # the output reads the input at 1/zoom the distance
    np.testing.assert_allclose(matrix, np.eye(2) / zoom, atol=1e-4)
    np.testing.assert_allclose(offset, 0, atol=1e-3)
    assert 1.1 - 1e-4 <= zoom <= 1.3 + 1e-4, zoom


def test_translation_shifts_within_range():
  shifts = []
  for i in range(BATCH):
    matrix, offset = fit_affine(read_positions(run('translate')[2][i]))
    np.testing.assert_allclose(matrix, np.eye(2), atol=1e-4)
    shifts.append(offset)
  assert np.all(np.abs(shifts) <= 0.2 * SIZE + 1e-3), shifts
  assert np.ptp(shifts) > 2, shifts


def test_elastic_displacement_has_the_documented_size_and_smoothness():
  """Each component: mean 0, std alpha, and the autocorrelation of
  Gaussian-filtered white noise, exp(-d**2 / (4 sigma**2))."""
  alpha, sigma, size = 2.0, 3.0, 96
  keys = jax.random.split(jax.random.key(0), 16)
  fields = np.asarray(jax.jit(jax.vmap(functools.partial(
      augment.elastic_displacement, height=size, width=size, alpha=alpha,
      sigma=sigma)))(keys))
  assert fields.shape == (16, size, size, 2)
  assert abs(fields.mean()) < 0.1 * alpha
  np.testing.assert_allclose(fields.std(), alpha, rtol=0.1)
  for lag in (1, 3, 6):
    a, b = fields[:, :, :-lag], fields[:, :, lag:]
    correlation = np.mean(a * b) / np.sqrt(np.mean(a**2) * np.mean(b**2))
    np.testing.assert_allclose(correlation, np.exp(-lag**2 / (4 * sigma**2)),
                               atol=0.06, err_msg=f'lag {lag}')


def test_elastic_op_moves_pixels_smoothly_by_about_alpha():
  _, _, out_images, _ = run('elastic')
  grid = np.stack(np.meshgrid(np.arange(SIZE), np.arange(SIZE), indexing='ij'), -1)
  central = slice(6, SIZE - 6)  # read inside the image, not mirrored
  displacement = (read_positions(out_images) - grid)[:, central, central]
  rms = np.sqrt(np.mean(displacement**2))
  assert 0.5 * 1.5 < rms < 1.5 * 1.5, rms
  # Smooth: neighbours move alike.
  step = np.abs(np.diff(displacement, axis=1)).mean()
  assert step < 0.3 * np.abs(displacement).mean(), step


# --- photometric statistics --------------------------------------------------

def test_brightness_shifts_every_pixel_by_one_amount_within_range():
  images, _, out_images, _ = run('brightness')
  shifts = (out_images - images)[..., 0]  # channel 0 does not clip
  per_example = shifts.mean(axis=(1, 2))
  np.testing.assert_allclose(
      shifts, np.broadcast_to(per_example[:, None, None], shifts.shape),
      atol=1e-6)
  assert np.all(np.abs(per_example) <= 0.3 + 1e-6)
  assert per_example.min() < 0 < per_example.max()


def test_contrast_scales_deviations_from_the_mean():
  images, _, out_images, _ = run('contrast')
  for i in range(BATCH):
    before, after = images[i], out_images[i]
    np.testing.assert_allclose(after.mean((0, 1)), before.mean((0, 1)), atol=1e-5)
    deviation = before[..., 0] - before[..., 0].mean()
    factor = np.sum((after[..., 0] - after[..., 0].mean()) * deviation) / np.sum(
        deviation**2)
    assert 0.5 - 1e-5 <= factor <= 1.5 + 1e-5, factor
    np.testing.assert_allclose(after[..., 0] - after[..., 0].mean(),
                               factor * deviation, atol=1e-5)


def test_gamma_raises_to_one_power_within_range():
  images, _, out_images, _ = run('gamma')
  exponents = np.log(out_images[..., 0]) / np.log(images[..., 0])
  per_example = exponents.mean(axis=(1, 2))
  np.testing.assert_allclose(
      exponents, np.broadcast_to(per_example[:, None, None], exponents.shape),
      rtol=1e-4)
  assert np.all((per_example >= 0.5 - 1e-4) & (per_example <= 2.0 + 1e-4))


def test_blur_is_scipy_gaussian_filter_with_mirrored_borders():
  images, _, out_images, _ = run('blur')  # sigma exactly 1
  expected = ndimage.gaussian_filter(images.astype(np.float64), (0, 1, 1, 0),
                                     mode='mirror', truncate=3.0)
  np.testing.assert_allclose(out_images, expected, atol=1e-5)


def test_noise_is_white_zero_mean_and_at_most_noise_std():
  images, _, out_images, _ = run('noise')
  residual = (out_images - images)[..., 0]  # channel 0 does not clip at 3.5 std
  stds = residual.std(axis=(1, 2))
  assert np.all(stds <= 0.1 * 1.1), stds
  assert np.ptp(stds) > 0.01, stds  # the std is drawn per example
  assert np.all(np.abs(residual.mean(axis=(1, 2))) < 3 * stds / SIZE + 1e-4)
  neighbours = np.mean(residual[:, :, 1:] * residual[:, :, :-1]) / np.mean(
      residual**2)
  assert abs(neighbours) < 0.05, neighbours


# --- randomness --------------------------------------------------------------

def test_same_key_same_output_and_different_keys_differ():
  images, label_maps, out_images, out_labels = run('augmented')
  again = jitted('augmented')(jax.random.key(0), images, label_maps)
  np.testing.assert_array_equal(again[0], out_images)
  np.testing.assert_array_equal(again[1][0], out_labels[0])
  other = jitted('augmented')(jax.random.key(1), images, label_maps)
  for i in range(BATCH):
    assert not np.array_equal(other[0][i], out_images[i]), f'example {i}'


def test_examples_of_a_batch_get_different_transforms():
  images, label_maps = pattern_batch()
  same_images = np.repeat(images[:1], BATCH, 0)
  same_labels = tuple(np.repeat(labels[:1], BATCH, 0) for labels in label_maps)
  out_images, _ = jitted('augmented')(jax.random.key(0), same_images,
                                      same_labels)
  out_images = np.asarray(out_images)
  for i in range(BATCH):
    for j in range(i):
      assert not np.array_equal(out_images[i], out_images[j]), (i, j)


def test_examples_not_drawn_for_an_op_come_back_bitwise():
  """With probability 1/2 each for elastic and gamma, about a quarter of the
  examples get neither and are returned exactly."""
  config = augment_config(elastic_prob=0.5, elastic_alpha=2.0,
                          gamma_prob=0.5, gamma_range=(0.5, 2.0))
  images, label_maps = pattern_batch(n=32)
  out_images, _ = jitted_batch(config)(jax.random.key(0), images, label_maps)
  unchanged = [np.array_equal(out, image)
               for out, image in zip(np.asarray(out_images), images)]
  assert 2 <= sum(unchanged) <= 16, sum(unchanged)


def test_each_op_draws_the_same_whatever_else_is_on():
  """Adding photometric ops does not change the geometric transform."""
  _, _, _, (mask_geometric, _) = run('augmented_geometric')
  _, _, _, (mask_all, _) = run('augmented')
  np.testing.assert_array_equal(mask_all, mask_geometric)


@pytest.mark.parametrize('strategy', ['jit', 'pmap'])
def test_data_parallel_strategies_augment_like_one_device(strategy):
  """Under unetjax.parallel's strategies over 8 devices (one example each),
  with the index offset augment_batch documents for pmap, every example gets
  the same transform as on one device."""
  assert jax.device_count() == BATCH == 8
  images, (mask, _), expected_images, (expected_mask, _) = run('augmented')
  config = config_for('augmented')

  def step(state, batch, axis_name):
    offset = 0
    if axis_name is not None:
      offset = jax.lax.axis_index(axis_name) * batch['image'].shape[0]
    out_images, (out_mask,) = augment.augment_batch(
        jax.random.key(0), batch['image'], (batch['mask'],), config,
        index_offset=offset)
    return state, {'image': out_images, 'mask': out_mask}

  layout = parallel.get_strategy(strategy)
  _, out = layout.compile(step)(layout.place_state(np.zeros(())),
                                layout.place_batch({'image': images,
                                                    'mask': mask}))
  out_images = np.asarray(out['image']).reshape(images.shape)
  out_mask = np.asarray(out['mask']).reshape(mask.shape)
  np.testing.assert_allclose(out_images, expected_images, atol=1e-6)
  np.testing.assert_array_equal(out_mask, expected_mask)


# --- checks ------------------------------------------------------------------

def test_bad_shapes_are_clear_errors():
  image = jnp.zeros((SIZE, SIZE, 1))
  config = config_for('rotate')
  with pytest.raises(ValueError, match=r'does not match the image'):
    augment.augment_example(jax.random.key(0), image,
                            (jnp.zeros((SIZE, SIZE + 1), jnp.uint8),), config)
  with pytest.raises(ValueError, match=r'class ids, booleans or per-pixel'):
    augment.augment_example(jax.random.key(0), image,
                            (jnp.zeros((SIZE, SIZE), jnp.complex64),), config)


def test_a_weight_map_moves_with_the_mask():
  """A float map (the border weights) is read by nearest neighbour like the
  mask, so a weight stays on the pixel of the class it was computed for."""
  rng = np.random.default_rng(0)
  mask = jnp.asarray(rng.integers(0, 2, (SIZE, SIZE)), jnp.int32)
  weight = jnp.where(mask > 0, 2.5, 0.25).astype(jnp.float32)
  config = config_for('rotate')
  _, (moved_mask, moved_weight) = augment.augment_example(
      jax.random.key(3), jnp.zeros((SIZE, SIZE, 1)), (mask, weight), config)
  assert moved_weight.dtype == jnp.float32
  assert not np.array_equal(moved_mask, mask)  # it did move
  np.testing.assert_array_equal(moved_weight,
                                np.where(moved_mask > 0, 2.5, 0.25))


def test_default_and_augmented_configs_are_valid():
  configuration.validate(default.get_config())
  configuration.validate(augmented.get_config())
  assert augment.enabled_ops(default.get_config().augment) == ()


@pytest.mark.parametrize('field, value, message', [
    ('scale_range', (1.1, 0.9), r'scale_range=\(1.1, 0.9\) must have low <= high'),
    ('scale_range', (0.0, 1.0), r'scale_range=\(0.0, 1.0\) must have low > 0'),
    ('gamma_range', (0.5,), r'must be a pair of numbers'),
    ('flip_horizontal_prob', 1.5, r'flip_horizontal_prob=1.5 must be between 0 and 1'),
    ('rotate_degrees', 270.0, r'rotate_degrees=270.0 must be between 0 and 180'),
    ('elastic_sigma', 0.0, r'elastic_sigma=0.0 must be > 0'),
    ('border_mode', 'wrap', r"border_mode='wrap' must be one of: 'reflect'"),
    ('rotate_degree', 10.0, r'config.augment.rotate_degree is not a known field; '
                            r'did you mean config.augment.rotate_degrees\?'),
])
def test_config_mistakes_are_clear_errors(field, value, message):
  config = augmented.get_config()
  config.augment[field] = value
  with pytest.raises(ConfigError, match=message):
    configuration.validate(config)


def test_grid_outlines_each_region_in_its_class_colour():
  mask = np.zeros((6, 8), np.uint8)
  mask[1:5, 0:6] = 1
  mask[2:4, 2:4] = 2
  image = np.full((6, 8, 1), 0.5, np.float32)
  outlined = augment_grid._with_contours(augment_grid._rgb(image), mask)
  edge = segmentation.find_boundaries(mask, connectivity=1, mode='inner')
  expected = np.where(edge[..., None], augment_grid.PALETTE[mask], 128)
  np.testing.assert_array_equal(outlined, expected)
  images, masks = image[None].repeat(3, 0), mask[None].repeat(3, 0)
  grid = augment_grid.render_grid(images, masks, [(images, masks)] * 2, factor=2)
  # 3 columns of 16-px tiles; rows: image, mask, contours, 2 augmented.
  assert grid.size == (augment_grid.LABEL_WIDTH + 3 * (16 + 4), 5 * (12 + 4))


def test_grid_dims_pixels_outside_the_region_of_interest():
  image = np.full((1, 6, 8, 1), 0.5, np.float32)  # grey 128, no foreground
  mask = np.zeros((1, 6, 8), np.uint8)
  roi = np.zeros((1, 6, 8), np.uint8)
  roi[:, :, :3] = 1
  moved = np.zeros_like(roi)
  moved[:, :, 5:] = 1  # the augmented version's roi
  grid = np.asarray(augment_grid.render_grid(image, mask, [(image, mask, moved)],
                                             factor=1, rois=roi))
  left = augment_grid.LABEL_WIDTH
  tile = lambda row: grid[row * (6 + 4):row * (6 + 4) + 6, left:left + 8, 0]
  dimmed = round(128 * augment_grid.ROI_DIMMING)
  np.testing.assert_array_equal(tile(0), 128)  # the image row is as read
  np.testing.assert_array_equal(tile(2), np.where(roi[0], 128, dimmed))
  np.testing.assert_array_equal(tile(3), np.where(moved[0], 128, dimmed))


def test_grid_command_reports_a_bad_augment_field_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.augment_grid', '--config=configs/augmented.py',
       '--config.augment.rotate_prob=2', f'--out={tmp_path / "grid.png"}'],
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 1
  assert 'error: Invalid config' in result.stderr and 'rotate_prob=2.0' in result.stderr
  assert 'Traceback' not in result.stderr and not (tmp_path / 'grid.png').exists()
