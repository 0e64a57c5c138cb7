"""Predicts masks (or, for a classifier, classes) for a folder of images
with a trained run.

  python -m unetjax.predict --workdir=runs/unet --images=DIR --out=DIR \\
      [--masks=DIR] [--tta] [--overlap=0.5] [--threshold=0.5] [--resize]

The model is the run's best checkpoint (if that is damaged, the intact one
with the best validation score its metrics.jsonl records, said in one line;
its latest if none has a score), built from the run's config.json; the
workdir is only read. Images of any size are predicted by a sliding window
of the training image size (Gaussian-weighted blending of overlapping
windows' logits), or with --resize by resizing them to the training size
and the logits back. With
--masks (matched by file stem) it also scores every image with
`unetjax.metrics`. Writes into --out:
  masks/<stem>.png     binary: 0 / 255; multi-class: class ids
  overlays/<stem>.png  the image with the prediction's contours in red, the
                       ground truth's in green, both in yellow
  metrics.csv          with --masks: one row per image, then 'mean' (over
                       images) and 'all' (pixel counts pooled over images)
  objects/<stem>.png   runs trained on a dataset with instances: the
                       predicted objects (4-connected regions), one id each,
                       16-bit PNG
  object_overlays/<stem>.png  the image with each object in its own colour

A classification run (configs/classify.py) resizes each image to its
training size, as its dataset builder did, and writes instead:
  predictions.csv      one row per image: file, predicted class, the
                       probability of each class (and the true class)
  metrics.csv          when --images holds one folder per class, named as
                       the run's classes: every `classification_metrics`
                       metric (one row each) over all the images
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import csv
import functools
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage
from absl import flags
from PIL import Image

from unetjax import classification_metrics
from unetjax import instances
from unetjax import metrics
from unetjax import outputs
from unetjax import sliding_window
from unetjax import state as state_lib
from unetjax import tasks
from unetjax.data.builders import image_class_folder
from unetjax.data.builders import image_masks
from unetjax.errors import DataError, UserInputError

# Overlay contour colours (RGB).
PREDICTION_COLOUR = (255, 0, 0)
GROUND_TRUTH_COLOUR = (0, 255, 0)
BOTH_COLOUR = (255, 255, 0)
METRICS_FILE = 'metrics.csv'
PREDICTIONS_FILE = 'predictions.csv'


def _resize_channels(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """(H, W, K) float32 -> (size[0], size[1], K), bilinear, per channel."""
  return np.stack([np.asarray(Image.fromarray(values[..., k]).resize(
      (size[1], size[0]), resample=Image.BILINEAR))
                   for k in range(values.shape[-1])], axis=-1)


def predict_image(apply_fn: sliding_window.ApplyFn, image: np.ndarray,
                  window: tuple[int, int], *, overlap: float = 0.5,
                  blend: str = 'gaussian', tta: bool = False, resize: bool = False,
                  batch_size: int = 8) -> np.ndarray:
  """Logits (H, W, K) of a uint8 (H, W, C) image, scaled to [0, 1] as in
  training.

  By `sliding_window.sliding_window_logits`, or with `resize` on the image
  resized (bilinear, as the dataset builders do) to `window` and the logits
  resized back. With `tta` the logits are averaged over the four
  combinations of horizontal and vertical flips (each un-flipped first).
  """
  height, width = image.shape[:2]
  if resize and (height, width) != tuple(window):
    channels = image.shape[-1]
    pil = Image.fromarray(image[..., 0] if channels == 1 else image)
    image = np.asarray(pil.resize((window[1], window[0]), Image.BILINEAR))
    image = image.reshape(tuple(window) + (channels,))
  pixels = np.asarray(state_lib.preprocess(image))
  logits_of = lambda x: sliding_window.sliding_window_logits(
      apply_fn, x, window, overlap, blend, batch_size)
  logits = (sliding_window.mirrored(logits_of, pixels) if tta
            else logits_of(pixels))
  if logits.shape[:2] != (height, width):
    logits = _resize_channels(logits, (height, width))
  return logits


def contours(classes: np.ndarray, n_classes: int, thickness: int = 1) -> np.ndarray:
  """Boolean (H, W): the boundary pixels (`metrics.boundary`) of each
  foreground class's region, widened to `thickness` pixels."""
  edges = np.asarray(_class_boundaries(jnp.asarray(classes), n_classes))
  if thickness > 1:
    edges = scipy.ndimage.binary_dilation(edges, iterations=thickness - 1)
  return edges


