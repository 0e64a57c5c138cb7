"""torchvision ResNet weights (a state_dict file such as resnet34-b627a593.pth,
downloaded by the user) as the variables of unetjax's ResNet encoder, for
the ResNet classifier and the ResNet U-Nets.

What changes between the two layouts: convolution kernels (out, in, kh, kw)
-> (kh, kw, in, out); dense kernels (out, in) -> (in, out); batch norm's
weight / bias / running_mean / running_var -> scale / bias (params) and mean /
var (batch_stats). torchvision pads symmetrically and the encoder does too
(unetjax.models.resnet), and both use batch norm's epsilon 1e-5, so the
outputs agree to float32 rounding (tests/test_torchvision_weights.py).
"""

import os
from typing import Any

import flax
import jax
import numpy as np

from unetjax import extras
from unetjax.errors import ConfigError
from unetjax.models.resnet import BOTTLENECK_DEPTHS, ENCODER_SCOPE, STAGE_SIZES

FC = 'fc'  # the classifier's dense layer


def read_state_dict(path: str) -> dict[str, np.ndarray]:
  """The tensors of a PyTorch state_dict file, as float32 numpy arrays."""
  if not os.path.isfile(path):
    raise ConfigError(f'config.model.pretrained={path!r} is not a file: give '
                      'the path of a torchvision ResNet state_dict (.pth).')
  torch = extras.require('torch', 'peers', 'config.model.pretrained (reading '
                         'a PyTorch .pth file)')
  try:
    loaded = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pickle, zip and torch errors alike
    raise ConfigError(f'config.model.pretrained={path!r} is not a PyTorch '
                      f'state_dict file torch can read: {e}') from e
  if isinstance(loaded, dict) and isinstance(loaded.get('state_dict'), dict):
    loaded = loaded['state_dict']  # a training checkpoint that wraps it
  if not isinstance(loaded, dict) or not all(
      isinstance(v, torch.Tensor) for v in loaded.values()):
    raise ConfigError(f'config.model.pretrained={path!r} holds a '
                      f'{type(loaded).__name__}, not a state_dict of tensors.')
  return {k: v.detach().float().numpy() for k, v in loaded.items()
          if not k.endswith('num_batches_tracked')}


def _conv(kernel: np.ndarray) -> np.ndarray:
  return np.transpose(kernel, (2, 3, 1, 0))


def _block_layers(num_layers: int) -> list[tuple[str, str, str]]:
  """(torchvision prefix, flax conv name, flax norm name) of every
  convolution of the encoder, in the order each module creates them."""
  pairs = [('conv1', 'stem_conv', 'BatchNorm_0')]
  n_convs = 3 if num_layers in BOTTLENECK_DEPTHS else 2
  for stage, n_blocks in enumerate(STAGE_SIZES[num_layers]):
    for block in range(n_blocks):
      torch_block, flax_block = f'layer{stage + 1}.{block}', f'layer{stage + 1}_{block}'
      for i in range(n_convs):
        pairs.append((f'{torch_block}.conv{i + 1}', f'{flax_block}/Conv_{i}',
                      f'{flax_block}/BatchNorm_{i}'))
      if block == 0 and (stage > 0 or n_convs == 3):  # the projection shortcut
        pairs.append((f'{torch_block}.downsample.0',
                      f'{flax_block}/Conv_{n_convs}',
                      f'{flax_block}/BatchNorm_{n_convs}'))
  return pairs


def _norm_prefix(torch_conv: str) -> str:
  """The batch norm that follows a torchvision convolution."""
  if torch_conv == 'conv1':
    return 'bn1'
  if torch_conv.endswith('downsample.0'):
    return torch_conv[:-1] + '1'
  return torch_conv.replace('.conv', '.bn')


def encoder_variables(state_dict: dict[str, np.ndarray],
                      num_layers: int) -> dict[str, dict[str, np.ndarray]]:
  """Flat {'params': {path: array}, 'batch_stats': {path: array}} of the
  encoder (paths relative to it, '/'-joined) from a torchvision ResNet's
  state_dict."""
  params, stats = {}, {}
  for torch_conv, conv, norm in _block_layers(num_layers):
    params[f'{conv}/kernel'] = _conv(state_dict[f'{torch_conv}.weight'])
    bn = _norm_prefix(torch_conv)
    params[f'{norm}/scale'] = state_dict[f'{bn}.weight']
    params[f'{norm}/bias'] = state_dict[f'{bn}.bias']
    stats[f'{norm}/mean'] = state_dict[f'{bn}.running_mean']
    stats[f'{norm}/var'] = state_dict[f'{bn}.running_var']
  return {'params': params, 'batch_stats': stats}


