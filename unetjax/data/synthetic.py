"""Procedural microscopy-like images of cells with nuclei, and their masks.

Each example is a deterministic function of a numpy Generator, so a dataset
built from per-example seeds is reproducible bit for bit. The recipe mixes
what makes real segmentation hard: touching and overlapping irregular
shapes, low contrast against a textured and unevenly lit background, bright
rims, blur, noise and a smooth elastic warp of image and mask together.
"""

import numpy as np
from scipy import ndimage

BACKGROUND, CELL, NUCLEUS = 0, 1, 2


def _star_shape(height: int, width: int, center: np.ndarray, radius: float,
                rng: np.random.Generator) -> np.ndarray:
  """Boolean mask of a rotated ellipse whose radius wobbles with the angle.

  Computed on the square around `center` that can hold it (the wobble
  reaches at most 1.36 `radius`), not the whole image: same mask, a fraction
  of the time.
  """
  reach = 1.4 * radius + 1
  top = max(0, int(np.floor(center[0] - reach)))
  left = max(0, int(np.floor(center[1] - reach)))
  bottom = min(height, int(np.ceil(center[0] + reach)) + 1)
  right = min(width, int(np.ceil(center[1] + reach)) + 1)
  yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
  dy, dx = yy - center[0], xx - center[1]
  rotation = rng.uniform(0, np.pi)
  cos, sin = np.cos(rotation), np.sin(rotation)
  u, v = cos * dx + sin * dy, -sin * dx + cos * dy
  v = v / rng.uniform(0.55, 1.0)  # elongation
  angle = np.arctan2(v, u)
  wobble = np.ones_like(angle)
  for k in range(2, 6):
    wobble += rng.uniform(0, 0.09) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
  mask = np.zeros((height, width), bool)
  mask[top:bottom, left:right] = np.hypot(u, v) < radius * wobble
  return mask


def _smooth_noise(shape: tuple[int, int], sigma: float,
                  rng: np.random.Generator) -> np.ndarray:
  """Zero-mean, unit-std Gaussian-filtered white noise."""
  noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
  return (noise - noise.mean()) / (noise.std() + 1e-8)


def _elastic_warp(image: np.ndarray, label_maps: tuple[np.ndarray, ...],
                  alpha: float, sigma: float, rng: np.random.Generator):
  """Warps image (linear) and label maps (nearest) by one smooth
  displacement field (Simard et al. 2003)."""
  height, width = label_maps[0].shape
  dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (height, width)), sigma) * alpha
  dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (height, width)), sigma) * alpha
  yy, xx = np.mgrid[:height, :width]
  coords = np.stack([yy + dy, xx + dx])
  warped = np.stack([
      ndimage.map_coordinates(image[..., c], coords, order=1, mode='reflect')
      for c in range(image.shape[-1])], axis=-1)
  return warped, tuple(ndimage.map_coordinates(m, coords, order=0, mode='reflect')
                       for m in label_maps)


def _nuclei(size: int, cell: np.ndarray, center: np.ndarray, radius: float,
            count: int, rng: np.random.Generator) -> np.ndarray:
  """Boolean mask of `count` nuclei inside `cell`: one near its centre, or
  two on either side of it (a binucleate cell), smaller."""
  nuclei = np.zeros_like(cell)
  if count == 1:
    nucleus_center = center + rng.uniform(-0.2, 0.2, 2) * radius
    return cell & _star_shape(size, size, nucleus_center,
                              radius * rng.uniform(0.3, 0.5), rng)
  angle = rng.uniform(0, np.pi)
  offset = np.array([np.sin(angle), np.cos(angle)]) * radius * rng.uniform(0.45, 0.6)
  for side in range(count):
    nucleus_center = center + offset * (1 if side % 2 == 0 else -1) * (1 + side // 2)
    nuclei |= cell & _star_shape(size, size, nucleus_center,
                                 radius * rng.uniform(0.28, 0.36), rng)
  return nuclei


def render_cells(rng: np.random.Generator, image_size: int, n_channels: int = 1,
                 with_nuclei: bool = False, nuclei_per_cell: int = 1,
                 with_instances: bool = False):
  """Returns (image uint8 (S, S, n_channels), labels uint8 (S, S)), and with
  `with_instances` the cells' ids uint16 (S, S) as a third array: 0 for
  background, 1..n for the visible part of each cell, in drawing order.

  Labels are BACKGROUND/CELL, or BACKGROUND/CELL/NUCLEUS with `with_nuclei`
  (nuclei are drawn in both cases, so the images look alike). Every cell
  has `nuclei_per_cell` nuclei (0, 1 or 2).
  """
  size = image_size
  labels = np.zeros((size, size), np.uint8)
  ids = np.zeros((size, size), np.uint16)
  shading = np.zeros((size, size), np.float32)
  n_cells = rng.integers(2, 9)
  for index in range(n_cells):
    center = rng.uniform(0.05, 0.95, 2) * size
    radius = rng.uniform(0.07, 0.17) * size
    cell = _star_shape(size, size, center, radius, rng)
    nucleus = _nuclei(size, cell, center, radius, nuclei_per_cell, rng)
    rim = cell & ~ndimage.binary_erosion(cell, iterations=max(1, size // 64))
    labels[cell] = CELL  # later cells occlude earlier ones
    ids[cell] = index + 1
    labels[nucleus] = NUCLEUS
    shading[cell] = rng.uniform(0.8, 1.2)
    shading[rim] += 0.35
    shading[nucleus] = rng.uniform(-0.6, -0.2)

  contrast = rng.uniform(0.12, 0.3) * rng.choice([-1.0, 1.0])
  texture = 0.3 * _smooth_noise((size, size), 1.0, rng)
  background = (0.5 + 0.08 * _smooth_noise((size, size), size / 8, rng)
                + rng.uniform(-0.1, 0.1) * np.linspace(-1, 1, size)[None, :])
  intensity = background + contrast * (shading + texture * (labels > 0))
  tint = rng.uniform(0.6, 1.0, n_channels) if n_channels > 1 else np.ones(1)
  image = intensity[..., None] * tint

  image, (labels, ids) = _elastic_warp(image, (labels, ids), alpha=size / 16,
                                       sigma=size / 16, rng=rng)
  image = ndimage.gaussian_filter(image, (rng.uniform(0.4, 1.1),) * 2 + (0,))
  image = image + rng.normal(0, rng.uniform(0.02, 0.06), image.shape)
  image = np.clip(image, 0, 1) * 255
  if not with_nuclei:
    labels = np.minimum(labels, CELL)
  image = image.round().astype(np.uint8)
  if with_instances:  # ids 1..n of the cells still visible after occlusion
    lookup = np.zeros(int(ids.max()) + 1, np.uint16)
    visible = np.unique(ids[ids > 0])
    lookup[visible] = np.arange(1, len(visible) + 1)
    return image, labels.astype(np.uint8), lookup[ids]
  return image, labels.astype(np.uint8)
