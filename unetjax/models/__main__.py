"""Lists the models with their parameter count and forward-pass cost.

  python -m unetjax.models --list --size 256 --channels 3

Each model is built with its paper's widths (`PAPER_SETTINGS`); FLOPs are
XLA's cost analysis of the compiled evaluation-mode forward pass on one
image, which counts 2 FLOPs per multiply-add and leaves out multiply-adds
with the zero padding of 'same' convolutions (papers and ptflops count
them, so their numbers are a few percent higher).
"""

# pylint: disable=wrong-import-order (first: a Ctrl-C while starting is one line)
from unetjax import command_line  # noqa: I001

import time
from typing import Any

import ml_collections
from absl import flags

from unetjax import models
from unetjax.errors import UserInputError

# (row label, registry name, fields): the architectures as published, as
# each model's module declares them (its PAPER).
PAPER_SETTINGS: list[tuple[str, str, dict[str, Any]]] = models.paper_settings()


def build(name: str, fields: dict[str, Any], n_classes: int | None,
          base_filters: int | None):
  fields = dict(fields, name=name)
  if n_classes is not None:
    fields['n_classes'] = n_classes
  elif name not in models.CLASSIFIERS:
    fields['n_classes'] = 1
  if base_filters is not None:
    fields['base_filters'] = base_filters
  return models.get_model(ml_collections.ConfigDict(fields))


def list_models(size: int, channels: int, n_classes: int | None,
                base_filters: int | None) -> list[dict[str, Any]]:
  """One row per entry of PAPER_SETTINGS: parameters and forward GFLOPs."""
  shape = (1, size, size, channels)
  rows = []
  for label, name, fields in PAPER_SETTINGS:
    model = build(name, fields, n_classes, base_filters)
    settings = {k: getattr(model, k) for k in sorted(models.model_fields(type(model)))}
    rows.append(dict(model=label, params=models.parameter_count(model, shape),
                     gflops=models.forward_flops(model, shape) / 1e9,
                     settings=settings))
  return rows


def format_rows(rows: list[dict[str, Any]], size: int, channels: int) -> str:
  lines = [f'{"model":<16}{"params":>13}{"GFLOPs":>10}  settings '
           f'(input 1x{size}x{size}x{channels})']
  for row in rows:
    settings = ' '.join(f'{k}={v}' for k, v in row['settings'].items())
    lines.append(f'{row["model"]:<16}{row["params"]:>13,}{row["gflops"]:>10.2f}'
                 f'  {settings}')
  return '\n'.join(lines)


FLAGS = flags.FLAGS
flags.DEFINE_bool('list', False, 'List the models with parameters and GFLOPs.')
flags.DEFINE_integer('size', 256, 'Input height and width.', lower_bound=1)
flags.DEFINE_integer('channels', 1, 'Input channels.', lower_bound=1)
flags.DEFINE_integer('n_classes', None, 'Output classes (default 1; 1000 for '
                     'classifiers).', lower_bound=1)
flags.DEFINE_integer('base_filters', None, "Override every model's first-level "
                     'width.', lower_bound=1)


def run() -> None:
  if not FLAGS.list:
    raise UserInputError('Nothing to do: --list lists the models '
                         '(python -m unetjax.models --list).')
  start = time.time()
  rows = list_models(FLAGS.size, FLAGS.channels, FLAGS.n_classes,
                     FLAGS.base_filters)
  print(format_rows(rows, FLAGS.size, FLAGS.channels))
  print(f'({time.time() - start:.0f} s; GFLOPs from XLA: 2 per multiply-add, '
        'padding not counted)')


if __name__ == '__main__':
  command_line.main(run)
