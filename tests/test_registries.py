"""The registries are the only lists of names: every metric a summary
returns is registered (a forgotten entry would drop it from every table),
every registered model declares its published and tiny settings and is in
the docs' model table, which lists nothing else, and every config field is
declared once, in the schema, from which the defaults, the checks, --help
and the docs' field table come."""

import os
import re

import jax
import numpy as np
import pytest

from unetjax import (classification_metrics, command_line, config_schema,
                     configuration, instances, metrics, models)
from unetjax.data import builders
from unetjax.errors import ConfigError

DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs')


def unregistered(keys):
  """Keys that are neither a METRICS name nor '<METRICS name>/<class>'."""
  return sorted(k for k in keys if k.split('/')[0] not in metrics.METRICS)


@pytest.mark.parametrize('n_classes', [1, 3])
def test_every_segmentation_and_object_summary_key_is_registered(n_classes):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, max(n_classes, 2), (2, 16, 16))
  logits = rng.normal(0, 1, (2, 16, 16, n_classes)).astype(np.float32)
  names = ('background', 'foreground') if n_classes == 1 else ('bg', 'a', 'b')
  stats = jax.jit(metrics.batch_statistics)(logits, labels)
  summary = metrics.summarize(metrics.merge(None, stats), names)
  assert 'dice' in summary and unregistered(summary) == []
  true = np.zeros((16, 16), np.int32)
  true[2:6, 2:6], true[8:12, 8:12] = 1, 2
  classes = np.where(true == 2, 2, (true > 0).astype(int))
  scores = {**instances.object_scores(true, true), **instances.rand_and_information(true, true)}
  if n_classes == 3:
    scores.update(instances.class_object_scores(true, classes, classes, 3))
  objects = instances.summarize([scores], names)
  assert 'pq' in objects and unregistered(objects) == []


def test_every_classification_summary_key_is_registered():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 1, (12, 3)).astype(np.float32)
  labels = rng.integers(0, 3, 12)
  stats = classification_metrics.batch_statistics(logits, labels)
  summary = classification_metrics.summarize(
      jax.tree.map(np.asarray, stats), ("a", "b", "c"))
  assert 'accuracy' in summary and unregistered(summary) == []


def test_the_check_catches_a_forgotten_entry(monkeypatch):
  monkeypatch.delitem(metrics.METRICS, 'boundary_f1')
  assert unregistered(['dice', 'boundary_f1', 'dice/foreground']) == ['boundary_f1']


def test_every_model_module_declares_its_settings_and_the_docs_table_is_the_registry():
  registered = {**models.MODELS, **models.CLASSIFIERS}
  labels = [label for label, _, _ in models.paper_settings()]
  assert len(labels) == len(set(labels))
  assert {name for _, name, _ in models.paper_settings()} == set(registered)
  assert set(models.tiny_settings()) <= set(models.MODELS)
  with open(os.path.join(DOCS, 'models.md')) as f:
    rows = re.findall(r'^\| `(\w+)`[^|]*\| [^|]+\| `(\w+\.py)` \|$', f.read(), re.M)
  assert {name for name, _ in rows} == set(registered)
  for name, file in rows:
    module = registered[name].__module__
    assert module == f'unetjax.models.{file[:-3]}', (name, file)


def command_modules():
  """The `python -m` commands of unetjax/, and those with absl flags in
  experiments/."""
  root = os.path.dirname(DOCS)
  for folder in ('unetjax', 'unetjax/plan', 'unetjax/models', 'experiments'):
    for name in sorted(os.listdir(os.path.join(root, folder))):
      path = os.path.join(root, folder, name)
      if not name.endswith('.py') or name == 'command_line.py':
        continue
      with open(path) as f:
        text = f.read()
      # Every command of the package; experiments' scripts with flags.
      if "if __name__ == '__main__':" in text and (
          folder.startswith('unetjax') or 'absl' in text):
        yield os.path.relpath(path, root), text


