"""Every registered architecture against the model contract, plus the
published parameter counts of the papers they come from.

Models are tiny here (widths from 4, 32x32 inputs) so that a test compiles
in seconds on a CPU; published counts are checked with jax.eval_shape, which
traces the full-size models without computing anything.
"""

import argparse
import functools
import re

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from unetjax import losses, models
from unetjax.errors import ConfigError, InputShapeError
from unetjax.models import layers
from unetjax.models import (AttentionUNet, FCN8s, ResNet, ResNetUNet, ResUNet,
                            ResUNetPlusPlus, UNet, UNet3Plus, UNetPlusPlus)

# Small versions of every segmentation model, with dropout and batch norm:
# (class, fields, downsampling).
# name -> (class, tiny fields, the side every input must divide: 2**depth),
# from the registry and each model's TINY.
TINY = {name: (models.MODELS[name], fields, 2**fields['depth'])
        for name, fields in models.tiny_settings().items()}
DROPOUT = 0.1
NAMES = list(TINY)

# The tests run tiny programs a few times, so XLA's CPU code optimisation
# costs more time than it saves (compiles take half as long without it).
jit = functools.partial(jax.jit, compiler_options=models.init_compiler_options())


def tiny(name, **overrides):
  cls, fields, _ = TINY[name]
  return cls(**{**fields, 'dropout_rates': DROPOUT, **overrides})


@functools.cache
def tiny_variables(name, n_classes=1, channels=1):
  """Initialised variables of tiny(name), shared by the tests: they depend on
  the classes and input channels, not on image size, dropout or dtype."""
  return models.initialize(tiny(name, n_classes=n_classes), jax.random.key(0),
                           (1, 16, 16, channels))


@functools.cache
def tiny_apply(name, n_classes=1):
  """tiny(name).apply in evaluation mode, compiled once per input shape."""
  return jit(tiny(name, n_classes=n_classes).apply)


def variable_count(variables, collection):
  return sum(x.size for x in jax.tree.leaves(variables.get(collection, {})))


def shapes(model, input_shape):
  return models.variable_shapes(model, input_shape)


