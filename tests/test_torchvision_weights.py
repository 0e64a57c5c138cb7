"""torchvision ResNet weights in unetjax's ResNet classifier and ResNet U-Net:
the same logits and encoder features as the PyTorch network with the same
(random) weights, parameter counts as torchvision and
segmentation_models_pytorch publish them, and one clear error for every
file that does not fit."""

import os
import subprocess
import sys

import jax
import ml_collections
import numpy as np
import pytest

torch = pytest.importorskip('torch')  # pip install torch==2.13.0, as CI does

from configs import resnet_unet as resnet_unet_config  # noqa: E402
from tests import torch_resnet  # noqa: E402
from unetjax import models, optimizers, state as state_lib  # noqa: E402
from unetjax.errors import ConfigError  # noqa: E402
from unetjax.models import ResNet, ResNetUNet, torchvision_weights  # noqa: E402
from unetjax.models.resnet import ResNetEncoder  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)

# torchvision's documented parameter counts (ResNet18/34/50_Weights meta,
# num_params) and segmentation_models_pytorch's Unet(encoder_name=
# 'resnet18/34/50', classes=1).
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032}
SMP_UNET_PARAMS = {18: 14_328_209, 34: 24_436_369, 50: 32_521_105}


def random_torch_resnet(num_layers, num_classes=1000, seed=0):
  """A torch ResNet in eval mode whose batch norms have random affine
  parameters and running statistics (the defaults, 1 and 0, would hide a
  swapped scale and bias or mean and variance)."""
  torch.manual_seed(seed)
  net = torch_resnet.resnet(num_layers, num_classes)
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.uniform_(0.5, 1.5)
        module.bias.uniform_(-0.2, 0.2)
        module.running_mean.uniform_(-0.2, 0.2)
        module.running_var.uniform_(0.5, 2.0)
  return net.eval()


def save_state_dict(net, path):
  torch.save(net.state_dict(), path)
  return str(path)


def with_weights(model, path, input_shape):
  variables = models.initialize(model, jax.random.key(1), input_shape)
  pretrained = torchvision_weights.pretrained_variables(
      path, model.num_layers, models.variable_shapes(model, input_shape))
  return torchvision_weights.merge(variables, pretrained)


def relative_error(ours, theirs):
  return float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))


@pytest.mark.parametrize('num_layers', [18, 34, 50])
def test_parameter_counts_are_torchvisions_and_smps(num_layers):
  reference = torch_resnet.resnet(num_layers)
  assert sum(p.numel() for p in reference.parameters()) == TORCHVISION_PARAMS[num_layers]
  assert models.parameter_count(ResNet(num_layers=num_layers),
                                (1, 224, 224, 3)) == TORCHVISION_PARAMS[num_layers]
  assert models.parameter_count(ResNetUNet(num_layers=num_layers),
                                (1, 64, 64, 3)) == SMP_UNET_PARAMS[num_layers]


def smp_decoder_parameters(encoder, decoder=(256, 128, 64, 32, 16), classes=1):
  """smp's UnetDecoder + SegmentationHead, counted from their definition:
  each block conv3x3(in + skip -> out) and conv3x3(out -> out), no bias, each
  with a batch norm (2 x out parameters); the head a 3x3 convolution."""
  skips = list(encoder[-2::-1]) + [0]
  ins = [encoder[-1]] + list(decoder[:-1])
  blocks = sum(9 * (i + s) * o + 2 * o + 9 * o * o + 2 * o
               for i, s, o in zip(ins, skips, decoder))
  return blocks + 9 * decoder[-1] * classes + classes


def test_smp_counts_are_the_encoder_plus_smps_decoder():
  from unetjax.models.resnet import encoder_channels
  for num_layers, total in SMP_UNET_PARAMS.items():
    channels = encoder_channels(num_layers)
    fc = channels[-1] * 1000 + 1000
    assert (TORCHVISION_PARAMS[num_layers] - fc
            + smp_decoder_parameters(channels)) == total


@pytest.mark.parametrize('num_layers', [18, 34, pytest.param(50, marks=pytest.mark.slow)])
def test_classifier_gives_torchvisions_logits(tmp_path, num_layers):
  net = random_torch_resnet(num_layers)
  path = save_state_dict(net, tmp_path / 'resnet.pth')
  # An odd size, so that padding differences at stride 2 would show.
  images = np.random.default_rng(0).normal(size=(2, 3, 61, 75)).astype(np.float32)
  with torch.no_grad():
    expected = net(torch.from_numpy(images)).numpy()
  model = ResNet(num_layers=num_layers)
  variables = with_weights(model, path, (1, 61, 75, 3))
  logits = jax.jit(model.apply)(variables, images.transpose(0, 2, 3, 1))
  assert relative_error(np.asarray(logits), expected) < 1e-4