@functools.partial(jax.jit, static_argnums=1)
def _class_boundaries(classes: jax.Array, n_classes: int) -> jax.Array:
  regions = classes[None] == jnp.arange(1, n_classes)[:, None, None]
  return metrics.boundary(regions).any(0)


def overlay(image: np.ndarray, prediction: np.ndarray, n_classes: int,
            label: np.ndarray | None = None) -> np.ndarray:
  """RGB uint8 image with prediction contours in PREDICTION_COLOUR, label
  contours in GROUND_TRUTH_COLOUR and their overlap in BOTH_COLOUR."""
  rgb = np.array(np.broadcast_to(image, image.shape[:2] + (3,))
                 if image.shape[-1] == 1 else image[..., :3], np.uint8)
  thickness = max(1, min(image.shape[:2]) // 256)
  predicted = contours(prediction, n_classes, thickness)
  true = (contours(label, n_classes, thickness) if label is not None
          else np.zeros_like(predicted))
  rgb[true & ~predicted] = GROUND_TRUTH_COLOUR
  rgb[predicted & ~true] = PREDICTION_COLOUR
  rgb[predicted & true] = BOTH_COLOUR
  return rgb


def mask_png(prediction: np.ndarray, n_classes: int) -> np.ndarray:
  """uint8 mask to save: 0 / 255 for binary, class ids otherwise."""
  prediction = np.asarray(prediction, np.uint8)
  return prediction * 255 if n_classes == 2 else prediction


def _image_files(folder: str, flag: str) -> list[str]:
  if not os.path.isdir(folder):
    raise DataError(f'--{flag}={folder}: no such folder.')
  files = image_masks.list_images(folder)
  stems = [image_masks.stem(f) for f in files]
  duplicates = sorted({s for s in stems if stems.count(s) > 1})
  if duplicates:
    raise DataError(f'--{flag}={folder} has several images named '
                    f'{duplicates[0]}.*; file stems name the outputs, so keep one.')
  return files


def read_label(path: str, n_classes: int, threshold: int | None,
               shape: tuple[int, int],
               colors: Sequence[Sequence[int]] = ()) -> np.ndarray:
  """Class ids (H, W) of a mask file: binary masks as the dataset builders
  read them (`image_masks.binary_mask`), colour masks by the dataset's
  `colors` table, other multi-class masks hold class ids."""
  values = image_masks.read_mask(path, colors=bool(colors))
  if colors and threshold is None:
    label = image_masks.color_classes(values, path, colors)
  elif n_classes == 2:
    try:
      label = image_masks.binary_mask(values, path, threshold)
    except DataError as e:
      raise DataError(f'{e} (--mask_threshold)') from e
  else:
    label = values[..., 0] if values.ndim == 3 else values
    if label.max() >= n_classes:
      raise DataError(f'Mask {path} holds class id {int(label.max())}, but the '
                      f'model has {n_classes} classes (0..{n_classes - 1}).')
  if label.shape != shape:
    raise DataError(f'Mask {path} is {label.shape[1]}x{label.shape[0]} but its '
                    f'image is {shape[1]}x{shape[0]}.')
  return label.astype(np.int32)


def image_metrics(logits: np.ndarray, label: np.ndarray, *, threshold: float,
                  boundary_tolerance: float) -> metrics.Stats:
  """`metrics.batch_statistics` of one image (compiled per image shape)."""
  return _statistics(jnp.asarray(logits)[None], jnp.asarray(label)[None],
                     threshold=threshold, boundary_tolerance=boundary_tolerance)


@functools.partial(jax.jit, static_argnames=('boundary_tolerance',))
def _statistics(logits, labels, threshold, boundary_tolerance):
  return metrics.batch_statistics(logits, labels, threshold=threshold,
                                  boundary_tolerance=boundary_tolerance)


def _columns(names: Sequence[str]) -> list[str]:
  """CSV metric columns in `metrics.METRICS` order (per-image means aside:
  each row is one image), then per-class ones (multi-class)."""
  order = [n for n in metrics.METRICS if not n.endswith('_per_image')]
  main = [n for n in order if n in names]
  per_class = [n for n in names if '/' in n and n.split('/')[0] in order]
  # By metric, then (a stable sort) in class order.
  return main + sorted(per_class, key=lambda n: order.index(n.split('/')[0]))


def write_metrics_csv(path: str, rows: dict[str, dict[str, float]],
                      pooled: dict[str, float]) -> dict[str, float]:
  """Writes one row per image, their 'mean' (NaN-skipping) and the 'all' row;
  returns the mean row."""
  columns = _columns(next(iter(rows.values())))
  with np.errstate(all='ignore'):
    mean = {}
    for c in columns:
      values = np.array([row[c] for row in rows.values()], np.float64)
      mean[c] = float(np.nanmean(values)) if np.isfinite(values).any() else np.nan
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['image'] + columns)
    for name, row in list(rows.items()) + [('mean', mean), ('all', pooled)]:
      writer.writerow([name] + [f'{row[c]:.8g}' for c in columns])
  return mean