def discs(n_images, size, seed=0):
  """Noisy greyscale images of bright discs and their binary masks: a task
  a model can overfit in a few steps."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[:size, :size]
  labels = np.zeros((n_images, size, size), np.int32)
  for i in range(n_images):
    cy, cx = rng.uniform(size * 0.3, size * 0.7, 2)
    labels[i][np.hypot(yy - cy, xx - cx) < rng.uniform(size * 0.15, size * 0.3)] = 1
  images = labels + 0.2 * rng.normal(size=labels.shape)
  return jnp.asarray(images[..., None], jnp.float32), jnp.asarray(labels)


def first_output(outputs):
  return outputs[0] if isinstance(outputs, tuple) else outputs


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('input_shape, n_classes', [((2, 32, 32, 1), 1),
                                                    ((1, 16, 48, 3), 3)])
def test_logits_have_the_input_size_and_one_float32_channel_per_class(
    name, input_shape, n_classes):
  variables = tiny_variables(name, n_classes, input_shape[-1])
  images = jax.random.uniform(jax.random.key(1), input_shape)
  logits = tiny_apply(name, n_classes)(variables, images)
  assert logits.shape == input_shape[:3] + (n_classes,)
  assert logits.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(logits)))


@pytest.mark.parametrize('name', NAMES)
def test_dropout_and_batch_norm_act_only_in_training(name):
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  variables = tiny_variables(name)
  model = tiny(name)
  evaluate = tiny_apply(name)
  np.testing.assert_array_equal(evaluate(variables, images),
                                evaluate(variables, images))
  train = jit(lambda rng: model.apply(
      variables, images, train=True, rngs={'dropout': rng},
      mutable=['batch_stats']))
  train_a, updates = train(jax.random.key(2))
  train_b, _ = train(jax.random.key(3))
  assert not np.allclose(first_output(train_a), first_output(train_b))

  before = jax.tree.leaves(variables['batch_stats'])
  after = jax.tree.leaves(updates['batch_stats'])
  assert before and len(before) == len(after)
  assert any(not np.allclose(a, b) for a, b in zip(before, after))


@pytest.mark.parametrize('name', NAMES)
def test_bfloat16_forward_is_finite_with_float32_params_and_logits(name):
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  variables = tiny_variables(name)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables['params']))
  logits = jit(tiny(name, dtype=jnp.bfloat16).apply)(variables, images)
  assert logits.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(logits)))
  reference = tiny_apply(name)(variables, images)
  assert np.corrcoef(np.ravel(logits), np.ravel(reference))[0, 1] > 0.99


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.slow
def test_gradient_reaches_every_parameter_and_adam_overfits_a_tiny_batch(name):
  model = tiny(name)
  images, labels = discs(4, 32)
  variables = tiny_variables(name)
  tx = optax.adam(1e-2)

  def loss_fn(params, batch_stats, rng):
    outputs, updates = model.apply(
        {'params': params, 'batch_stats': batch_stats}, images, train=True,
        rngs={'dropout': rng}, mutable=['batch_stats'])
    loss = losses.deep_supervision_loss(losses.cross_entropy_dice, outputs,
                                        labels)
    return loss, updates['batch_stats']

  @jit
  def step(params, batch_stats, opt_state, rng):
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, batch_stats, rng)
    updates, opt_state = tx.update(grads, opt_state)
    return (optax.apply_updates(params, updates), batch_stats, opt_state, loss,
            grads)

  params, batch_stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)
  history = []
  for i in range(40):
    params, batch_stats, opt_state, loss, grads = step(
        params, batch_stats, opt_state, jax.random.key(i))
    history.append(float(loss))
    if i == 0:
      flat = flax.traverse_util.flatten_dict(grads)
      dead = ['/'.join(path) for path, g in flat.items() if not np.any(g != 0)]
      assert not dead, f'no gradient reaches {dead}'
  assert np.all(np.isfinite(history))
  assert history[-1] < 0.5 * history[0], history


@pytest.mark.parametrize('name', NAMES)
def test_a_size_the_model_cannot_take_is_a_clear_error(name):
  factor = TINY[name][2]
  model = tiny(name)
  shapes(model, (1, 2 * factor, 3 * factor, 1))  # fine
  message = rf'{2 * factor + 2}x{3 * factor}.*divisible by 2\*\*depth = {factor}'
  with pytest.raises(InputShapeError, match=message):
    shapes(model, (1, 2 * factor + 2, 3 * factor, 1))
  with pytest.raises(InputShapeError, match='batch, height, width, channels'):
    shapes(model, (2 * factor, 2 * factor, 1))


@pytest.mark.parametrize('name', NAMES)
def test_group_norm_and_no_norm_variants_run_without_batch_statistics(name):
  images = jax.random.uniform(jax.random.key(1), (1, 32, 32, 1))
  for norm in ('group', 'instance', 'none'):
    model = tiny(name, norm=norm)
    variables = shapes(model, images.shape)
    assert 'batch_stats' not in variables
  with pytest.raises(ConfigError, match="Unknown norm 'layer'"):
    shapes(tiny(name, norm='layer'), images.shape)


def test_instance_norm_standardises_each_channel_of_each_image():
  x = np.random.default_rng(0).normal(3.0, 2.0, (2, 8, 8, 6)).astype(np.float32)
  x[1] *= 10.0  # a brighter image must not change the other's output
  norm = nn.GroupNorm(num_groups=6)  # what layers.normalization builds
  module = type('Norm', (nn.Module,), {'__call__': nn.compact(
      lambda self, v: layers.normalization('instance', train=True)(v))})()
  variables = module.init(jax.random.key(0), x)
  y = np.asarray(module.apply(variables, x))
  mean = x.mean(axis=(1, 2), keepdims=True)
  std = np.sqrt(x.var(axis=(1, 2), keepdims=True) + norm.epsilon)
  np.testing.assert_allclose(y, (x - mean) / std, atol=1e-4)
  assert 'batch_stats' not in variables


def test_registry_builds_every_model_from_its_config_fields():
  for name, (cls, fields, _) in TINY.items():
    model = models.get_model(ConfigDict(dict(name=name, **fields)), 'bfloat16')
    assert type(model) is cls and model.dtype == jnp.bfloat16
  # resnet_unet downsamples 5 times, more than the tiny sizes allow: its
  # own test below, and tests/test_torchvision_weights.py.
  assert set(models.MODELS) == set(TINY) | {'resnet_unet'}


def test_resnet_unet_takes_sizes_norms_dropout_and_dtypes_like_the_others():
  fields = dict(name='resnet_unet', num_layers=18, base_filters=4,
                decoder_channels=(16, 8, 8, 4, 4), dropout_rates=0.3)
  model = models.get_model(ConfigDict(fields), 'bfloat16')
  assert isinstance(model, ResNetUNet)
  variables = shapes(model, (1, 64, 96, 1))
  images = jax.random.uniform(jax.random.key(0), (2, 64, 96, 1))
  full = models.get_model(ConfigDict(fields))
  variables = models.initialize(full, jax.random.key(0), images.shape)
  evaluated = jit(full.apply)(variables, images)
  assert evaluated.shape == (2, 64, 96, 1) and evaluated.dtype == jnp.float32
  trained, _ = full.apply(variables, images, train=True, mutable=['batch_stats'],
                          rngs={'dropout': jax.random.key(1)})
  assert not np.allclose(trained, evaluated)  # dropout and batch statistics
  with pytest.raises(InputShapeError, match='divisible by 2\\*\\*depth = 32'):
    shapes(model, (1, 48, 96, 1))
  for norm in ('group', 'none'):
    assert 'batch_stats' not in shapes(model.clone(norm=norm), (1, 32, 32, 1))
  with pytest.raises(ConfigError, match='depth must be 5'):
    shapes(model.clone(depth=4), (1, 32, 32, 1))


def test_registry_names_each_models_task():
  config = ConfigDict(dict(name='resnet', n_classes=10, num_layers=18))
  assert models.task('resnet') == 'classification'
  assert models.task('unet') == 'segmentation'
  assert isinstance(models.get_model(config), ResNet)
  with pytest.raises(ConfigError, match="Unknown model 'vgg'.*resnet"):
    models.get_model(ConfigDict(dict(name='vgg')))


# --- UNet++: nested pathways, deep supervision, pruning. ---


def test_unet_pp_trains_every_head_and_evaluates_their_mean():
  model = UNetPlusPlus(base_filters=4, depth=3, norm='none')
  images = jax.random.uniform(jax.random.key(1), (2, 32, 32, 1))
  variables = models.initialize(model, jax.random.key(0), images.shape)
  heads = jit(functools.partial(model.apply, train=True))(variables, images)
  assert isinstance(heads, tuple) and len(heads) == 3
  assert all(h.shape == (2, 32, 32, 1) for h in heads)
  # Without dropout and batch norm, training and evaluation compute the same
  # nodes, so evaluation is exactly the mean of the training heads.
  mean = jit(model.apply)(variables, images)
  np.testing.assert_allclose(mean, sum(heads) / 3, rtol=1e-5, atol=1e-5)
  for head in (1, 2, 3):
    pruned = model.clone(eval_head=head)
    np.testing.assert_allclose(jit(pruned.apply)(variables, images),
                               heads[head - 1], rtol=1e-5, atol=1e-5)


def test_unet_pp_pruned_to_depth_one_computes_far_less():
  shape = (1, 64, 64, 1)
  full = UNetPlusPlus(base_filters=8, depth=4)
  pruned = full.clone(eval_head=1)
  # X^{0,0}, X^{1,0}, X^{0,1} of the 15 nodes, all but one at full resolution.
  assert models.forward_flops(pruned, shape) < 0.3 * models.forward_flops(full, shape)
  # Pruning is an inference choice: the same parameters either way.
  assert models.parameter_count(pruned, shape) == models.parameter_count(full, shape)


def test_unet_pp_without_deep_supervision_has_one_head():
  model = UNetPlusPlus(base_filters=4, depth=2, deep_supervision=False)
  variables = shapes(model, (1, 16, 16, 1))
  assert [k for k in variables['params'] if k.startswith('head')] == ['head_2']
  out = jax.eval_shape(functools.partial(model.apply, train=True,
                                         mutable=['batch_stats']),
                       variables, jnp.zeros((1, 16, 16, 1)))[0]
  assert not isinstance(out, tuple)


@pytest.mark.parametrize('fields, message', [
    (dict(eval_head=3), 'a head 1..depth=2'),
    (dict(eval_head=-1), 'a head 1..depth=2'),
    (dict(eval_head=1, deep_supervision=False), 'deep_supervision=True'),
])
def test_unet_pp_rejects_heads_it_cannot_evaluate(fields, message):
  with pytest.raises(ConfigError, match=message):
    shapes(UNetPlusPlus(base_filters=4, depth=2, **fields), (1, 16, 16, 1))


def unet3p_parameters(channels, base, depth, classes, deep_supervision=True,
                      guided=True):
  """UNet 3+ counted from its definition (batch norm, convolutions without
  bias): the U-Net encoder; per decoder level depth + 1 branches (3x3 conv
  to `base` channels from each scale's encoder or decoder features) and a
  3x3 fusion of (depth + 1) * base channels; 3x3 heads; the guide's 1x1."""
  widths = [base * 2**level for level in range(depth + 1)]
  conv = lambda cin, cout, k=3: k * k * cin * cout
  total, cin = 0, channels
  for w in widths:  # ConvBlock: two convolutions, each with a norm (2w)
    total += conv(cin, w) + 2 * w + conv(w, w) + 2 * w
    cin = w
  fused = (depth + 1) * base
  for level in range(depth):
    for source in range(depth + 1):
      width = widths[source] if source <= level or source == depth else fused
      total += conv(width, base) + 2 * base
    total += conv(fused, fused) + 2 * fused
  heads = [fused] * depth + [widths[-1]] if deep_supervision else [fused]
  total += sum(conv(h, classes) + classes for h in heads)
  return total + (widths[-1] + 1 if guided else 0)


@pytest.mark.parametrize('fields', [
    dict(base_filters=64, depth=4, classification_guided=True),  # the paper's
    dict(base_filters=4, depth=3, deep_supervision=False),
    dict(base_filters=4, depth=2, n_classes=3, classification_guided=True)])
def test_unet3p_has_every_full_scale_branch(fields):
  model = UNet3Plus(**fields)
  expected = unet3p_parameters(1, model.base_filters, model.depth,
                               model.n_classes, model.deep_supervision,
                               model.classification_guided)
  assert models.parameter_count(model, (1, 64, 64, 1)) == expected
  if fields['base_filters'] == 64:
    assert expected == 26_982_982  # regression guard


def test_unet3p_trains_every_head_at_full_size_and_evaluates_the_first():
  model = UNet3Plus(base_filters=4, depth=3, norm='none')
  images = jax.random.uniform(jax.random.key(1), (2, 32, 48, 1))
  variables = models.initialize(model, jax.random.key(0), images.shape)
  assert sorted(k for k in variables['params'] if k.startswith('head')) == [
      'head_0', 'head_1', 'head_2', 'head_3']
  heads = jit(functools.partial(model.apply, train=True))(variables, images)
  assert isinstance(heads, tuple) and len(heads) == 4
  assert all(h.shape == (2, 32, 48, 1) and h.dtype == jnp.float32 for h in heads)
  # Without dropout and batch norm, evaluation is the first training head.
  np.testing.assert_allclose(jit(model.apply)(variables, images), heads[0],
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ConfigError, match="'bilinear' .* or 'nearest'"):
    shapes(model.clone(upsample='transpose'), (1, 32, 32, 1))


def test_unet3p_guide_learns_from_the_masks_and_blanks_empty_images():
  model = UNet3Plus(base_filters=4, depth=2, n_classes=3, norm='none',
                    classification_guided=True, deep_supervision=False)
  images = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1))
  variables = models.initialize(model, jax.random.key(0), images.shape)
  out = model.apply(variables, images, train=True,
                    rngs={'dropout': jax.random.key(2)})
  assert set(out) == {'segmentation', 'has_foreground'}
  assert out['segmentation'].shape == (4, 16, 16, 3)
  assert out['has_foreground'].shape == (4,)

  # Evaluation: images the guide calls empty become background (class 0).
  logits = jax.random.normal(jax.random.key(3), (4, 16, 16, 3))
  gated = model.gate(logits, jnp.array([1.0, -1.0, 0.5, -0.1]))
  np.testing.assert_array_equal(gated[0], logits[0])
  np.testing.assert_array_equal(gated[2], logits[2])
  assert (jnp.argmax(gated[1], -1) == 0).all() and (jnp.argmax(gated[3], -1) == 0).all()
  binary = UNet3Plus(classification_guided=True)
  assert (binary.gate(logits[..., :1], jnp.array([-1.0] * 4)) < -10).all()

  # Its loss: binary cross-entropy against "any class > 0 inside the mask".
  labels = np.zeros((3, 4, 4), np.int32)
  labels[1, 0, 0] = 2  # foreground
  labels[2, 3, 3] = 1  # foreground, but outside the mask
  mask = np.ones((3, 4, 4), np.float32)
  mask[2, 3, 3] = 0
  guide = np.array([0.3, -0.7, 1.2], np.float32)
  targets = np.array([0.0, 1.0, 0.0])
  p = 1 / (1 + np.exp(-guide))
  expected = -np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p))
  np.testing.assert_allclose(
      losses.has_foreground_loss(guide, labels, mask), expected, rtol=1e-6)
  # deep_supervision_loss adds it to the segmentation loss of the heads.
  seg = jax.random.normal(jax.random.key(4), (3, 4, 4, 3))
  combined = losses.deep_supervision_loss(
      losses.cross_entropy, {'segmentation': (seg, seg), 'has_foreground': guide},
      labels, mask=mask)
  np.testing.assert_allclose(
      combined, losses.cross_entropy(seg, labels, mask=mask) + expected, rtol=1e-5)


