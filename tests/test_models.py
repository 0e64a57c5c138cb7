import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from unetjax import models
from unetjax.models import layers
from unetjax.errors import ConfigError, InputShapeError
from unetjax.models.unet import UNet


def n_params(model, shape):
  variables = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape)))
  return sum(x.size for x in jax.tree.leaves(variables['params']))


@pytest.mark.parametrize('kwargs, shape, n_out', [
    (dict(n_classes=1, base_filters=8, depth=4), (2, 64, 64, 1), 1),
    (dict(n_classes=3, base_filters=8, depth=3), (1, 48, 32, 3), 3),
    (dict(n_classes=2, base_filters=4, depth=2, upsample='bilinear'),
     (3, 20, 28, 1), 2),
    (dict(n_classes=1, base_filters=4, depth=1, norm='none'),
     (1, 6, 10, 2), 1),
])
def test_output_shape_is_input_size_with_one_logit_per_class(kwargs, shape, n_out):
  model = UNet(**kwargs)
  x = jax.random.uniform(jax.random.key(1), shape)
  variables = models.initialize(model, jax.random.key(0), shape)
  logits = jax.jit(model.apply)(variables, x)
  assert logits.shape == shape[:3] + (n_out,)
  assert logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize('kwargs, shape, published', [
    # Ronneberger et al. 2015: widths 64..1024, 1 input channel, 2 classes.
    (dict(n_classes=2, base_filters=64), (1, 64, 64, 1), 31_030_000),
    # U-Net of the UNet++ paper (Zhou et al. 2018), widths 32..512: 7.76M.
    (dict(n_classes=1, base_filters=32), (1, 64, 64, 1), 7_760_000),
])
def test_parameter_count_matches_published(kwargs, shape, published):
  count = n_params(UNet(depth=4, norm='none', **kwargs), shape)
  assert abs(count - published) < 5_000, count


def test_batch_norm_replaces_conv_bias_and_adds_running_stats():
  shape = (1, 32, 32, 1)
  with_bn = models.initialize(UNet(base_filters=8, depth=2, norm='batch'),
                              jax.random.key(0), shape)
  without = models.initialize(UNet(base_filters=8, depth=2, norm='none'),
                              jax.random.key(0), shape)
  assert 'batch_stats' in with_bn and 'batch_stats' not in without
  flat = flax.traverse_util.flatten_dict(with_bn['params'])
  block_biases = [p for p in flat if p[0].startswith('ConvBlock') and p[-1] == 'bias'
                  and p[1].startswith('Conv_')]
  assert not block_biases


def test_dropout_is_random_in_training_and_off_in_evaluation():
  model = UNet(base_filters=4, depth=2, dropout_rates=0.5, norm='none')
  x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 1))
  variables = models.initialize(model, jax.random.key(0), x.shape)
  apply = jax.jit(model.apply, static_argnames='train')
  eval_a, eval_b = apply(variables, x), apply(variables, x)
  np.testing.assert_array_equal(eval_a, eval_b)
  train_a = apply(variables, x, train=True, rngs={'dropout': jax.random.key(2)})
  train_b = apply(variables, x, train=True, rngs={'dropout': jax.random.key(3)})
  assert not np.allclose(train_a, train_b)
  assert not np.allclose(train_a, eval_a)


def test_batch_norm_uses_batch_statistics_in_training_and_updates_them():
  model = UNet(base_filters=4, depth=2)
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1))
  variables = models.initialize(model, jax.random.key(0), x.shape)
  _, updates = jax.jit(lambda v: model.apply(v, x, train=True,
                                             mutable=['batch_stats']))(variables)
  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updates['batch_stats'])
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


def test_bfloat16_compute_keeps_float32_params_and_logits():
  model = UNet(base_filters=8, depth=3, dtype=jnp.bfloat16)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  variables = models.initialize(model, jax.random.key(0), x.shape)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables['params']))
  logits = jax.jit(model.apply)(variables, x)
  assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
  reference = jax.jit(UNet(base_filters=8, depth=3).apply)(variables, x)
  np.testing.assert_allclose(logits, reference, atol=0.1)