def test_every_command_runs_in_the_one_shell():
  """Each command is its run() inside command_line.main, which alone turns
  input, storage and stop errors into one line and an exit status."""
  found = dict(command_modules())
  assert {'unetjax/main.py', 'unetjax/ablation.py', 'unetjax/predict.py',
          'unetjax/plan/__main__.py', 'unetjax/augment_grid.py',
          'unetjax/models/__main__.py', 'experiments/isbi_challenge.py'} <= set(found)
  for path, text in found.items():
    assert 'command_line.main(run' in text, path
    assert "sys.exit(f'error: {e}')" not in text, path
    assert 'except KeyboardInterrupt' not in text, path
    assert "DEFINE_integer('cpu_devices'" not in text, path


def test_the_docs_field_table_is_the_schemas():
  with open(os.path.join(DOCS, 'configs.md')) as f:
    text = f.read()
  assert config_schema.markdown_table() in text, (
      'docs/configs.md\'s "Every field" table differs from the schema: paste '
      'the output of python -c "from unetjax import config_schema; '
      'print(config_schema.markdown_table())"')


def test_a_field_declared_once_reaches_the_defaults_checks_help_and_docs(monkeypatch):
  fields = dict(config_schema.FIELDS)
  fields['loss.toy_weight'] = config_schema.Field(
      0.25, 'a toy field', check=config_schema.unit_interval, absent_means=0.0)
  fields['optimizer.toy_rule'] = config_schema.Field(
      'a', 'a toy choice', choices=('a', 'b'))
  monkeypatch.setattr(config_schema, 'FIELDS', fields)
  monkeypatch.setattr(configuration, 'FIELDS', fields)
  config = config_schema.default_config()
  assert config.loss.toy_weight == 0.25 and config.optimizer.toy_rule == 'a'
  configuration.validate(config)
  config.loss.toy_weight = 2.0
  config.optimizer.toy_rule = 'c'
  with pytest.raises(ConfigError) as error:
    configuration.validate(config)
  assert 'config.loss.toy_weight=2.0 must be between 0 and 1' in str(error.value)
  assert "config.optimizer.toy_rule='c' must be one of: 'a', 'b'" in str(error.value)
  del config.loss['toy_weight']
  with pytest.raises(ConfigError, match='config.loss.toy_weight is missing'):
    configuration.validate(config)
  assert 'config.optimizer.toy_rule: a, b' in config_schema.choices_help()
  assert '| `loss.toy_weight` | `0.25` | a toy field |' in config_schema.markdown_table()
  assert config_schema.added_fields()['loss.toy_weight'] == 0.0


def test_every_config_file_sets_only_schema_fields_outside_the_model():
  """configs/*.py change values, never invent fields (config.model and
  dataset.folder are per architecture and per builder)."""
  root = os.path.dirname(DOCS)
  for name in sorted(os.listdir(os.path.join(root, 'configs'))):
    if name.endswith('.py') and name != '__init__.py':
      config = command_line.load_config(os.path.join(root, 'configs', name))
      configuration.validate(config)


def _documented_datasets() -> set[str]:
  """The config.dataset.name values of docs/datasets.md's table, with
  `a/{x,y}px` and `a/x`, `/y` spelled out."""
  with open(os.path.join(DOCS, 'datasets.md')) as f:
    cells = re.findall(r'^\| (`[^|]+) \|', f.read(), re.M)
  names = set()
  for cell in cells:
    base = ''
    for name in re.findall(r'`([^`]+)`', cell):
      if name.startswith('/'):
        name = base + name[1:]
      base = name.split('/')[0] + '/'
      braces = re.search(r'\{([^}]+)\}', name)
      parts = braces.group(1).split(',') if braces else ['']
      names.update(name.replace(braces.group(0), part) if braces else name
                   for part in parts)
  return names


def test_every_registered_dataset_is_in_the_docs_table_and_the_help():
  documented = _documented_datasets()
  assert 'isbi2012_em/128px' in documented and 'synthetic_cells/multiclass_rgb_128' in documented
  assert sorted(set(builders.DATASETS) - documented) == []
  help_line = next(line for line in config_schema.choices_help().split('\n')
                   if line.startswith('config.dataset.name:'))
  assert help_line.split(': ', 1)[1].split(', ') == list(builders.DATASETS)