def check_arguments(workdir: str, images_dir: str, out_dir: str,
                    masks_dir: str | None, *, overlap: float,
                    threshold: float | None, batch_size: int) -> None:
  """UserInputError for values no prediction can use, a workdir without a
  run, and an --out folder that would overwrite the run or the inputs."""
  if not 0 <= overlap < 1:
    raise UserInputError(f'--overlap={overlap} must be in [0, 1).')
  if threshold is not None and not 0 < threshold < 1:
    raise UserInputError(f'--threshold={threshold} must be in (0, 1).')
  if batch_size < 1:
    raise UserInputError(f'--batch_size={batch_size} must be at least 1.')
  state_lib.check_workdir(workdir)
  outputs.check_folder('out', out_dir)
  out_real = os.path.realpath(out_dir)
  for kept in ('checkpoints', 'best'):
    folder = os.path.realpath(os.path.join(workdir, kept))
    if out_real == folder or out_real.startswith(folder + os.sep):
      raise UserInputError(f'--out={out_dir} is inside the run\'s {kept}/ '
                           'folder; write predictions elsewhere.')
  outputs.check_separate('out', out_dir, {'images': images_dir,
                                          'masks': masks_dir})


def predict_folder(workdir: str, images_dir: str, out_dir: str,
                   masks_dir: str | None = None, *, tta: bool = False,
                   overlap: float = 0.5, threshold: float | None = None,
                   resize: bool = False, blend: str = 'gaussian',
                   mask_suffix: str = '', mask_threshold: int | None = None,
                   batch_size: int = 8) -> dict[str, Any]:
  """Predicts every image of `images_dir` into `out_dir` (see the module
  docstring). Returns {'images': count, 'checkpoint', 'step'} and, with
  `masks_dir`, 'mean' (the CSV's mean row)."""
  check_arguments(workdir, images_dir, out_dir, masks_dir, overlap=overlap,
                  threshold=threshold, batch_size=batch_size)
  run = state_lib.load_run(workdir)
  if run.task == tasks.CLASSIFICATION:
    if masks_dir is not None:
      raise UserInputError(
          f'--masks: {workdir} is an image classifier, which predicts no '
          'masks; to score it, sort the images of --images into one folder '
          f'per class ({", ".join(run.class_names)}).')
    return classify_folder(run, images_dir, out_dir, tta=tta,
                           batch_size=batch_size)
  image_files = _image_files(images_dir, 'images')
  if masks_dir is not None:
    _image_files(masks_dir, 'masks')
    mask_files = {p.key: p.mask for p in image_masks.pairs_in_folders(
        images_dir, masks_dir, mask_suffix)}
  n_classes = max(2, len(run.class_names))
  threshold = run.config.metrics.threshold if threshold is None else threshold
  if mask_threshold is None:
    mask_threshold = run.mask_threshold
  stems = [image_masks.stem(path) for path in image_files]
  subfolders = ('masks', 'overlays') + (OBJECT_FOLDERS if run.objects else ())
  claim = outputs.claim(out_dir, [os.path.join(sub, f'{name}.png')
                                  for name in stems for sub in subfolders] +
                        ([METRICS_FILE] if masks_dir is not None else []))
  for sub in subfolders:
    os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
  folder = run.config.dataset.get('folder', {})  # image_folder's reading options
  window = tuple(folder.get('intensity_window', ())) or None
  colors = tuple(folder.get('mask_colors', ()))
  rows, total = {}, None
  for path in image_files:
    name = image_masks.stem(path)
    image = image_masks.read_image(path, 'RGB' if run.channels == 3 else 'L',
                                   window)
    image = image.reshape(image.shape[:2] + (run.channels,))
    logits = predict_image(run.apply_fn, image, run.window, overlap=overlap,
                           blend=blend, tta=tta, resize=resize,
                           batch_size=batch_size)
    prediction = np.asarray(metrics.predict_classes(logits[None], threshold)[0])
    label = None
    if masks_dir is not None:
      label = read_label(mask_files[name], n_classes, mask_threshold,
                         image.shape[:2], colors)
      stats = image_metrics(logits, label, threshold=threshold,
                            boundary_tolerance=run.config.metrics.boundary_tolerance)
      total = metrics.merge(total, stats)
      rows[name] = metrics.summarize(metrics.merge(None, stats), run.class_names)
    claim.save(os.path.join('masks', f'{name}.png'),
               Image.fromarray(mask_png(prediction, n_classes)).save)
    claim.save(os.path.join('overlays', f'{name}.png'), Image.fromarray(
        overlay(image, prediction, n_classes, label)).save)
    if run.objects:
      write_objects(claim, name, image, prediction, run.objects)
  result = {'images': len(image_files), 'checkpoint': run.checkpoint,
            'step': run.step}
  if masks_dir is not None:
    pooled = metrics.summarize(total, run.class_names)
    claim.save(METRICS_FILE, lambda path: result.update(
        mean=write_metrics_csv(path, rows, pooled)))
  return result