def expected_keys(num_layers: int) -> set[str]:
  """The encoder keys of a torchvision ResNet state_dict (fc.* apart)."""
  keys = set()
  for torch_conv, _, _ in _block_layers(num_layers):
    bn = _norm_prefix(torch_conv)
    keys |= {f'{torch_conv}.weight', *(f'{bn}.{k}' for k in (
        'weight', 'bias', 'running_mean', 'running_var'))}
  return keys


def _architecture(keys: set[str]) -> int | None:
  """The ResNet (18, 34 or 50) whose state_dict has exactly these keys."""
  encoder = {k for k in keys if not k.startswith(f'{FC}.')}
  return next((n for n in STAGE_SIZES if expected_keys(n) == encoder), None)


def pretrained_variables(path: str, num_layers: int,
                         variable_shapes: dict[str, Any]) -> dict[str, Any]:
  """The variables of a model to take from the torchvision ResNet weights
  in `path`: its encoder's, and its classifier's `fc` where the class count
  matches. `variable_shapes` (models.variable_shapes of the model) says
  which exist and their shapes; ConfigError names any mismatch."""
  state_dict = read_state_dict(path)
  keys = set(state_dict)
  wanted = expected_keys(num_layers)
  where = f'config.model.pretrained={path!r}'
  found = _architecture(keys)
  if found is not None and found != num_layers:
    raise ConfigError(
        f'{where} holds the weights of a ResNet-{found}, but '
        f'config.model.num_layers={num_layers}: set num_layers={found}, or use '
        f'the file of ResNet-{num_layers}.')
  missing = sorted(wanted - keys)
  if missing:
    raise ConfigError(f'{where} lacks {len(missing)} of the {len(wanted)} '
                      f'ResNet-{num_layers} encoder tensors, e.g. '
                      f'{", ".join(missing[:3])}.')
  extra = sorted(k for k in keys - wanted if not k.startswith(f'{FC}.'))
  if extra:
    raise ConfigError(f'{where} holds {len(extra)} tensors that a torchvision '
                      f'ResNet-{num_layers} does not have, e.g. '
                      f'{", ".join(extra[:3])}: it is not a torchvision ResNet '
                      'state_dict.')
  flat = {}
  for collection, values in encoder_variables(state_dict, num_layers).items():
    for name, value in values.items():
      flat[(collection, ENCODER_SCOPE, *name.split('/'))] = value
  if FC in variable_shapes.get('params', {}) and f'{FC}.weight' in keys:
    fc_kernel = state_dict[f'{FC}.weight'].T
    if fc_kernel.shape == variable_shapes['params'][FC]['kernel'].shape:
      flat[('params', FC, 'kernel')] = fc_kernel
      flat[('params', FC, 'bias')] = state_dict[f'{FC}.bias']
  shapes = flax.traverse_util.flatten_dict(
      {k: v for k, v in variable_shapes.items() if k in ('params', 'batch_stats')})
  for key, value in flat.items():
    if key not in shapes or shapes[key].shape != value.shape:
      in_model = shapes[key].shape if key in shapes else 'does not exist'
      raise ConfigError(
          f'{where}: {"/".join(key)} has shape {value.shape} in the file and '
          f'{in_model} in the model; to take ImageNet weights the encoder needs '
          "norm='batch', base_filters=64 and 3 input channels (RGB images).")
  return flax.traverse_util.unflatten_dict(flat)


def merge(variables: dict[str, Any], pretrained: dict[str, Any]) -> dict[str, Any]:
  """`variables` with the leaves that `pretrained` holds replaced."""
  flat = flax.traverse_util.flatten_dict(variables)
  for key, value in flax.traverse_util.flatten_dict(pretrained).items():
    flat[key] = jax.numpy.asarray(value, flat[key].dtype)
  return flax.traverse_util.unflatten_dict(flat)