@pytest.mark.slow
def test_resnet34_unet_encoder_gives_torchvisions_features(tmp_path):
  net = random_torch_resnet(34)
  path = save_state_dict(net, tmp_path / 'resnet34.pth')
  images = np.random.default_rng(1).normal(size=(2, 3, 64, 96)).astype(np.float32)
  with torch.no_grad():
    expected = [f.numpy().transpose(0, 2, 3, 1)
                for f in net.features(torch.from_numpy(images))]
  model = ResNetUNet(num_layers=34, n_classes=2)
  variables = with_weights(model, path, (1, 64, 96, 3))
  encoder = ResNetEncoder(num_layers=34)
  features = jax.jit(encoder.apply)(
      {'params': variables['params']['encoder'],
       'batch_stats': variables['batch_stats']['encoder']},
      images.transpose(0, 2, 3, 1))
  assert [f.shape for f in features] == [e.shape for e in expected]
  for ours, theirs in zip(features, expected):
    assert relative_error(np.asarray(ours), theirs) < 1e-4
  # The decoder keeps its own initialisation; the full model runs.
  logits = model.apply(variables, images.transpose(0, 2, 3, 1))
  assert logits.shape == (2, 64, 96, 2)


def test_train_state_starts_from_the_files_weights(tmp_path):
  net = random_torch_resnet(18, num_classes=5)
  path = save_state_dict(net, tmp_path / 'resnet18.pth')
  config = ml_collections.ConfigDict(dict(name='resnet_unet', num_layers=18,
                                          n_classes=1, pretrained=path))
  model = models.get_model(config)
  pretrained = models.pretrained_variables(config, model, (64, 64, 3))
  import optax
  state = state_lib.init_train_state(jax.random.key(0), model, optax.adam(1e-3),
                                     (64, 64, 3), pretrained=pretrained)
  kernel = state.params['encoder']['layer2_0']['Conv_2']['kernel']  # downsample.0
  np.testing.assert_array_equal(
      kernel, net.layer2[0].downsample[0].weight.detach().numpy().transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(
      state.batch_stats['encoder']['BatchNorm_0']['var'],
      net.bn1.running_var.numpy())
  assert 'fc' not in pretrained['params']  # a U-Net has no classifier head


def test_classifier_takes_fc_only_when_the_class_count_matches(tmp_path):
  path = save_state_dict(random_torch_resnet(18, num_classes=5), tmp_path / 'r.pth')
  shapes = lambda n: models.variable_shapes(ResNet(num_layers=18, n_classes=n),
                                            (1, 32, 32, 3))
  assert 'fc' in torchvision_weights.pretrained_variables(path, 18, shapes(5))['params']
  assert 'fc' not in torchvision_weights.pretrained_variables(path, 18, shapes(3))['params']


def test_files_that_do_not_fit_stop_with_one_message(tmp_path):
  shapes34 = models.variable_shapes(ResNetUNet(num_layers=34), (1, 64, 64, 3))
  resnet50 = save_state_dict(random_torch_resnet(50), tmp_path / 'resnet50.pth')
  with pytest.raises(ConfigError, match='weights of a ResNet-50, but '
                     'config.model.num_layers=34: set num_layers=50'):
    torchvision_weights.pretrained_variables(resnet50, 34, shapes34)

  state_dict = random_torch_resnet(34).state_dict()
  del state_dict['layer4.2.bn2.running_var'], state_dict['conv1.weight']
  torch.save(state_dict, tmp_path / 'partial.pth')
  with pytest.raises(ConfigError, match=r'lacks 2 of the .* ResNet-34 encoder '
                     'tensors, e.g. conv1.weight, layer4.2.bn2.running_var'):
    torchvision_weights.pretrained_variables(str(tmp_path / 'partial.pth'), 34,
                                             shapes34)

  state_dict = random_torch_resnet(34).state_dict()
  state_dict['decoder.block.weight'] = torch.zeros(3)
  torch.save(state_dict, tmp_path / 'extra.pth')
  with pytest.raises(ConfigError, match='not a torchvision ResNet state_dict'):
    torchvision_weights.pretrained_variables(str(tmp_path / 'extra.pth'), 34,
                                             shapes34)

  (tmp_path / 'text.pth').write_text('not a checkpoint')
  with pytest.raises(ConfigError, match='not a PyTorch state_dict file'):
    torchvision_weights.pretrained_variables(str(tmp_path / 'text.pth'), 34,
                                             shapes34)
  with pytest.raises(ConfigError, match='is not a file'):
    torchvision_weights.pretrained_variables(str(tmp_path / 'none.pth'), 34,
                                             shapes34)

  resnet34 = save_state_dict(random_torch_resnet(34), tmp_path / 'resnet34.pth')
  grey = models.variable_shapes(ResNetUNet(num_layers=34), (1, 64, 64, 1))
  with pytest.raises(ConfigError, match="3 input channels"):
    torchvision_weights.pretrained_variables(resnet34, 34, grey)
  group = models.variable_shapes(ResNetUNet(num_layers=34, norm='group'),
                                 (1, 64, 64, 3))
  with pytest.raises(ConfigError, match="norm='batch'"):
    torchvision_weights.pretrained_variables(resnet34, 34, group)

  with pytest.raises(ConfigError, match="'unet' has no ResNet encoder"):
    models.get_model(ml_collections.ConfigDict(dict(name='unet',
                                                    pretrained=resnet34)))


def test_training_command_refuses_a_wrong_file_before_writing(tmp_path, tfds_dir):
  resnet18 = save_state_dict(random_torch_resnet(18), tmp_path / 'resnet18.pth')
  workdir = tmp_path / 'run'
  result = subprocess.run(
      [sys.executable, '-m', 'unetjax.main', '--config=configs/resnet_unet.py',
       f'--workdir={workdir}', f'--config.model.pretrained={resnet18}',
       f"--config.dataset.data_dir={tfds_dir}"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  assert result.returncode == 1, result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and 'ResNet-18, but config.model.num_layers=34' in errors[0]
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


def test_config_file_defaults_match_smp():
  config = resnet_unet_config.get_config()
  model = models.get_model(config.model)
  assert models.parameter_count(model.clone(n_classes=1), (1, 64, 64, 3)) == \
      SMP_UNET_PARAMS[34]
  assert config.model.pretrained == ''


@pytest.mark.slow
def test_a_frozen_encoder_keeps_its_weights_for_the_given_steps():
  import optax
  config = resnet_unet_config.get_config()
  config.optimizer.name, config.optimizer.weight_decay = 'adamw', 0.1
  config.optimizer.schedule = 'constant'  # no warm-up: step 1 moves
  model = ResNetUNet(num_layers=18, base_filters=4,
                     decoder_channels=(8, 8, 4, 4, 4))
  tx, _ = optimizers.optimizer_and_schedule(config.optimizer, 10,
                                           freeze_encoder_steps=2)
  state = state_lib.init_train_state(jax.random.key(0), model, tx, (32, 32, 3))
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 3))
  labels = (images[..., 0] > 0.5).astype(np.int32)

  @jax.jit
  def step(state):
    def loss(params):
      logits, updates = model.apply(
          {'params': params, 'batch_stats': state.batch_stats}, images,
          train=True, mutable=['batch_stats'])
      return optax.sigmoid_binary_cross_entropy(logits[..., 0], labels).mean()
    return state.apply_gradients(grads=jax.grad(loss)(state.params))

  history = [state.params]
  for _ in range(3):
    state = step(state)
    history.append(state.params)
  same = lambda a, b: all(np.array_equal(x, y) for x, y in
                          zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  encoder = [p['encoder'] for p in history]
  decoder = [{k: v for k, v in p.items() if k != 'encoder'} for p in history]
  assert same(encoder[0], encoder[1]) and same(encoder[0], encoder[2])
  assert not same(encoder[2], encoder[3])  # step 3 trains it
  assert not same(decoder[0], decoder[1])  # the decoder learns from step 1
  with pytest.raises(ConfigError, match="'unet' has no ResNet encoder"):
    models.get_model(ml_collections.ConfigDict(dict(name='unet',
                                                    freeze_encoder_steps=5)))
  with pytest.raises(ConfigError, match='freeze_encoder_steps=-1'):
    models.get_model(ml_collections.ConfigDict(dict(name='resnet_unet',
                                                    freeze_encoder_steps=-1)))