# A run trained on a dataset with instances also writes, per image, the
# predicted objects (uint16 ids, 16-bit PNG) and the image with one colour
# per object.
OBJECT_FOLDERS = ('objects', 'object_overlays')


def object_colours(n: int) -> np.ndarray:
  """(n + 1, 3) uint8 colours: black for the background, then n distinct
  ones (golden-ratio hues, full saturation)."""
  import colorsys  # pylint: disable=import-outside-toplevel
  hues = (np.arange(n) * 0.618033988749895) % 1.0
  return np.array([(0, 0, 0)] + [
      tuple(int(255 * c) for c in colorsys.hsv_to_rgb(h, 0.85, 1.0))
      for h in hues], np.uint8)


def write_objects(claim: outputs.Claim, name: str, image: np.ndarray,
                  prediction: np.ndarray, rule: str = 'foreground') -> np.ndarray:
  """Writes objects/<name>.png (the objects read from the predicted classes
  by `rule`, `instances.objects_in`) and object_overlays/<name>.png (the
  image, each object tinted by its colour); returns the objects."""
  objects = instances.objects_in(np.asarray(prediction), rule)
  if objects.max() > np.iinfo(np.uint16).max:
    raise DataError(f'{name}: {objects.max()} objects do not fit a 16-bit PNG.')
  claim.save(os.path.join(OBJECT_FOLDERS[0], f'{name}.png'),
             Image.fromarray(objects.astype(np.uint16)).save)
  rgb = np.array(np.broadcast_to(image, image.shape[:2] + (3,))
                 if image.shape[-1] == 1 else image[..., :3], np.float32)
  colours = object_colours(int(objects.max()))[objects].astype(np.float32)
  tinted = np.where(objects[..., None] > 0, 0.5 * rgb + 0.5 * colours, rgb)
  claim.save(os.path.join(OBJECT_FOLDERS[1], f'{name}.png'),
             Image.fromarray(tinted.round().astype(np.uint8)).save)
  return objects