def test_fcn_needs_three_scales():
  with pytest.raises(ConfigError, match='depth >= 3'):
    shapes(FCN8s(base_filters=4, depth=2), (1, 16, 16, 1))


# --- Parameter counts against the papers (jax.eval_shape, no compute). ---


def test_unet_pp_matches_the_official_keras_count():
  # Zhou et al. 2018 report 9.04M for UNet++ with widths 32..512; the
  # authors' Keras Nest_Net (MrGiovanni/UNetPlusPlus, no batch norm, one
  # input channel) prints "Total params: 9,041,601" without deep supervision.
  shape = (1, 64, 64, 1)
  single = UNetPlusPlus(base_filters=32, depth=4, norm='none',
                        deep_supervision=False)
  assert models.parameter_count(single, shape) == 9_041_601
  # Deep supervision adds three 1x1 heads of 32 weights and a bias each.
  supervised = single.clone(deep_supervision=True)
  assert models.parameter_count(supervised, shape) == 9_041_601 + 3 * 33
  assert abs(models.parameter_count(supervised, shape) - 9_040_000) < 5_000


def keras_resunet_pp_count():
  """Total params of the official ResUNet++ Keras model (m_resunet.py, widths
  16..256, 3 input channels), layer by layer: Keras gives every Conv2D a
  bias and counts all four BatchNormalization vectors (gamma, beta, moving
  mean and variance)."""
  conv = lambda cin, cout, k=3: k * k * cin * cout + cout
  bn = lambda c: 4 * c
  se = lambda c: 2 * c * (c // 8)
  # stem_block: conv, BN, ReLU, conv; shortcut 1x1 conv, BN; add; SE.
  stem = lambda cin, c: (conv(cin, c) + bn(c) + conv(c, c)
                         + conv(cin, c, 1) + bn(c) + se(c))
  # resnet_block: the same with BN (and ReLU) before the first conv.
  res = lambda cin, c: bn(cin) + stem(cin, c)
  aspp = lambda cin, c: 4 * (conv(cin, c) + bn(c)) + conv(c, c, 1)
  att = lambda cg, cx: bn(cg) + conv(cg, cx) + 2 * (bn(cx) + conv(cx, cx))
  return (stem(3, 16) + res(16, 32) + res(32, 64) + res(64, 128)
          + aspp(128, 256)
          + att(64, 256) + res(256 + 64, 128)
          + att(32, 128) + res(128 + 32, 64)
          + att(16, 64) + res(64 + 16, 32)
          + aspp(32, 16) + conv(16, 1, 1))


def test_resunet_pp_matches_the_official_keras_model_layer_for_layer():
  variables = shapes(ResUNetPlusPlus(base_filters=16, depth=3), (1, 64, 64, 3))
  params = variable_count(variables, 'params')
  running_stats = variable_count(variables, 'batch_stats')
  assert (params, running_stats) == (4_060_977, 7_392)  # regression guard
  # We leave out the bias of a convolution that a norm follows (the norm's
  # offset replaces it); Keras keeps it. Everything else is the same.
  flat = flax.traverse_util.flatten_dict(variables['params'])
  kernels = {path[:-1]: leaf for path, leaf in flat.items()
             if path[-1] == 'kernel' and leaf.ndim == 4}
  left_out_biases = sum(k.shape[-1] for module, k in kernels.items()
                        if module + ('bias',) not in flat)
  keras_total = keras_resunet_pp_count()
  assert params + running_stats + left_out_biases == keras_total
  # Jha et al. 2019 report 4.07M (the Keras total, running statistics included).
  assert abs(keras_total - 4_070_000) < 5_000
  assert abs(params + running_stats - 4_070_000) < 5_000


def test_resunet_counts_what_zhang_et_al_counted():
  # Zhang et al. 2018, Table 1: fourteen 3x3 convolutions (input channels,
  # output channels) on 3-channel images, then a 1x1 output convolution;
  # they report 7.8M parameters.
  table_1 = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256),
             (256, 512), (512, 512), (512 + 256, 256), (256, 256),
             (256 + 128, 128), (128, 128), (128 + 64, 64), (64, 64)]
  paper_3x3_weights = sum(9 * cin * cout for cin, cout in table_1)
  assert abs(paper_3x3_weights - 7_800_000) < 50_000
  variables = shapes(ResUNet(base_filters=64, depth=3), (1, 224, 224, 3))
  flat = flax.traverse_util.flatten_dict(variables['params'])
  ours_3x3 = sum(k.size for path, k in flat.items()
                 if path[-1] == 'kernel' and k.shape[:2] == (3, 3))
  assert ours_3x3 == paper_3x3_weights
  # The 7.8M leaves out the 1x1 projection shortcuts (430,272 weights), batch
  # norm and biases, which a real model has.
  assert variable_count(variables, 'params') == 8_220_993  # regression guard


