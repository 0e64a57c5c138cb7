"""Whole images of any size through a model trained on fixed-size windows.

An image is covered by overlapping windows of the model's input size; the
windows' logits are averaged with weights highest at each window's centre
(Gaussian, as nnU-Net), so predictions near a window's border, which saw
little context, count least. Used by training's whole-image evaluation
(`unetjax.train`) and by `unetjax.predict`.
"""

from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from unetjax.errors import UserInputError

# (N, h, w, C) float32 images in [0, 1] -> (N, h, w, K) logits.
ApplyFn = Callable[[np.ndarray], Any]
BLENDS = ('gaussian', 'linear')
# Test-time mirroring: axes of (H, W) to flip; none, vertical, horizontal, both.
FLIPS = ((), (0,), (1,), (0, 1))


def window_weights(window: tuple[int, int], blend: str = 'gaussian') -> np.ndarray:
  """(h, w) positive weights of a window's pixels, highest in its centre:
  'gaussian' (std = side / 8, as nnU-Net) or 'linear' (a ramp to the edges)."""
  axes = []
  for size in window:
    distance = np.arange(size) - (size - 1) / 2
    if blend == 'gaussian':
      axes.append(np.exp(-0.5 * (distance / (size / 8)) ** 2))
    elif blend == 'linear':
      axes.append(1 - np.abs(distance) / (size / 2))
    else:
      raise UserInputError(f'Unknown blend {blend!r}; use '
                           f'{" or ".join(BLENDS)}.')
  weights = np.outer(*axes)
  # Corner weights of a Gaussian underflow; every pixel must count a little.
  return np.maximum(weights / weights.max(), 1e-3).astype(np.float32)


def mirrored(logits_of: Callable[[Any], Any], images: Any, *,
             first_axis: int = 0, per_pixel: bool = True) -> Any:
  """Mean of `logits_of(images)` over FLIPS of the image axes (`first_axis`
  and the next), each output flipped back when its logits are `per_pixel`:
  nnU-Net's test-time mirroring, for models trained with both flips. numpy
  arrays on the host, jax arrays inside a compiled step."""
  on_host = isinstance(images, np.ndarray)
  flip = np.flip if on_host else jnp.flip
  total = 0.0
  for axes in FLIPS:
    axes = tuple(first_axis + a for a in axes)
    flipped = flip(images, axes) if axes else images
    logits = logits_of(np.ascontiguousarray(flipped) if on_host else flipped)
    if on_host:
      logits = np.asarray(logits, np.float32)
    total = total + (flip(logits, axes) if axes and per_pixel else logits)
  return total / len(FLIPS)


def window_starts(size: int, window: int, overlap: float) -> list[int]:
  """Starts of windows covering [0, size) with at least `overlap` (a fraction
  of the window) between neighbours; the last one ends at the border."""
  if size <= window:
    return [0]
  stride = max(1, int(window * (1 - overlap)))
  starts = list(range(0, size - window + 1, stride))
  if starts[-1] != size - window:
    starts.append(size - window)
  return starts


def _batch_shape(n_windows: int, batch_size: int, multiple: int) -> int:
  """Windows per forward pass: the next power of two (so few batch shapes
  compile), at most `batch_size`, rounded up to a multiple of `multiple`
  (the devices a batch is split over)."""
  size = min(batch_size, 1 << (n_windows - 1).bit_length())
  return -(-size // multiple) * multiple


def sliding_window_logits(apply_fn: ApplyFn, image: np.ndarray,
                          window: tuple[int, int], overlap: float = 0.5,
                          blend: str = 'gaussian', batch_size: int = 8,
                          batch_multiple: int = 1) -> np.ndarray:
  """Logits (H, W, K) of an (H, W, C) image in windows of the model's size.

  Windows overlap by `overlap` and their logits are averaged with
  `window_weights`; an image smaller than the window is reflect-padded
  around to its size (and the logits cropped back), and one that fits is one
  window, unblended. `apply_fn` gets up to `batch_size` windows at a time,
  padded to a power of two and to a multiple of `batch_multiple`.
  """
  height, width = image.shape[:2]
  pad_y, pad_x = max(0, window[0] - height), max(0, window[1] - width)
  top, left = pad_y // 2, pad_x // 2
  if pad_y or pad_x:
    # 'symmetric' (edge pixels repeated) also pads images narrower than half
    # the window, which 'reflect' cannot.
    mode = 'reflect' if pad_y < height and pad_x < width else 'symmetric'
    image = np.pad(image, ((top, pad_y - top), (left, pad_x - left), (0, 0)),
                   mode=mode)
  corners = [(y, x) for y in window_starts(image.shape[0], window[0], overlap)
             for x in window_starts(image.shape[1], window[1], overlap)]
  weights = (window_weights(window, blend)[..., None] if len(corners) > 1
             else np.ones(window + (1,), np.float32))
  total = weight_sum = None
  for start in range(0, len(corners), batch_size):
    chunk = corners[start:start + batch_size]
    crops = np.zeros((_batch_shape(len(chunk), batch_size, batch_multiple),)
                     + window + image.shape[2:], image.dtype)
    for i, (y, x) in enumerate(chunk):
      crops[i] = image[y:y + window[0], x:x + window[1]]
    logits = np.asarray(apply_fn(crops), np.float32)
    if total is None:
      total = np.zeros(image.shape[:2] + logits.shape[-1:], np.float32)
      weight_sum = np.zeros(image.shape[:2] + (1,), np.float32)
    for (y, x), window_logits in zip(chunk, logits):
      total[y:y + window[0], x:x + window[1]] += weights * window_logits
      weight_sum[y:y + window[0], x:x + window[1]] += weights
  if len(corners) > 1:
    total /= weight_sum
  return total[top:top + height, left:left + width]
