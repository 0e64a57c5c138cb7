"""Image classification as a task of the training loop: the synthetic
classification data, training and evaluation of a ResNet, its metrics
against scikit-learn, prediction, and the checks that keep the tasks apart."""

import csv
import json
import os
import warnings

import jax
import numpy as np
import pytest
from PIL import Image
from sklearn import metrics as sk

from configs import classify
from configs import default
from unetjax import logs, losses, metrics, models, predict, tasks, train
from unetjax import state as state_lib
from unetjax import workdir as workdir_lib
from unetjax.data import pipeline, synthetic
from unetjax.data.builders import synthetic_cells
from unetjax.errors import ConfigError, DataError, UserInputError


@pytest.fixture(scope='module')
def data_dir(tfds_dir):
  """The session's TFDS dir, with synthetic_cells/classify prepared too."""
  config = classify.get_config()
  config.dataset.data_dir = tfds_dir
  pipeline.prepare(config.dataset)
  return tfds_dir


def small_config(data_dir):
  config = classify.get_config()
  config.dataset.data_dir = data_dir
  config.model.base_filters = 8
  config.batch_size = 16
  config.eval_batch_size = 64
  config.num_train_steps = 12
  config.log_every_steps = 6
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 6
  config.progress_bar = False
  return config


@pytest.fixture(scope='module')
def trained(data_dir, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('classify') / 'run')
  config = small_config(data_dir)
  return config, workdir, train.train_and_evaluate(config, workdir)


def test_the_task_registries_name_the_same_tasks():
  assert set(models.TASKS) == set(tasks.TARGETS) == set(metrics.HEADLINE)
  for task in models.TASKS:
    assert task in metrics.METRICS['loss'].tasks
    assert all(name in metrics.METRICS and task in metrics.METRICS[name].tasks
               for name in metrics.HEADLINE[task])


def test_synthetic_classification_data_is_balanced_and_labelled_per_image(data_dir):
  config = classify.get_config().dataset
  config.data_dir = data_dir
  info = pipeline.describe(config)
  assert info.task == 'classification'
  assert info.class_names == synthetic_cells.CELL_CLASSES
  assert info.image_shape == (64, 64, 1)
  batch = next(pipeline.eval_batches(config, 'test', 256))
  assert 'mask' not in batch and batch['label'].shape == (256,)
  counts = np.bincount(batch['label'][batch['valid']], minlength=3)
  assert counts.max() - counts.min() <= 1
  # The label is the nuclei per cell the image was drawn with.
  index = 7
  image, _ = synthetic.render_cells(
      np.random.default_rng(synthetic_cells._SPLIT_SEED_OFFSETS['test'] + index),
      64, nuclei_per_cell=index % 3)
  examples = {int(label): im for im, label in zip(batch['image'], batch['label'])
              if np.array_equal(im, image)}
  assert list(examples) == [index % 3]


def test_nuclei_per_cell_draws_that_many_nuclei_per_cell():
  from scipy import ndimage
  for count in (0, 1, 2):
    _, labels = synthetic.render_cells(np.random.default_rng(3), 128,
                                       with_nuclei=True, nuclei_per_cell=count)
    nuclei = ndimage.label(labels == synthetic.NUCLEUS)[1]
    cells = ndimage.label(labels > 0)[1]  # touching cells merge
    if count == 0:
      assert nuclei == 0
    else:  # occlusion and merging make it approximate
      assert nuclei >= count * cells * 0.5


@pytest.mark.slow
def test_training_reports_metrics_equal_to_sklearn_on_the_best_checkpoint(trained):
  config, workdir, final = trained
  records = logs.read_metrics(workdir)
  evals = [r for r in records if r['event'] == 'eval']
  assert [r['step'] for r in evals] == [6, 12]
  for name in ('accuracy', 'balanced_accuracy', 'macro_f1', 'kappa', 'auroc',
               'loss'):
    assert np.isfinite(final['test'][name]), name
  # The best checkpoint's logits on the test split, outside the training loop.
  run = state_lib.load_run(workdir)
  assert run.step == final['best_step']
  logits, labels = [], []
  for batch in pipeline.eval_batches(config.dataset, 'test', 64):
    valid = batch['valid']
    logits.append(np.asarray(run.apply_fn(
        batch['image'][valid].astype(np.float32) / 255)))
    labels.append(batch['label'][valid])
  logits, labels = np.concatenate(logits), np.concatenate(labels)
  predicted = logits.argmax(1)
  test = final['test']
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # sklearn warns about classes never predicted
    assert test['accuracy'] == pytest.approx(sk.accuracy_score(labels, predicted))
    assert test['balanced_accuracy'] == pytest.approx(
        sk.balanced_accuracy_score(labels, predicted))
    assert test['macro_f1'] == pytest.approx(
        sk.f1_score(labels, predicted, average='macro', zero_division=0))
    assert test['kappa'] == pytest.approx(sk.cohen_kappa_score(labels, predicted),
                                          abs=1e-9)
  probabilities = np.asarray(jax.nn.softmax(logits, -1), np.float64)
  assert abs(test['auroc'] - sk.roc_auc_score(labels, probabilities,
                                              multi_class='ovr')) <= (
                                                  test['auroc_error'] + 1e-9)
  cross_entropy = -np.log(probabilities[np.arange(len(labels)), labels]).mean()
  assert test['loss'] == pytest.approx(cross_entropy, rel=1e-4)
  for figure in (train.CURVES_FILE, train.CONFUSION_FILE, train.ROC_FILE):
    assert os.path.getsize(os.path.join(workdir, figure)) > 0