def test_per_level_dropout_needs_one_rate_per_level():
  shape = (1, 16, 16, 1)
  n_params(UNet(depth=2, dropout_rates=(0.1, 0.2, 0.3)), shape)
  with pytest.raises(ConfigError, match='needs 3'):
    n_params(UNet(depth=2, dropout_rates=(0.1, 0.2)), shape)


def test_level_filters_set_each_levels_channels():
  shape = (1, 32, 32, 3)
  variables = jax.eval_shape(lambda: UNet(
      depth=2, base_filters=99, level_filters=(4, 4, 8)).init(
          jax.random.key(0), jnp.zeros(shape)))
  # A level's first 3x3 convolution: (3, 3, in, out); level 1 keeps 4.
  kernels = {k: v['Conv_0']['kernel'].shape
             for k, v in variables['params'].items() if k.startswith('ConvBlock')}
  assert [k[-1] for k in kernels.values()][:3] == [4, 4, 8]
  # The slim plan has fewer parameters than doubling from the same width.
  assert n_params(UNet(depth=2, level_filters=(4, 4, 8)), shape) < n_params(
      UNet(depth=2, base_filters=4), shape)
  with pytest.raises(ConfigError, match='holds 2 widths; UNet at depth 2 has 3'):
    n_params(UNet(depth=2, level_filters=(4, 8)), shape)
  with pytest.raises(ConfigError, match='whole numbers >= 1'):
    models.get_model(ConfigDict(dict(name='unet', depth=2, level_filters=(4, 0, 8))))
  with pytest.raises(ConfigError, match='takes its widths from its encoder'):
    models.get_model(ConfigDict(dict(name='resnet_unet', level_filters=(4,) * 6))
                     ).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def _init_and_apply(name, fields, shape=(2, 32, 32, 3)):
  model = models.get_model(ConfigDict(dict(name=name, **fields)))
  variables = model.init(jax.random.key(0), jnp.zeros(shape))
  images = jax.random.normal(jax.random.key(1), shape)
  return variables, model.apply(variables, images)


@pytest.mark.parametrize('name', sorted(models.tiny_settings()))
def test_the_default_activation_and_kernel_init_leave_every_model_unchanged(name):
  fields = dict(models.tiny_settings()[name], norm='instance')
  implicit = _init_and_apply(name, fields)
  explicit = _init_and_apply(
      name, dict(fields, activation='relu', kernel_init='lecun_normal'))
  assert jax.tree.structure(implicit) == jax.tree.structure(explicit)
  for a, b in zip(jax.tree.leaves(implicit), jax.tree.leaves(explicit)):
    np.testing.assert_array_equal(a, b)


def test_the_defaults_are_flax_relu_and_flax_initialisation():
  assert layers.activation_fn('relu') is flax.linen.relu
  key, shape = jax.random.key(3), (3, 3, 16, 32)
  flax_default = flax.linen.linear.default_kernel_init(key, shape)
  for transposed in (False, True):  # UpConvolution asks with transposed=True
    np.testing.assert_array_equal(
        layers.kernel_initializer('lecun_normal', transposed)(key, shape),
        flax_default)


def test_leaky_relu_passes_negative_inputs_scaled_by_dynunets_slope():
  assert layers.LEAKY_RELU_SLOPE == 0.01
  x = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(layers.activation_fn('leaky_relu')(x),
                             [-0.02, 0.0, 3.0], rtol=1e-6)
  # In a block: two 1x1-like convolutions (only the centre tap) with a bias
  # that makes every pre-activation negative.
  block = layers.ConvBlock(1, norm='none', activation='leaky_relu')
  images = jax.random.uniform(jax.random.key(0), (1, 8, 8, 1))
  variables = block.init(jax.random.key(0), images, train=False)
  centre = jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0)
  params = {'Conv_0': {'kernel': centre, 'bias': jnp.array([-5.0])},
            'Conv_1': {'kernel': centre, 'bias': jnp.array([0.0])}}
  variables = {'params': params}
  out = block.apply(variables, images, train=False)
  np.testing.assert_allclose(out, 0.01**2 * (images - 5.0), rtol=1e-5)
  relu_out = layers.ConvBlock(1, norm='none').apply(variables, images, train=False)
  np.testing.assert_array_equal(relu_out, jnp.zeros_like(images))