def test_attention_unet_adds_exactly_the_gates_to_unet():
  shape = (1, 64, 64, 1)
  kwargs = dict(base_filters=64, depth=4, n_classes=2, norm='none')
  unet = models.parameter_count(UNet(**kwargs), shape)
  gates = 0
  for level in range(4):
    skip, gating = 64 * 2**level, 64 * 2**(level + 1)
    inner = skip // 2
    # theta: 2x2 stride-2 conv without bias; phi: 1x1 conv; psi: 1x1 conv to 1.
    gates += 4 * skip * inner + (gating * inner + inner) + (inner + 1)
  assert models.parameter_count(AttentionUNet(**kwargs), shape) == unet + gates
  assert unet + gates == 32_076_102  # regression guard


# --- ResNet-18/34/50 classifier (parameter counts and torchvision's
# outputs: tests/test_torchvision_weights.py). ---


def test_resnet_classifies_images_of_any_size():
  model = ResNet(n_classes=5, base_filters=8)
  for shape in [(2, 32, 32, 3), (1, 37, 50, 1)]:
    out = jax.eval_shape(model.apply, shapes(model, shape),
                         jax.ShapeDtypeStruct(shape, jnp.float32))
    assert out.shape == (shape[0], 5) and out.dtype == jnp.float32
  with pytest.raises(InputShapeError):
    shapes(model, (32, 32, 3))
  with pytest.raises(ConfigError, match='num_layers=101'):
    shapes(ResNet(num_layers=101), (1, 32, 32, 3))