def write_class_folders(root, per_class=4):
  for label, name in enumerate(synthetic_cells.CELL_CLASSES):
    os.makedirs(root / name)
    for i in range(per_class):
      image, _ = synthetic.render_cells(np.random.default_rng(9_000_000 + 10 * i),
                                        64, nuclei_per_cell=label)
      Image.fromarray(image[..., 0]).save(root / name / f'{i}.png')


@pytest.mark.slow
def test_predict_writes_class_probabilities_and_scores_class_folders(
    trained, tmp_path):
  _, workdir, _ = trained
  write_class_folders(tmp_path / 'images')
  result = predict.predict_folder(workdir, str(tmp_path / 'images'),
                                  str(tmp_path / 'out'), batch_size=5)
  with open(tmp_path / 'out' / predict.PREDICTIONS_FILE) as f:
    rows = list(csv.DictReader(f))
  names = synthetic_cells.CELL_CLASSES
  assert len(rows) == result['images'] == 12
  assert list(rows[0]) == (['file', 'predicted_class']
                           + [f'probability/{n}' for n in names] + ['true_class'])
  probabilities = np.array([[float(r[f'probability/{n}']) for n in names]
                            for r in rows])
  np.testing.assert_allclose(probabilities.sum(1), 1, atol=1e-5)
  predicted = probabilities.argmax(1)
  assert [r['predicted_class'] for r in rows] == [names[k] for k in predicted]
  truth = np.array([names.index(r['true_class']) for r in rows])
  assert [r['file'].split('/')[0] for r in rows] == [names[k] for k in truth]
  scores = result['metrics']
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    assert scores['accuracy'] == pytest.approx(sk.accuracy_score(truth, predicted))
    assert scores['macro_f1'] == pytest.approx(
        sk.f1_score(truth, predicted, average='macro', zero_division=0))
  with open(tmp_path / 'out' / predict.METRICS_FILE) as f:
    saved = {row['metric']: float(row['value']) for row in csv.DictReader(f)}
  assert saved['accuracy'] == pytest.approx(scores['accuracy'])
  # A folder of images: predictions only.
  result = predict.predict_folder(workdir, str(tmp_path / 'images' / 'binucleate'),
                                  str(tmp_path / 'out2'), tta=True)
  assert 'metrics' not in result
  assert not os.path.exists(tmp_path / 'out2' / predict.METRICS_FILE)
  with open(tmp_path / 'out2' / predict.PREDICTIONS_FILE) as f:
    assert len(list(csv.DictReader(f))) == 4


@pytest.mark.slow
def test_predict_refuses_unknown_class_folders_and_masks(trained, tmp_path):
  _, workdir, _ = trained
  os.makedirs(tmp_path / 'images' / 'mitotic')
  with pytest.raises(DataError, match='mitotic.*not classes of the run'):
    predict.predict_folder(workdir, str(tmp_path / 'images'), str(tmp_path / 'out'))
  with pytest.raises(UserInputError, match='image classifier.*one folder per class'):
    predict.predict_folder(workdir, str(tmp_path / 'images'), str(tmp_path / 'o2'),
                           masks_dir=str(tmp_path / 'images'))


