"""The speed benchmarks compare like with like: the PyTorch U-Net is unetjax's
U-Net (same parameters, same loss), and the records' rates follow from the
times they report."""

import argparse
import dataclasses
import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The PyTorch baseline's own dependency: `pip install torch` (CI installs the
# CPU build, torch==2.13.0).
torch = pytest.importorskip('torch')

from benchmarks import common
from benchmarks import summarize
from benchmarks import torch_baseline
from benchmarks import train_throughput
from configs import default
from unetjax import losses, models

TINY = dataclasses.replace(common.PRESETS['cpu'], shape=(32, 32, 1), batch_sizes=(2,),
                           base_filters=4, steps=2, warmup=0)


@pytest.mark.parametrize('base_filters,batch_norm,channels', [(16, False, 1), (64, True, 3)])
def test_torch_unet_has_the_parameters_of_unetjax_unet(base_filters, batch_norm, channels):
  preset = dataclasses.replace(common.PRESETS['gpu'], base_filters=base_filters,
                               batch_norm=batch_norm)
  model = models.get_model(train_throughput.model_config('unet', preset))
  expected = models.parameter_count(model, (1, 64, 64, channels))
  torch_model = torch_baseline.UNet(channels, 1, base_filters, 4, batch_norm)
  assert torch_baseline.parameter_count(torch_model) == expected


def test_torch_loss_equals_unetjax_cross_entropy_dice():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(3, 16, 16, 1)).astype(np.float32) * 3
  labels = (rng.random((3, 16, 16)) > 0.6).astype(np.int32)
  expected = losses.get_loss(default.get_config().loss)(jnp.asarray(logits),
                                                        jnp.asarray(labels))
  got = torch_baseline.bce_dice_loss(
      torch.from_numpy(logits).permute(0, 3, 1, 2),
      torch.from_numpy(labels[:, None].astype(np.float32)))
  np.testing.assert_allclose(float(got), float(expected), rtol=1e-5)


def test_torch_forward_flops_match_xla_up_to_padding():
  """XLA leaves out the multiply-adds with 'same' padding; torch counts them."""
  model = models.get_model(train_throughput.model_config('unet', TINY))
  xla = models.forward_flops(model, (1, 32, 32, 1))
  counted = torch_baseline.forward_flops(torch_baseline.UNet(1, 1, 4, 4, False),
                                         torch.zeros(1, 1, 32, 32))
  assert 0.75 * counted < xla <= counted


def test_train_record_rates_follow_from_step_time(tmp_path, monkeypatch):
  monkeypatch.setenv('UNETJAX_BENCHMARK_OUT', str(tmp_path / 'out.jsonl'))
  record = train_throughput.measure('unet', 'float32', 2, TINY)
  common.emit(record)
  assert record['images_per_s'] == pytest.approx(2 / (record['step_ms'] / 1e3), rel=1e-3)
  assert record['train_gflops_per_image'] == pytest.approx(
      3 * record['forward_gflops_per_image'], abs=1e-3)
  assert record['step_ms_spread'][0] <= record['step_ms'] <= record['step_ms_spread'][1]
  assert record['device'] == jax.devices()[0].platform and record['mfu'] is None
  assert json.loads((tmp_path / 'out.jsonl').read_text()) == record


def test_torch_cases_and_ratio_and_summary(tmp_path, monkeypatch):
  monkeypatch.setenv('UNETJAX_BENCHMARK_OUT', str(tmp_path / 'train_throughput.jsonl'))
  jax_record = train_throughput.measure('unet', 'float32', 2, TINY)
  common.emit(jax_record)
  torch_records = torch_baseline.run(TINY, ('fp32',))
  assert torch_records[0]['params'] == jax_record['params']
  (ratio,) = train_throughput.ratio_record([jax_record], torch_records)
  assert ratio['ratio'] == pytest.approx(
      jax_record['images_per_s'] / torch_records[0]['images_per_s'], rel=1e-2)
  common.emit(ratio)
  text = summarize.summary(str(tmp_path))
  assert '### Training throughput' in text and '### unetjax / PyTorch' in text
  assert f'| {ratio["ratio"]} |' in text


@pytest.mark.slow
def test_data_parallel_case_times_the_same_step_on_two_devices(tmp_path):
  model = models.get_model(train_throughput.model_config('unet', TINY))
  results = []
  for n_devices in (1, 2):
    step, state, batch = train_throughput.compiled_step(model, TINY.shape, 4, n_devices)
    assert len(batch['image'].sharding.device_set) == n_devices
    state, out = step(state, batch)
    results.append((float(out['loss']), jax.device_get(state.params)))
  (loss_1, params_1), (loss_2, params_2) = results
  assert loss_2 == pytest.approx(loss_1, rel=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
               params_1, params_2)
  record = train_throughput.measure('unet', 'float32', 4, TINY, n_devices=2)
  assert record['devices'] == 2
  common.emit(record, str(tmp_path / 'train_throughput.jsonl'))
  assert '| unetjax | 2 | float32 |' in summarize.summary(str(tmp_path))


