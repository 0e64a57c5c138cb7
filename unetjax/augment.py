"""Per-example data augmentation, jittable, run on the accelerator inside the
train step.

Geometric ops (flips, quarter turns, rotation, zoom, translation, elastic
deformation) are composed into one sampling grid, so the image is
interpolated once (bilinear) however many of them are on, and every label map
is read on the same grid by nearest neighbour: labels keep their dtype and
values and stay aligned with the image. Photometric ops (brightness,
contrast, gamma, blur, noise) change the image only and keep it in [0, 1].

The config (`config.augment`, documented in configs/default.py) is read in
Python at trace time, so an op that is off costs nothing, and with every op
off an example comes back bit for bit. Each op has its own random draws, so
switching one op on or off does not change what the others draw.
"""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

GEOMETRIC_OPS = ('flip_horizontal', 'flip_vertical', 'rot90', 'rotate', 'scale',
                 'translate', 'elastic')
FLIP_OPS = ('flip_horizontal', 'flip_vertical')
PHOTOMETRIC_OPS = ('brightness', 'contrast', 'gamma', 'blur', 'noise')
OPS = GEOMETRIC_OPS + PHOTOMETRIC_OPS
BORDER_MODES = ('reflect', 'nearest', 'constant')

LabelMaps = tuple[jax.Array, ...]
Transform = tuple[jax.Array, jax.Array, jax.Array | None]


