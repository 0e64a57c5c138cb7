"""The classic U-Net in PyTorch, trained the way unetjax trains its U-Net.

python -m benchmarks.torch_baseline --preset=cpu     # or --preset=gpu

The network is unetjax's `unet` layer for layer (3x3 'same' convolutions
without bias when batch norm follows, 2x2 stride-2 transposed convolutions,
skip concatenation as [encoder, decoder], a 1x1 head), so parameter and FLOP
counts match; the loss is unetjax's `cross_entropy_dice` (0.5 BCE + 0.5
per-image soft Dice, smooth 1) and the optimizer Adam. Prints one JSON line
per mode: fp32 eager, AMP bf16, AMP + channels_last, and AMP + channels_last
+ torch.compile (modes that need a GPU are skipped on the CPU). Import it
to run the same cases in the process of `train_throughput.py`, so that the
ratio of the two is measured on one machine at one time.
"""

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


from benchmarks import common

MODES = ('fp32', 'amp_bf16', 'amp_bf16_channels_last',
         'amp_bf16_channels_last_compile')


class DoubleConv(nn.Sequential):

  def __init__(self, in_channels: int, out_channels: int, batch_norm: bool):
    layers = []
    for channels in (in_channels, out_channels):
      layers.append(nn.Conv2d(channels, out_channels, 3, padding=1,
                              bias=not batch_norm))
      if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels, momentum=0.1, eps=1e-5))
      layers.append(nn.ReLU(inplace=True))
    super().__init__(*layers)


class UNet(nn.Module):
  """Ronneberger et al.'s U-Net with 'same' padding (unetjax.models.UNet)."""

  def __init__(self, in_channels: int = 3, n_classes: int = 1,
               base_filters: int = 64, depth: int = 4, batch_norm: bool = True):
    super().__init__()
    width = lambda level: base_filters * 2**level
    self.down = nn.ModuleList()
    channels = in_channels
    for level in range(depth):
      self.down.append(DoubleConv(channels, width(level), batch_norm))
      channels = width(level)
    self.bottom = DoubleConv(channels, width(depth), batch_norm)
    self.up = nn.ModuleList()
    self.decode = nn.ModuleList()
    for level in reversed(range(depth)):
      self.up.append(nn.ConvTranspose2d(width(level + 1), width(level), 2, stride=2))
      self.decode.append(DoubleConv(2 * width(level), width(level), batch_norm))
    self.head = nn.Conv2d(base_filters, n_classes, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    skips = []
    for block in self.down:
      x = block(x)
      skips.append(x)
      x = F.max_pool2d(x, 2)
    x = self.bottom(x)
    for up, block, skip in zip(self.up, self.decode, reversed(skips)):
      x = block(torch.cat([skip, up(x)], dim=1))
    return self.head(x)


def bce_dice_loss(logits: torch.Tensor, targets: torch.Tensor,
                  smooth: float = 1.0) -> torch.Tensor:
  """0.5 * BCE + 0.5 * (1 - per-image soft Dice), in float32, as unetjax's
  cross_entropy_dice: Dice = (I + smooth) / ((sum p + sum t) / 2 + smooth)."""
  logits = logits.float()
  bce = F.binary_cross_entropy_with_logits(logits, targets)
  p = torch.sigmoid(logits)
  intersection = (p * targets).sum(dim=(1, 2, 3))
  total = p.sum(dim=(1, 2, 3)) + targets.sum(dim=(1, 2, 3))
  dice = (intersection + smooth) / (total / 2 + smooth)
  return 0.5 * bce + 0.5 * (1 - dice).mean()


def parameter_count(model: nn.Module) -> int:
  return sum(p.numel() for p in model.parameters())


def forward_flops(model: nn.Module, example: torch.Tensor) -> float:
  """FLOPs of one forward pass (a multiply-add counts 2), by torch's counter."""
  from torch.utils.flop_counter import FlopCounterMode
  counter = FlopCounterMode(display=False)
  with counter, torch.no_grad():
    model(example)
  return float(counter.get_total_flops())


def make_train_step(model: nn.Module, mode: str, learning_rate: float = 1e-3):
  """A function (images, targets) -> loss tensor doing one Adam update."""
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
  use_amp = mode.startswith('amp_bf16')
  device_type = next(model.parameters()).device.type

  def step(images, targets):
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=use_amp):
      logits = model(images)
    loss = bce_dice_loss(logits, targets)
    loss.backward()
    optimizer.step()
    return loss

  if mode.endswith('_compile'):
    step = torch.compile(step)
  return step


def synchronize(device: torch.device) -> None:
  if device.type == 'cuda':
    torch.cuda.synchronize(device)


def measure_train(mode: str, shape: common.Shape, batch_size: int,
                  base_filters: int, batch_norm: bool, steps: int,
                  warmup: int) -> dict[str, Any]:
  """Images/s of `mode`'s train step on random data; one JSON-ready dict."""
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  torch.manual_seed(0)
  height, width, channels = shape
  model = UNet(channels, 1, base_filters, 4, batch_norm).to(device).train()
  flops = forward_flops(model, torch.zeros(1, channels, height, width, device=device))
  memory_format = (torch.channels_last if 'channels_last' in mode
                   else torch.contiguous_format)
  model = model.to(memory_format=memory_format)
  rng = np.random.default_rng(0)
  images = torch.from_numpy(rng.random((batch_size, channels, height, width),
                                       dtype=np.float32)).to(device)
  images = images.contiguous(memory_format=memory_format)
  targets = torch.from_numpy((rng.random((batch_size, 1, height, width)) > 0.5)
                             .astype(np.float32)).to(device)
  step = make_train_step(model, mode)
  if device.type == 'cuda':
    torch.cuda.reset_peak_memory_stats(device)
  start = time.perf_counter()
  step(images, targets)
  synchronize(device)
  first_step_s = time.perf_counter() - start
  for _ in range(warmup):
    step(images, targets)
  synchronize(device)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step(images, targets)
    synchronize(device)
    times.append(time.perf_counter() - start)
  step_s = float(np.median(times))
  peak = (torch.cuda.max_memory_allocated(device) if device.type == 'cuda'
          else None)
  return common.train_record(
      framework='torch', model='unet', mode=mode, dtype=(
          'bfloat16' if mode.startswith('amp') else 'float32'),
      shape=shape, batch_size=batch_size, base_filters=base_filters,
      batch_norm=batch_norm, params=parameter_count(model),
      forward_flops_per_image=flops, step_s=step_s, step_times=times,
      first_step_s=first_step_s, peak_memory_bytes=peak,
      device=torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
      versions={'torch': torch.__version__})


def available_modes() -> tuple[str, ...]:
  """All modes on a GPU; fp32 and AMP bf16 on the CPU (channels_last and
  torch.compile target GPU kernels; on the CPU they are tried only when asked
  for by name)."""
  return MODES if torch.cuda.is_available() else MODES[:2]


def run(preset: common.Preset, modes: tuple[str, ...] | None = None,
        steps: int | None = None) -> list[dict[str, Any]]:
  records = []
  for mode in modes or available_modes():
    for batch_size in preset.batch_sizes:
      records.append(measure_train(
          mode, preset.shape, batch_size, preset.base_filters,
          preset.batch_norm, steps or preset.steps, preset.warmup))
      common.emit(records[-1])
  return records


def main() -> None:
  args = common.parse_args(__doc__, extra_modes=MODES)
  run(common.PRESETS[args.preset].override(args), tuple(args.torch_modes or ()) or None)


if __name__ == '__main__':
  main()