def labelled_images(images_dir: str, class_names: Sequence[str]
                    ) -> list[tuple[str, int | None]]:
  """(path relative to `images_dir`, class id or None) of each image: of
  its class folders, named as `class_names`, when it has folders, else of
  the images in it (unlabelled)."""
  if not os.path.isdir(images_dir):
    raise DataError(f'--images={images_dir}: no such folder.')
  folders = sorted(e.name for e in os.scandir(images_dir)
                   if e.is_dir() and not e.name.startswith('.'))
  if not folders:
    return [(os.path.basename(path), None)
            for path in image_masks.list_images(images_dir)]
  unknown = sorted(set(folders) - set(class_names))
  if unknown:
    raise DataError(
        f'--images={images_dir} holds the folders {", ".join(unknown)}, which '
        f'are not classes of the run ({", ".join(class_names)}): name each '
        'folder after the class of its images, or pass a folder of images.')
  found = [(os.path.join(name, file), class_names.index(name))
           for name in folders for file in image_class_folder.image_files(
               os.path.join(images_dir, name))]
  if not found:
    raise DataError(f'No image files ({", ".join(image_masks.IMAGE_EXTENSIONS)}) '
                    f'in the class folders of {images_dir}.')
  return found


def classify_batch(apply_fn: sliding_window.ApplyFn, images: np.ndarray,
                   tta: bool = False) -> np.ndarray:
  """float32 logits (N, K) of uint8 images (N, H, W, C), averaged over the
  four flips with `tta`."""
  pixels = np.asarray(state_lib.preprocess(images))
  apply = lambda x: np.asarray(apply_fn(x), np.float32)
  logits = (sliding_window.mirrored(apply, pixels, first_axis=1, per_pixel=False)
            if tta else apply(pixels))
  return np.asarray(logits, np.float32)


def classify_folder(run: state_lib.TrainedRun, images_dir: str, out_dir: str, *,
                    tta: bool = False, batch_size: int = 8) -> dict[str, Any]:
  """Writes predictions.csv (and, for class folders, metrics.csv) for the
  images of `images_dir` (see the module docstring). Returns {'images',
  'checkpoint', 'step'} and, for class folders, 'metrics'."""
  entries = labelled_images(images_dir, run.class_names)
  labelled = entries[0][1] is not None
  claim = outputs.claim(out_dir, [PREDICTIONS_FILE] +
                        ([METRICS_FILE] if labelled else []))
  folder = run.config.dataset.get('folder', {})  # image_class_folder's options
  window = tuple(folder.get('intensity_window', ()))
  rows, total = [], None
  for start in range(0, len(entries), batch_size):
    chunk = entries[start:start + batch_size]
    images = np.zeros((batch_size,) + run.window + (run.channels,), np.uint8)
    for i, (name, _) in enumerate(chunk):
      images[i] = image_class_folder.read_image(
          os.path.join(images_dir, name), run.channels, run.window[0],
          window).reshape(images.shape[1:])
    # A full batch every time: one compiled shape.
    logits = classify_batch(run.apply_fn, images, tta)[:len(chunk)]
    probabilities = np.asarray(jax.nn.softmax(logits, axis=-1))
    for (name, label), p in zip(chunk, probabilities):
      rows.append([name, run.class_names[int(np.argmax(p))]]
                  + [f'{v:.6g}' for v in p]
                  + ([run.class_names[label]] if labelled else []))
    if labelled:
      total = metrics.merge(total, classification_metrics.batch_statistics(
          logits, np.array([label for _, label in chunk])))
  header = (['file', 'predicted_class']
            + [f'probability/{n}' for n in run.class_names]
            + (['true_class'] if labelled else []))
  claim.save(PREDICTIONS_FILE, lambda path: _write_csv(path, [header] + rows))
  result = {'images': len(entries), 'checkpoint': run.checkpoint, 'step': run.step}
  if labelled:
    result['metrics'] = classification_metrics.summarize(total, run.class_names)
    claim.save(METRICS_FILE, lambda path: _write_csv(
        path, [['metric', 'value']] + [[k, f'{v:.8g}'] for k, v in
                                       result['metrics'].items()]))
  return result