def enabled_ops(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The ops that can change an example: probability above 0 and a strength
  other than the identity."""
  c = config
  active = {
      'flip_horizontal': c.flip_horizontal_prob > 0,
      'flip_vertical': c.flip_vertical_prob > 0,
      'rot90': c.rot90_prob > 0,
      'rotate': c.rotate_prob > 0 and c.rotate_degrees > 0,
      'scale': c.scale_prob > 0 and tuple(c.scale_range) != (1, 1),
      'translate': c.translate_prob > 0 and c.translate_fraction > 0,
      'elastic': c.elastic_prob > 0 and c.elastic_alpha > 0,
      'brightness': c.brightness_prob > 0 and c.brightness > 0,
      'contrast': c.contrast_prob > 0 and tuple(c.contrast_range) != (1, 1),
      'gamma': c.gamma_prob > 0 and tuple(c.gamma_range) != (1, 1),
      'blur': c.blur_prob > 0 and c.blur_sigma_range[1] > 0,
      'noise': c.noise_prob > 0 and c.noise_std > 0,
  }
  return tuple(op for op in OPS if active[op])


def _draws(rng: jax.Array) -> dict[str, jax.Array]:
  """Per op: a coin and two values, uniform in [0, 1), and a key for its
  random field. One table for all ops (one random-number kernel to compile),
  drawn the same whichever ops are on."""
  table_key, elastic_key, noise_key = jax.random.split(rng, 3)
  table = jax.random.uniform(table_key, (len(OPS), 3))
  draws = {op: row for op, row in zip(OPS, table)}
  draws['elastic_key'], draws['noise_key'] = elastic_key, noise_key
  return draws


def _coin(draw: jax.Array, prob: float) -> jax.Array:
  return draw[0] < prob


def _between(fraction: jax.Array, low: float, high: float) -> jax.Array:
  return low + (high - low) * fraction


# --- Gaussian filtering ------------------------------------------------------

def _radius(sigma: float) -> int:
  """Half-width of the Gaussian kernel: 3 sigma hold 99.7% of its mass."""
  return max(1, math.ceil(3 * sigma))


def _gaussian_taps(sigma: jax.Array | float, radius: int) -> jax.Array:
  """Normalised 1-D Gaussian kernel of 2 * radius + 1 taps; `sigma` may be
  traced, and 0 gives the identity."""
  offsets = np.arange(-radius, radius + 1)
  taps = jnp.exp(-offsets**2 / (2 * jnp.maximum(sigma, 1e-6)**2))
  return taps / jnp.sum(taps)


def _gaussian_matrix(size: int, sigma: jax.Array | float,
                     radius: int) -> jax.Array:
  """(size, size) matrix that filters a signal along one axis with a Gaussian
  of std `sigma`, mirrored at the borders like
  scipy.ndimage.gaussian_filter(mode='mirror'), so a flat image stays flat at
  its edges."""
  offsets = np.arange(-radius, radius + 1)
  taps = _gaussian_taps(sigma, radius)
  # Output i reads input fold(i + offset) with weight taps[offset]; the
  # (size, taps, size) one-hot is built in the graph, not embedded as a
  # constant of that size.
  sources = _fold(jnp.arange(size)[:, None] + offsets, size, 'reflect')
  one_hot = sources[:, :, None] == jnp.arange(size)
  return jnp.einsum('t,itj->ij', taps, one_hot.astype(taps.dtype))


def _gaussian_smooth(image: jax.Array, sigma: jax.Array | float,
                     radius: int) -> jax.Array:
  """Separable Gaussian filter of an (H, W, C) array, as two matrix products:
  on a 2-core CPU under vmap they ran 8-120x faster than dm-pix's depthwise
  convolution (XLA's CPU convolutions are slow for this shape)."""
  height, width = image.shape[:2]
  rows = _gaussian_matrix(height, sigma, radius)
  cols = _gaussian_matrix(width, sigma, radius)
  return jnp.einsum('ij,jkc,lk->ilc', rows, image, cols,
                    precision=jax.lax.Precision.HIGHEST)


def elastic_displacement(rng: jax.Array, height: int, width: int,
                         alpha: float, sigma: float) -> jax.Array:
  """Smooth random displacement field (H, W, 2) in pixels, (row, col).

  White Gaussian noise filtered by a Gaussian of std `sigma` pixels (Simard et
  al. 2003; Ronneberger et al. 2015), scaled so that each component has
  standard deviation `alpha` pixels whatever `sigma` is. (Simard and dm-pix
  scale smoothed uniform noise by alpha instead, which moves pixels about
  0.16 * alpha / sigma: their alpha=34, sigma=4 is alpha=1.4 here.)
  """
  radius = _radius(sigma)
  # Filtered unit white noise has std sqrt(sum of the 2-D kernel squared),
  # which for a separable kernel is the sum of the 1-D taps squared.
  filtered_std = jnp.sum(_gaussian_taps(sigma, radius)**2)
  noise = jax.random.normal(rng, (height, width, 2), jnp.float32)
  return _gaussian_smooth(noise, sigma, radius) * (alpha / filtered_std)


# --- geometric ops: one transform, one sampling grid ------------------------

def _sample_transform(draws: dict[str, jax.Array],
                      config: ml_collections.ConfigDict, height: int,
                      width: int) -> Transform:
  """One example's geometric transform (matrix, offset, displacement).

  Output pixel o = (row, col) reads the input at
  `center + matrix @ (o - center + displacement[o]) + offset`, where center
  is the middle of the image: flips, quarter turns, rotation and zoom are
  about the center. `displacement` is None when elastic deformation is off.
  Quarter turns of non-square images are by 180 degrees only, so the shape
  is kept.
  """
  ops = enabled_ops(config)
  cos, sin = jnp.float32(1), jnp.float32(0)
  if 'rotate' in ops:
    draw = draws['rotate']
    angle = jnp.deg2rad(_between(draw[1], -config.rotate_degrees,
                                 config.rotate_degrees))
    applied = _coin(draw, config.rotate_prob)
    cos = jnp.where(applied, jnp.cos(angle), 1.0)
    sin = jnp.where(applied, jnp.sin(angle), 0.0)
  if 'rot90' in ops:
    draw = draws['rot90']
    turns = 1 + jnp.floor(draw[1] * 3).astype(jnp.int32) if height == width else 2
    turns = jnp.where(_coin(draw, config.rot90_prob), turns, 0)
    # Exact table values, so quarter turns move pixels without interpolation.
    quarter_cos = jnp.array([1, 0, -1, 0], jnp.float32)[turns]
    quarter_sin = jnp.array([0, 1, 0, -1], jnp.float32)[turns]
    cos, sin = (cos * quarter_cos - sin * quarter_sin,
                sin * quarter_cos + cos * quarter_sin)
  row_sign = col_sign = jnp.float32(1)
  if 'flip_vertical' in ops:
    row_sign = jnp.where(_coin(draws['flip_vertical'],
                               config.flip_vertical_prob), -1.0, 1.0)
  if 'flip_horizontal' in ops:
    col_sign = jnp.where(_coin(draws['flip_horizontal'],
                               config.flip_horizontal_prob), -1.0, 1.0)
  zoom = jnp.float32(1)
  if 'scale' in ops:
    draw = draws['scale']
    zoom = jnp.where(_coin(draw, config.scale_prob),
                     _between(draw[1], *config.scale_range), 1.0)
  # Pull-back map: rotating the content counter-clockwise (as displayed, rows
  # pointing down) by an angle reads the input rotated clockwise by it.
  matrix = jnp.stack([jnp.stack([row_sign * cos, row_sign * sin]),
                      jnp.stack([-col_sign * sin, col_sign * cos])]) / zoom
  offset = jnp.zeros(2, jnp.float32)
  if 'translate' in ops:
    draw = draws['translate']
    shift = _between(draw[1:], -config.translate_fraction,
                     config.translate_fraction)
    offset = jnp.where(_coin(draw, config.translate_prob),
                       shift * jnp.array([height, width], jnp.float32), 0.0)
  displacement = None
  if 'elastic' in ops:
    displacement = jnp.where(
        _coin(draws['elastic'], config.elastic_prob),
        elastic_displacement(draws['elastic_key'], height, width,
                             config.elastic_alpha, config.elastic_sigma), 0.0)
  return matrix, offset, displacement


def sampling_grid(matrix: jax.Array, offset: jax.Array,
                  displacement: jax.Array | None, height: int,
                  width: int) -> jax.Array:
  """(H, W, 2) input positions (row, col) read by each output pixel; see
  `_sample_transform`. Elementwise, not a matmul, so no backend rounds it to
  a lower precision and the identity is exact."""
  center = ((height - 1) / 2, (width - 1) / 2)
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32) - center[0],
                            jnp.arange(width, dtype=jnp.float32) - center[1],
                            indexing='ij')
  if displacement is not None:
    rows, cols = rows + displacement[..., 0], cols + displacement[..., 1]
  return jnp.stack([
      center[0] + matrix[0, 0] * rows + matrix[0, 1] * cols + offset[0],
      center[1] + matrix[1, 0] * rows + matrix[1, 1] * cols + offset[1]], -1)