def test_kaiming_normal_is_dynunets_initialisation():
  """torch.nn.init.kaiming_normal_(w, a=0.01): an untruncated normal of std
  sqrt(2 / (1 + 0.01**2) / fan_in); a transposed convolution's fan-in
  counts its output channels, as PyTorch's does."""
  gain = (2 / (1 + 0.01**2))**0.5
  variables, _ = _init_and_apply(
      'unet', dict(depth=2, base_filters=32, kernel_init='kaiming_normal'))
  params = variables['params']
  conv = params['ConvBlock_1']['Conv_1']['kernel']  # (3, 3, 64, 64)
  up = params['Upsample_0']['ConvTranspose_0']['kernel']  # (2, 2, 128, 64)
  head = params['Conv_0']['kernel']  # (1, 1, 32, 1): the logits
  for kernel, fan_in in ((conv, 9 * 64), (up, 4 * 64), (head, 32)):
    expected = gain / fan_in**0.5
    tolerance = 0.02 if kernel.size > 10_000 else 0.4
    assert abs(float(jnp.std(kernel)) / expected - 1) < tolerance, (kernel.shape,)
  # Untruncated: a normal has 1.2% of its values beyond 2.5 std (flax's
  # truncated normals none beyond 2).
  expected = gain / (9 * 64)**0.5
  assert 0.008 < float(jnp.mean(jnp.abs(conv) > 2.5 * expected)) < 0.016
  # flax's default for the same kernel: std sqrt(1 / fan_in).
  lecun, _ = _init_and_apply('unet', dict(depth=2, base_filters=32))
  lecun_std = float(jnp.std(lecun['params']['ConvBlock_1']['Conv_1']['kernel']))
  assert abs(lecun_std * (9 * 64)**0.5 - 1) < 0.02


@pytest.mark.parametrize('name', ['unet', 'resunet_pp', 'unet3p', 'attention_unet'])
def test_the_activation_reaches_every_relu_of_the_model(name):
  fields = dict(models.tiny_settings()[name], norm='instance')
  _, relu = _init_and_apply(name, fields)
  _, leaky = _init_and_apply(name, dict(fields, activation='leaky_relu'))
  assert not np.allclose(relu, leaky)


@pytest.mark.parametrize('field, value', [('activation', 'gelu'),
                                          ('kernel_init', 'he_uniform'),
                                          ('activation', 1)])
def test_an_unknown_activation_or_kernel_init_is_one_config_error(field, value):
  with pytest.raises(ConfigError, match=f'config.model.{field}={value!r} must '
                     'be one of'):
    models.get_model(ConfigDict(dict(name='unet', **{field: value})))
  with pytest.raises(ConfigError, match=f'config.model.{field}'):
    n_params(UNet(depth=1, **{field: value}), (1, 8, 8, 1))


def test_resnet_unet_refuses_leaky_relu_and_takes_kaiming_normal():
  shape = (1, 32, 32, 3)
  fields = dict(name='resnet_unet', num_layers=18, base_filters=8,
                decoder_channels=(16, 8, 8, 8, 8))
  with pytest.raises(ConfigError, match="config.model.activation='leaky_relu'"):
    jax.eval_shape(lambda: models.get_model(ConfigDict(dict(
        fields, activation='leaky_relu'))).init(jax.random.key(0), jnp.zeros(shape)))
  model = models.get_model(ConfigDict(dict(fields, kernel_init='kaiming_normal')))
  stem = model.init(jax.random.key(0), jnp.zeros(shape))['params']['encoder'][
      'stem_conv']['kernel']  # (7, 7, 3, 8): fan-in 147
  assert abs(float(jnp.std(stem)) * (147 / 2)**0.5 - 1) < 0.1