def test_peak_flops_by_device_name():
  assert common.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989.4e12
  assert common.peak_flops('cpu', 'float32') is None


def test_shifted_matmul_weight_gradient_is_pytorchs_and_conv_layer_table(tmp_path):
  from benchmarks import layer_formulations
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
  g = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
  w = torch.zeros(4, 3, 3, 3, requires_grad=True)  # OIHW; the output is linear in w
  out = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), w,
                                   padding=1)
  (expected,) = torch.autograd.grad(out, [w], torch.from_numpy(g).permute(0, 3, 1, 2))
  got = layer_formulations.shifted_weight_gradient(jnp.asarray(x), jnp.asarray(g))
  np.testing.assert_allclose(got, expected.permute(2, 3, 1, 0).numpy(),
                             rtol=1e-4, atol=1e-4)  # HWIO
  record = {'benchmark': 'conv_layer', 'input_shape': [2, 8, 8, 4],
            'out_channels': 4, 'device': 'cpu',
            **layer_formulations.conv_layer_ms((2, 8, 8, 4), 4, 1, True)}
  (tmp_path / 'layer_formulations.jsonl').write_text(json.dumps(record) + '\n')
  text = summarize.summary(str(tmp_path))
  xla = sum(record[k] for k in ('xla_forward', 'xla_input_gradient',
                                'xla_weight_gradient'))
  assert '### 3x3 convolutions alone' in text
  assert f'| {round(xla / record["torch_forward_backward"], 2)} |' in text


def test_step_profile_names_each_traced_op_and_its_layer(tmp_path):
  from benchmarks import profile_step
  x = jnp.ones((2, 8, 8, 3))
  w = jnp.ones((3, 3, 3, 4))
  conv = jax.jit(lambda x, w: jax.nn.relu(jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))))
  ops = profile_step.hlo_ops(conv.lower(x, w).compile().as_text())
  (conv_op,) = [op for op in ops.values() if op['kind'].endswith('convolution')]
  assert conv_op['shape'] == 'f32[2,8,8,4]' and 'size=3x3' in conv_op['window']
  assert 'conv_general_dilated' in conv_op['source']

  step_ms, traced = profile_step.profile(TINY, steps=2)
  assert traced and step_ms > 0
  assert all(op['ms_per_step'] >= 0 and '?' not in op['kind'] for op in traced)
  assert [op['ms_per_step'] for op in traced] == sorted(
      (op['ms_per_step'] for op in traced), reverse=True)
  layers = {re.search(r'ConvBlock_\d+/Conv_\d', op['source']).group(0)
            for op in traced if op['kind'].endswith('convolution')
            and 'ConvBlock' in op['source']}
  # Every 3x3 convolution of the U-Net's 9 blocks is traced.
  assert layers == {f'ConvBlock_{b}/Conv_{c}' for b in range(9) for c in range(2)}


def test_step_profile_of_a_config_file_uses_its_network_and_batch(tmp_path):
  from benchmarks import profile_step
  plan = tmp_path / 'plan.py'
  plan.write_text(
      'from configs import default\n\n\ndef get_config():\n'
      '  config = default.get_config()\n  config.batch_size = 3\n'
      '  config.model.base_filters = 4\n'
      '  config.model.level_filters = (4, 4, 8, 16, 32)\n  return config\n')
  preset, model_config = profile_step.from_config(
      dataclasses.replace(TINY, shape=common.image_shape('32x32x3')), str(plan))
  assert preset.batch_sizes == (3,) and preset.shape == (32, 32, 3)
  _, traced = profile_step.profile(preset, 1, model_config)
  shapes = {op['shape'] for op in traced if op['kind'].endswith('convolution')}
  # The slim plan's first two levels: 4 channels at 32x32, then at 16x16.
  assert 'f32[3,32,32,4]' in shapes and 'f32[3,16,16,4]' in shapes
  with pytest.raises(SystemExit, match='no such file'):
    profile_step.from_config(TINY, str(tmp_path / 'missing.py'))
  for bad in ('256x240', '256x240x0', '256xAx3'):
    with pytest.raises(argparse.ArgumentTypeError, match='HxWxC'):
      common.image_shape(bad)


def test_seeds_at_once_benchmark_reports_the_ratio_of_its_own_timings():
  from benchmarks import seeds_at_once
  record = seeds_at_once.measure('default', 2, 'loop', steps=1)
  assert record['seeds'] == 2 and record['layout'] == 'loop'
  assert record['ratio'] == pytest.approx(
      2 * record['step_s_one_seed'] / record['step_s_at_once'], rel=1e-2)
  assert record['images_per_s_all_seeds_at_once'] == pytest.approx(
      2 * record['images_per_s_per_seed_at_once'], rel=1e-2)
