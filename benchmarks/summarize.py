"""Markdown tables of the benchmarks' JSON lines.

python -m benchmarks.summarize benchmarks/results/cpu

Reads every *.jsonl in the folder (train_throughput, inference,
augment_cost, ...) and prints one table per benchmark, as in the README.
"""

import glob
import json
import os
import sys
from typing import Any, Iterable


def read_records(folder: str) -> list[dict[str, Any]]:
  records = []
  for path in sorted(glob.glob(os.path.join(folder, '*.jsonl'))):
    with open(path) as f:
      records += [json.loads(line) for line in f if line.strip()]
  return records


def table(header: list[str], rows: Iterable[list[Any]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |', '|' + ' --- |' * len(header)]
  lines += ['| ' + ' | '.join('' if v is None else str(v) for v in row) + ' |'
            for row in rows]
  return '\n'.join(lines)


def versions(record: dict[str, Any]) -> str:
  if record.get('framework') == 'torch':
    return f'torch {record["torch"]}'
  return f'jax {record.get("jax")}'


def gib(n: int | None) -> str | None:
  return None if n is None else f'{n / 2**30:.1f}'


def train_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], versions(r), r['model'], r['mode'], r.get('devices', 1),
           r['dtype'], 'x'.join(map(str, r['image_shape'])), r['batch_size'],
           r['images_per_s'], r['step_ms'], r['achieved_tflops'],
           r['mfu'], gib(r['peak_memory_bytes']), r.get('compile_s')]
          for r in records if r['benchmark'] == 'train_throughput']
  return table(['device', 'software', 'model', 'mode', 'devices', 'dtype',
                'image', 'batch', 'images/s', 'step ms', 'TFLOP/s', 'MFU',
                'peak GiB', 'compile s'], rows)


def ratio_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], r['dtype'], r['batch_size'], r.get('unetjax_devices', 1),
           r['unetjax_images_per_s'],
           f'{r["torch_images_per_s"]} ({r["torch_mode"]})', r['ratio']]
          for r in records if r['benchmark'] == 'train_throughput_ratio']
  return table(['device', 'dtype', 'batch', 'unetjax devices', 'unetjax images/s',
                'best PyTorch images/s (mode)', 'ratio'], rows)


def inference_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], versions(r), r['mode'], r['dtype'],
           'x'.join(map(str, r['image_shape'])), r['batch_size'],
           r['latency_ms'], r['frames_per_s']]
          for r in records if r['benchmark'] == 'inference']
  return table(['device', 'software', 'mode', 'dtype', 'image', 'batch',
                'ms per call', 'frames/s'], rows)


def augment_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], 'x'.join(map(str, r['image_shape'])), r['batch_size'],
           r['augment_ms'], r['train_step_ms'], r['augment_fraction_of_step']]
          for r in records if r['benchmark'] == 'augment_cost']
  return table(['device', 'image', 'batch', 'augment ms', 'train step ms',
                'fraction of step'], rows)


def pipeline_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], r['dataset'], r['batch_size'], r['reader_threads'],
           r['pipeline_images_per_s'], r['train_step_images_per_s'],
           r['pipeline_to_step_ratio']]
          for r in records if r['benchmark'] == 'input_pipeline']
  return table(['device', 'dataset', 'batch', 'reader threads',
                'pipeline images/s', 'train step images/s', 'ratio'], rows)


def formulation_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], r['variant'], 'x'.join(map(str, r['image_shape'])),
           r['batch_size'], r['step_ms'], r['step_ms_spread']]
          for r in records if r['benchmark'] == 'layer_formulations']
  return table(['device', 'variant', 'image', 'batch', 'step ms (median)',
                'min, max'], rows)


def layer_gradient_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], 'x'.join(map(str, r['pooled_shape'])), r['max_pool_flax'],
           r['max_pool_unetjax'], r['up_convolution_flax'],
           r['up_convolution_unetjax']]
          for r in records if r['benchmark'] == 'layer_gradient']
  return table(['device', 'pooled map', 'max pool flax ms', 'max pool unetjax ms',
                'up-conv flax ms', 'up-conv unetjax ms'], rows)


def conv_layer_table(records: list[dict[str, Any]]) -> str:
  rows = []
  for r in records:
    if r['benchmark'] != 'conv_layer':
      continue
    xla = r['xla_forward'] + r['xla_input_gradient'] + r['xla_weight_gradient']
    torch_ms = r.get('torch_forward_backward')
    rows.append([r['device'], 'x'.join(map(str, r['input_shape'])),
                 r['out_channels'], r['xla_forward'], r['xla_input_gradient'],
                 r['xla_weight_gradient'], r['shifted_matmul_weight_gradient'],
                 round(xla, 2), r.get('torch_forward', ''),
                 '' if torch_ms is None else torch_ms,
                 '' if torch_ms is None else round(xla / torch_ms, 2)])
  return table(['device', 'input', 'out channels', 'XLA forward ms',
                'XLA input grad ms', 'XLA weight grad ms',
                'shifted-matmul weight grad ms', 'XLA all three ms',
                'PyTorch forward ms', 'PyTorch forward + backward ms',
                'XLA / PyTorch'], rows)


def step_profile_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], r['model'], 'x'.join(map(str, r['image_shape'])),
           r['batch_size'], r['kind'], r['ops'], r['ms_per_step'], r['traced_step_ms']]
          for r in records if r['benchmark'] == 'step_profile_kind']
  return table(['device', 'model', 'image', 'batch', 'op kind', 'ops',
                'ms per step', 'step ms'], rows)


def seeds_table(records: list[dict[str, Any]]) -> str:
  rows = [[r['device'], r['devices'], r['config'], r['seeds'], r['layout'],
           r['step_s_one_seed'], r['step_s_at_once'],
           r['images_per_s_one_seed'], r['images_per_s_per_seed_at_once'],
           r['ratio'], r['wall_sequential_s'], r['wall_at_once_s']]
          for r in records if r['benchmark'] == 'seeds_at_once']
  return table(['device', 'devices', 'config', 'K', 'layout', 'one seed s/step',
                'K at once s/step', 'images/s (one seed)',
                'images/s per seed (at once)', 'K sequential / at once',
                'wall K sequential s', 'wall at once s'], rows)


def summary(folder: str) -> str:
  records = read_records(folder)
  kinds = {r['benchmark'] for r in records}
  sections = [('Training throughput', 'train_throughput', train_table),
              ('unetjax / PyTorch', 'train_throughput_ratio', ratio_table),
              ('Inference', 'inference', inference_table),
              ('Augmentation cost', 'augment_cost', augment_table),
              ('Input pipeline', 'input_pipeline', pipeline_table),
              ('Layer formulations (train step)', 'layer_formulations',
               formulation_table),
              ('Layer gradients', 'layer_gradient', layer_gradient_table),
              ('3x3 convolutions alone', 'conv_layer', conv_layer_table),
              ('Step profile by op kind', 'step_profile_kind', step_profile_table),
              ('Seeds at once', 'seeds_at_once', seeds_table)]
  return '\n'.join(f'### {title}\n\n{make(records)}\n'
                   for title, kind, make in sections if kind in kinds)


if __name__ == '__main__':
  print(summary(sys.argv[1]))