def _fold(positions: jax.Array, size: int, border_mode: str) -> jax.Array:
  """Brings positions outside [0, size - 1] inside, the same way for the
  image and the labels so they stay aligned. 'reflect' mirrors about the
  edge pixels (numpy.pad's 'reflect', scipy.ndimage's 'mirror', OpenCV's
  BORDER_REFLECT_101); 'constant' leaves them outside, to read zeros."""
  if border_mode == 'reflect':
    if size == 1:
      return jnp.zeros_like(positions)
    period = 2 * (size - 1)
    positions = jnp.abs(positions) % period
    return jnp.where(positions > size - 1, period - positions, positions)
  if border_mode == 'nearest':
    return jnp.clip(positions, 0, size - 1)
  return positions


def _read(array: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """array[rows, cols], zero where the index is outside the array."""
  height, width = array.shape[:2]
  inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
  values = array[jnp.clip(rows, 0, height - 1), jnp.clip(cols, 0, width - 1)]
  inside = inside.reshape(inside.shape + (1,) * (values.ndim - inside.ndim))
  return jnp.where(inside, values, jnp.zeros((), array.dtype))


def resample(image: jax.Array, label_maps: LabelMaps, grid: jax.Array,
             border_mode: str = 'reflect') -> tuple[jax.Array, LabelMaps]:
  """Reads `image` (H, W, C) bilinearly and each (H, W) label map by nearest
  neighbour (ties round up) at the positions `grid` (H', W', 2).

  On whole-pixel positions bilinear reading copies pixels exactly, so flips,
  quarter turns and the identity are exact.
  """
  if border_mode not in BORDER_MODES:
    raise ValueError(f'border_mode={border_mode!r}; use one of {BORDER_MODES}.')
  height, width = image.shape[:2]
  rows = _fold(grid[..., 0], height, border_mode)
  cols = _fold(grid[..., 1], width, border_mode)
  top, left = jnp.floor(rows), jnp.floor(cols)
  down, right = (rows - top)[..., None], (cols - left)[..., None]
  top, left = top.astype(jnp.int32), left.astype(jnp.int32)
  upper = (_read(image, top, left) * (1 - right)
           + _read(image, top, left + 1) * right)
  lower = (_read(image, top + 1, left) * (1 - right)
           + _read(image, top + 1, left + 1) * right)
  warped = (upper * (1 - down) + lower * down).astype(image.dtype)
  nearest_rows = jnp.floor(rows + 0.5).astype(jnp.int32)
  nearest_cols = jnp.floor(cols + 0.5).astype(jnp.int32)
  return warped, tuple(_read(labels, nearest_rows, nearest_cols)
                       for labels in label_maps)


def _flip(draws: dict[str, jax.Array], config: ml_collections.ConfigDict,
          image: jax.Array, label_maps: LabelMaps) -> tuple[jax.Array, LabelMaps]:
  """Flips alone: reversed axes are what the sampling grid reads, bit for
  bit, without its four reads per pixel (a tenth of a width-8 U-Net's CPU
  step on 256 px images)."""
  arrays = (image,) + tuple(label_maps)
  for op, axis in zip(FLIP_OPS, (1, 0)):
    if op in enabled_ops(config):
      flipped = _coin(draws[op], config[f'{op}_prob'])
      arrays = tuple(jnp.where(flipped, jnp.flip(a, axis), a) for a in arrays)
  return arrays[0], arrays[1:]


# --- photometric ops ---------------------------------------------------------

def _adjust_intensity(draws: dict[str, jax.Array], image: jax.Array,
                      config: ml_collections.ConfigDict) -> jax.Array:
  """Brightness, contrast, gamma, blur and noise, in this order, each with its
  probability; the result is clipped to [0, 1] after each op that is applied.

  brightness adds a shift uniform in +-brightness; contrast scales each
  channel's deviation from its mean by a factor in contrast_range; gamma
  raises the image to a power in gamma_range; blur filters with a Gaussian
  whose std is in blur_sigma_range (mirrored borders); noise adds white
  Gaussian noise whose std is uniform in [0, noise_std]. All channels share
  one draw.
  """
  ops = enabled_ops(config)

  def maybe(op, prob, adjust):
    """The adjusted image, clipped, with probability `prob`."""
    draw = draws[op]
    return jnp.where(_coin(draw, prob), jnp.clip(adjust(draw[1]), 0.0, 1.0),
                     image)

  if 'brightness' in ops:
    image = maybe('brightness', config.brightness_prob, lambda fraction: (
        image + _between(fraction, -config.brightness, config.brightness)))
  if 'contrast' in ops:
    def scale_contrast(fraction):
      mean = jnp.mean(image, axis=(0, 1), keepdims=True)
      return mean + _between(fraction, *config.contrast_range) * (image - mean)
    image = maybe('contrast', config.contrast_prob, scale_contrast)
  if 'gamma' in ops:
    image = maybe('gamma', config.gamma_prob, lambda fraction: (
        jnp.clip(image, 0.0, 1.0) ** _between(fraction, *config.gamma_range)))
  if 'blur' in ops:
    radius = _radius(config.blur_sigma_range[1])
    image = maybe('blur', config.blur_prob, lambda fraction: _gaussian_smooth(
        image, _between(fraction, *config.blur_sigma_range), radius))
  if 'noise' in ops:
    image = maybe('noise', config.noise_prob, lambda fraction: (
        image + _between(fraction, 0.0, config.noise_std) * jax.random.normal(
            draws['noise_key'], image.shape, image.dtype)))
  return image


# --- examples and batches ----------------------------------------------------

def _check_shapes(image: jax.Array, label_maps: LabelMaps) -> None:
  if image.ndim != 3:
    raise ValueError(f'augment_example takes one (H, W, C) image, got shape '
                     f'{image.shape}; use augment_batch for (N, H, W, C).')
  for labels in label_maps:
    if labels.shape != image.shape[:2]:
      raise ValueError(f'Label map of shape {labels.shape} does not match the '
                       f'image {image.shape}: label maps are (H, W).')
    if not (jnp.issubdtype(labels.dtype, jnp.integer) or labels.dtype == bool
            or jnp.issubdtype(labels.dtype, jnp.floating)):
      raise ValueError(f'Label maps must be class ids, booleans or per-pixel '
                       f'weights, got {labels.dtype}.')


def augment_example(rng: jax.Array, image: jax.Array,
                    label_maps: LabelMaps | list[jax.Array],
                    config: ml_collections.ConfigDict
                    ) -> tuple[jax.Array, LabelMaps]:
  """Augments one example: image (H, W, C) float in [0, 1] and a tuple of
  (H, W) label maps (the mask, a field-of-view mask, a float weight map, ...,
  all read by nearest neighbour),
  all moved by the same geometric transform and returned with their dtypes;
  photometric ops change the image only.

  `config` is the `config.augment` section; it is read at trace time.
  """
  label_maps = tuple(label_maps)
  _check_shapes(image, label_maps)
  ops = enabled_ops(config)
  if not ops:
    return image, label_maps
  draws = _draws(rng)
  geometric = [op for op in ops if op in GEOMETRIC_OPS]
  if geometric and set(geometric) <= set(FLIP_OPS):
    image, label_maps = _flip(draws, config, image, label_maps)
  elif geometric:
    height, width = image.shape[:2]
    grid = sampling_grid(*_sample_transform(draws, config, height, width),
                         height, width)
    image, label_maps = resample(image, label_maps, grid, config.border_mode)
  if any(op in PHOTOMETRIC_OPS for op in ops):
    image = _adjust_intensity(draws, image, config)
  return image, label_maps


def augment_batch(rng: jax.Array, images: jax.Array,
                  label_maps: LabelMaps | list[jax.Array],
                  config: ml_collections.ConfigDict, *,
                  index_offset: int | jax.Array = 0
                  ) -> tuple[jax.Array, LabelMaps]:
  """`augment_example` on each of images (N, H, W, C) and label maps
  (N, H, W), example i with key `jax.random.fold_in(rng, index_offset + i)`.

  Keys follow the example's index in the global batch, not the device it is
  on, so a batch sharded under `jax.jit` is augmented as a whole one is.
  Under `jax.pmap`, pass `index_offset=jax.lax.axis_index(axis) * N` (N the
  per-device batch) and the same `rng` on every device to get the same
  augmentations as under `jax.jit`.
  """
  indices = index_offset + jnp.arange(images.shape[0])
  keys = jax.vmap(jax.random.fold_in, (None, 0))(rng, indices)
  return jax.vmap(functools.partial(augment_example, config=config))(
      keys, images, tuple(label_maps))