@pytest.mark.slow
def test_resnet18_overfits_a_tiny_labelled_batch():
  model = ResNet(n_classes=4, num_layers=18, base_filters=16)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(size=(8, 32, 32, 3)), jnp.float32)
  labels = jnp.arange(8) % 4
  variables = models.initialize(model, jax.random.key(0), images.shape)
  tx = optax.adam(3e-3)

  @jit
  def step(params, batch_stats, opt_state):
    def loss_fn(params):
      logits, updates = model.apply(
          {'params': params, 'batch_stats': batch_stats}, images, train=True,
          mutable=['batch_stats'])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
      return loss.mean(), updates['batch_stats']
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  params, batch_stats = variables['params'], variables['batch_stats']
  opt_state = tx.init(params)
  history = []
  for _ in range(30):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    history.append(float(loss))
  assert history[-1] < 0.5 * history[0], history
  logits = jit(model.apply)({'params': params, 'batch_stats': batch_stats},
                                images)
  assert list(np.argmax(logits, -1)) == list(labels)


# --- FLOPs from XLA's cost analysis. ---


def test_flops_count_two_per_multiply_add_on_the_image_not_the_padding():

  class OneConv(flax.linen.Module):
    @flax.linen.compact
    def __call__(self, x, train=False):
      return flax.linen.Conv(4, (3, 3), padding='SAME', use_bias=False)(x)

  # 8x8 image, 2 -> 4 channels: each output row/column sees 3 taps except
  # at the two borders (2 taps), so (8 * 3 - 2)**2 taps per channel pair.
  flops = models.forward_flops(OneConv(), (1, 8, 8, 2))
  assert flops == 2 * (8 * 3 - 2)**2 * 2 * 4