def _write_csv(path: str, rows: Sequence[Sequence[Any]]) -> None:
  with open(path, 'w', newline='') as f:
    csv.writer(f).writerows(rows)


FLAGS = flags.FLAGS


def define_flags() -> None:
  """The command's flags, defined when it runs (not on import, so this module
  can be imported beside unetjax.main, whose --workdir it shares)."""
  flags.DEFINE_string('workdir', None, 'Workdir of a training run (read only).')
  flags.DEFINE_string('images', None, 'Folder of images to predict (PNG, JPEG, '
                      'TIFF, BMP, GIF), of any size; for a classifier, it may '
                      'hold one folder per class instead, to be scored.')
  flags.DEFINE_string('masks', None, 'Optional folder of ground-truth masks, '
                      'matched to images by file stem: adds metrics.csv and '
                      'ground-truth contours.')
  flags.DEFINE_string('out', None, 'Folder for masks/, overlays/ and metrics.csv.')
  flags.DEFINE_bool('tta', False, 'Average the logits over horizontal and '
                    'vertical flips (4 passes).')
  flags.DEFINE_float('overlap', 0.5, 'Overlap of neighbouring windows, a '
                     'fraction of the window in [0, 1).')
  flags.DEFINE_float('threshold', None, 'Binary models: foreground where the '
                     'sigmoid probability exceeds it; default: the run\'s '
                     'config.metrics.threshold.')
  flags.DEFINE_bool('resize', False, 'Resize each image to the training size '
                    'and the logits back, instead of sliding a window.')
  flags.DEFINE_enum('blend', 'gaussian', list(sliding_window.BLENDS),
                    'Weights for blending overlapping windows.')
  flags.DEFINE_string('mask_suffix', '', 'Mask file stem = image stem + this.')
  flags.DEFINE_integer('mask_threshold', None, 'Binary masks: foreground where '
                       'the grey value exceeds it (lossy masks); default: the '
                       'dataset builder\'s, else masks must be exactly 0 / max.')
  flags.DEFINE_integer('batch_size', 8, 'Windows per forward pass.')
  flags.mark_flags_as_required(['workdir', 'images', 'out'])


def run():
  result = predict_folder(
      FLAGS.workdir, FLAGS.images, FLAGS.out, FLAGS.masks, tta=FLAGS.tta,
      overlap=FLAGS.overlap, threshold=FLAGS.threshold, resize=FLAGS.resize,
      blend=FLAGS.blend, mask_suffix=FLAGS.mask_suffix,
      mask_threshold=FLAGS.mask_threshold, batch_size=FLAGS.batch_size)
  print(f'Predicted {result["images"]} images with the {result["checkpoint"]} '
        f'checkpoint (step {result["step"]}) of {FLAGS.workdir} into {FLAGS.out}.')
  if 'metrics' in result:
    scores = result['metrics']
    print('Over all images: ' + ', '.join(
        f'{k} {scores[k]:.4f}' for k in metrics.main_metrics(scores))
          + f' ({os.path.join(FLAGS.out, METRICS_FILE)}).')
  if 'mean' in result:
    mean = result['mean']
    print('Mean over images: ' + ', '.join(
        f'{k} {mean[k]:.4f}' for k in ('dice', 'iou', 'boundary_f1') if k in mean)
          + f' (per image: {os.path.join(FLAGS.out, METRICS_FILE)}).')


def main():
  define_flags()
  command_line.main(run, storage_path=lambda: FLAGS.out)


if __name__ == '__main__':
  main()
