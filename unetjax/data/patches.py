"""Random training patches from images at their own resolution (as nnU-Net).

Each training example is a crop of `size` from one image. A share of the
crops (`foreground_share`, nnU-Net's one third by default) is centred on a
foreground pixel drawn uniformly, so rare structures are seen often; the
others are centred on a pixel drawn uniformly from the region of interest
(the whole image without one). Images smaller than the patch are padded
with zeros, and the padding is outside the patch's 'roi', so it is never
learned from. Every patch carries 'roi': the pixels the loss counts.

The randomness is a `np.random.Generator` given per example, which the
pipeline seeds from (seed, position in the training stream): a resumed run
draws the same patches.
"""

import dataclasses

import numpy as np

from unetjax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PatchSampling:
  size: tuple[int, int]  # (height, width)
  foreground_share: float = 1 / 3  # share of patches centred on foreground
  pad: bool = True  # pad images smaller than the patch (else an error)


# Per-pixel maps that instance datasets add, cropped with the image.
PIXEL_MAPS = ('instances', 'weight')


def patch_shape(patch_size) -> tuple[int, int] | None:
  """config.dataset.patch_size (0, a side, or (height, width), as checked by
  `unetjax.configuration`) -> (h, w), or None for whole images."""
  sides = (tuple(patch_size) if isinstance(patch_size, (tuple, list))
           else (patch_size, patch_size))
  return None if sides == (0, 0) else sides


def _pad_to(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Zero-pads the first two axes of `array` around to at least `size`."""
  pad_y, pad_x = (max(0, s - n) for s, n in zip(size, array.shape[:2]))
  if not (pad_y or pad_x):
    return array
  widths = [(pad_y // 2, pad_y - pad_y // 2), (pad_x // 2, pad_x - pad_x // 2)]
  return np.pad(array, widths + [(0, 0)] * (array.ndim - 2))


def _centre(candidates: np.ndarray, width: int,
            rng: np.random.Generator) -> tuple[int, int] | None:
  """A (y, x) drawn uniformly from the set pixels of a flat boolean map."""
  indices = np.flatnonzero(candidates)
  if not indices.size:
    return None
  return divmod(int(indices[rng.integers(indices.size)]), width)


def sample_patch(example: dict[str, np.ndarray], rng: np.random.Generator,
                 sampling: PatchSampling) -> dict[str, np.ndarray]:
  """A random `sampling.size` crop of `example`'s 'image', 'mask', 'roi'
  (all pixels if it has none) and whichever per-pixel maps of instance data
  it has ('instances', 'weight'); the crop's 'roi' leaves out padding."""
  image, mask = example['image'], example['mask']
  height, width = mask.shape
  if not sampling.pad and (height < sampling.size[0] or width < sampling.size[1]):
    raise ConfigError(
        f'An image of {width}x{height} is smaller than '
        f'config.dataset.patch_size={sampling.size}; set '
        'config.dataset.pad_patches=True or a smaller patch.')
  roi = example.get('roi')
  roi = np.ones_like(mask) if roi is None else (roi > 0).astype(mask.dtype)
  maps = {'image': image, 'mask': mask, 'roi': roi,
          **{k: example[k] for k in PIXEL_MAPS if k in example}}
  maps = {k: _pad_to(a, sampling.size) for k, a in maps.items()}
  mask, roi = maps['mask'], maps['roi']
  padded_height, padded_width = mask.shape
  centre = None
  if rng.random() < sampling.foreground_share:
    centre = _centre(((mask > 0) & (roi > 0)).ravel(), padded_width, rng)
  if centre is None:
    centre = _centre(roi.ravel() > 0, padded_width, rng)
  if centre is None:  # an empty region of interest: anywhere
    centre = (int(rng.integers(padded_height)), int(rng.integers(padded_width)))
  top = int(np.clip(centre[0] - sampling.size[0] // 2, 0,
                    padded_height - sampling.size[0]))
  left = int(np.clip(centre[1] - sampling.size[1] // 2, 0,
                     padded_width - sampling.size[1]))
  window = (slice(top, top + sampling.size[0]), slice(left, left + sampling.size[1]))
  return {k: a[window] for k, a in maps.items()}