def test_resnet18_flops_are_close_to_the_published_count():
  # He et al. 2016, Table 1: 1.8e9 multiply-adds at 224x224 (counting the
  # padding taps that XLA leaves out, so XLA's count is a little lower).
  flops = models.forward_flops(ResNet(num_layers=18), (1, 224, 224, 3))
  assert 0.9 < flops / 2 / 1.8e9 < 1.0, flops


def test_list_command_prints_models_with_parameters_and_flops(capsys,
                                                            monkeypatch):
  from unetjax.models import __main__ as cli
  listed = {name for _, name, _ in cli.PAPER_SETTINGS}
  assert listed == set(models.MODELS) | set(models.CLASSIFIERS)
  # Compiling every model takes a while; one of each kind shows the format.
  rows = [row for row in cli.PAPER_SETTINGS if row[0] in ('unet_pp', 'resnet18')]
  monkeypatch.setattr(cli, 'PAPER_SETTINGS', rows)
  monkeypatch.setattr(cli, 'FLAGS', argparse.Namespace(
      list=True, size=32, channels=1, n_classes=None, base_filters=4))
  cli.run()
  out = capsys.readouterr().out
  assert 'input 1x32x32x1' in out
  for label, name, fields in rows:
    model = cli.build(name, fields, None, 4)
    count = models.parameter_count(model, (1, 32, 32, 1))
    assert re.search(rf'^{label} +{count:,} +\d+\.\d\d  ', out, re.M), out