@pytest.mark.parametrize('change, error, message', [
    (dict(dataset='synthetic_cells/binary'), DataError,
     "'resnet' is a classification model but dataset 'synthetic_cells/binary' "
     'is a segmentation dataset'),
    (dict(model='unet'), DataError,
     "'unet' is a segmentation model but dataset 'synthetic_cells/classify' is "
     'a classification dataset'),
    (dict(loss='dice'), ConfigError, "loss.name='dice' is a segmentation loss"),
    (dict(best_metric='dice'), ConfigError,
     "best_metric='dice' is not a classification metric"),
    (dict(patch_size=32), ConfigError, 'patch_size=32 is for segmentation'),
    (dict(n_classes=1), DataError, 'n_classes=1 does not match.*set '
     r'config.model.n_classes=3\.'),
])
def test_a_config_that_mixes_the_tasks_stops_before_the_workdir(
    data_dir, tmp_path, change, error, message):
  config = small_config(data_dir)
  if 'dataset' in change:
    config.dataset.name = change['dataset']
  if 'model' in change:
    config.model = default.get_config().model
  if 'loss' in change:
    config.loss.name = change['loss']
  if 'best_metric' in change:
    config.best_metric = change['best_metric']
  if 'patch_size' in change:
    config.dataset.patch_size = change['patch_size']
  if 'n_classes' in change:
    config.model.n_classes = change['n_classes']
  with pytest.raises(error, match=message):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


def test_label_smoothing_and_class_weights_match_pytorch():
  torch = pytest.importorskip('torch')  # the reference; CI installs it
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(32, 4)).astype(np.float32) * 3
  labels = rng.integers(0, 4, 32)
  for smoothing in (0.0, 0.1, 0.3):
    ours = losses.cross_entropy(logits, labels, label_smoothing=smoothing)
    theirs = torch.nn.functional.cross_entropy(
        torch.tensor(logits), torch.tensor(labels), label_smoothing=smoothing)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
  weights = (0.5, 1.0, 2.0, 4.0)
  ours = losses.cross_entropy(logits, labels, class_weights=weights)
  theirs = torch.nn.functional.cross_entropy(
      torch.tensor(logits), torch.tensor(labels), weight=torch.tensor(weights))
  assert float(ours) == pytest.approx(float(theirs), rel=1e-5)
  loss_config = classify.get_config().loss
  loss_config.label_smoothing = 0.2
  assert float(losses.get_loss(loss_config)(logits, labels)) == pytest.approx(
      float(losses.cross_entropy(logits, labels, label_smoothing=0.2)))


def test_runs_recorded_before_label_smoothing_existed_still_resume():
  current = workdir_lib.config_to_dict(default.get_config())
  saved = json.loads(json.dumps(current))
  del saved['loss']['label_smoothing']
  assert workdir_lib.config_differences(saved, current) == []
  current['loss']['label_smoothing'] = 0.1
  assert workdir_lib.config_differences(saved, current) == [
      "loss.label_smoothing: '<absent>' -> 0.1"]


@pytest.mark.slow
def test_the_ablation_runner_tabulates_classification_runs(data_dir, tmp_path):
  from unetjax import ablation
  base = small_config(data_dir)
  base.num_train_steps, base.log_every_steps = 4, 2
  base.eval_every_steps = base.checkpoint_every_steps = 2
  sweep = {'base': base, 'seeds': [0],
           'axes': {'smoothing': [('0', {'config.loss.label_smoothing': 0.0}),
                                  ('0.1', {'config.loss.label_smoothing': 0.1})]}}
  assert ablation.run_sweep(sweep, str(tmp_path)) == []
  with open(tmp_path / 'results.md') as f:
    table = f.read()
  assert 'Accuracy' in table and 'Macro-F1' in table and 'Dice' not in table
  assert os.path.exists(tmp_path / 'test_macro_f1.png')  # the runs' best_metric


@pytest.mark.slow
def test_class_folder_config_trains_on_a_folder_of_class_folders(tmp_path):
  from configs import class_folder
  write_class_folders(tmp_path / 'root', per_class=5)
  config = class_folder.get_config()
  config.dataset.data_dir = str(tmp_path / 'tfds')
  config.dataset.manual_dir = str(tmp_path / 'root')
  config.dataset.folder.image_size = 32
  config.dataset.folder.n_channels = 1
  config.model.base_filters = 8
  config.batch_size = config.eval_batch_size = 8
  config.num_train_steps = config.log_every_steps = 2
  config.eval_every_steps = config.checkpoint_every_steps = 2
  config.progress_bar = False
  with pytest.raises(DataError, match=r'n_classes=2 does not match.*3 classes '
                     r'\(anucleate, binucleate, mononucleate\)'):
    train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
  config.model.n_classes = 3
  final = train.train_and_evaluate(config, str(tmp_path / 'run'))
  assert 0 <= final['test']['accuracy'] <= 1
  result = predict.predict_folder(str(tmp_path / 'run'), str(tmp_path / 'root'),
                                  str(tmp_path / 'out'))
  assert result['images'] == 15 and 0 <= result['metrics']['accuracy'] <= 1