@pytest.mark.parametrize('shape', [(1, 60, 64, 1), (1, 64, 36, 1)])
def test_size_not_divisible_by_two_to_the_depth_is_a_clear_error(shape):
  with pytest.raises(InputShapeError, match=r'divisible by 2\*\*depth = 16'):
    n_params(UNet(depth=4), shape)


def test_registry_builds_unet_and_rejects_unknown_names_and_fields():
  config = ConfigDict(dict(name='unet', n_classes=1, base_filters=8, depth=2))
  model = models.get_model(config, dtype='bfloat16')
  assert isinstance(model, UNet) and model.dtype == jnp.bfloat16
  with pytest.raises(ConfigError, match="Unknown model 'unett'.*unet"):
    models.get_model(ConfigDict(dict(name='unett')))
  config.width = 3
  with pytest.raises(ConfigError, match='no field.*width'):
    models.get_model(config)
  with pytest.raises(ConfigError, match="upsample mode 'bicubic'"):
    n_params(UNet(depth=1, upsample='bicubic'), (1, 8, 8, 1))


def test_max_pool_matches_flax_in_values_and_gradient():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 8, 6, 3)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(2, 4, 3, 3)), jnp.float32)
  reference = lambda x: flax.linen.max_pool(x, (2, 2), strides=(2, 2))
  np.testing.assert_array_equal(layers.max_pool_2x2(x), reference(x))
  ours = jax.vjp(layers.max_pool_2x2, x)[1](g)[0]
  np.testing.assert_array_equal(ours, jax.vjp(reference, x)[1](g)[0])


def test_max_pool_shares_the_gradient_between_equal_maxima():
  x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 1, 0].set(-1.0)  # three tied maxima
  grad = jax.grad(lambda x: jnp.sum(layers.max_pool_2x2(x)) * 6)(x)
  np.testing.assert_allclose(grad[0, :, :, 0], [[2, 2], [2, 0]])


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16])
def test_up_convolution_is_flax_conv_transpose(dtype):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 5, 6)), jnp.float32)
  reference = flax.linen.ConvTranspose(4, (2, 2), strides=(2, 2), dtype=dtype)
  ours = layers.UpConvolution(4, dtype=dtype)
  variables = reference.init(jax.random.key(0), x)
  assert (jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x))
          == jax.tree.map(jnp.shape, variables))
  np.testing.assert_array_equal(ours.apply(variables, x), reference.apply(variables, x))


@pytest.mark.parametrize('channels,groups', [(64, 32), (48, 16), (20, 4)])
def test_group_norm_is_torchs_group_norm(channels, groups):
  """Per image, over `groups` groups of channels (gcd(32, channels)), with the
  learned scale and offset per channel; the same in training and evaluation."""
  torch = pytest.importorskip('torch')

  class Norm(flax.linen.Module):
    @flax.linen.compact
    def __call__(self, x, train):
      return layers.normalization('group', train)(x)

  rng = np.random.default_rng(0)
  x = (rng.standard_normal((2, 5, 6, channels)) * 3 + 1).astype(np.float32)
  variables = Norm().init(jax.random.key(0), x, True)
  scale = rng.standard_normal(channels).astype(np.float32)
  bias = rng.standard_normal(channels).astype(np.float32)
  params = {'params': {'GroupNorm_0': {'scale': scale, 'bias': bias}}}
  assert jax.tree.structure(params) == jax.tree.structure(variables)
  expected = torch.nn.functional.group_norm(
      torch.from_numpy(x).permute(0, 3, 1, 2), groups, torch.from_numpy(scale),
      torch.from_numpy(bias), eps=1e-6).permute(0, 2, 3, 1).numpy()
  for train in (True, False):
    np.testing.assert_allclose(Norm().apply(params, x, train), expected,
                               rtol=1e-4, atol=1e-5)
