"""How far each model sees: for every output sample t, the input span
``[t - past, t + future]`` outside which input changes cannot affect it, and the block
multiple that block-wise processing must respect. Pure arithmetic on the
:class:`~trainer.config.TrainConfig` (no TensorFlow), shared by the builders
(:mod:`trainer.architectures`), the export metadata and the streaming form.
"""
from __future__ import annotations

from typing import Tuple

from trainer.config import TrainConfig


def _same_padding(kernel: int, dilation: int) -> Tuple[int, int]:
  """(before, after) padding of a stride-1 'same' convolution (TF pads more at the end)."""
  total = (kernel - 1) * dilation
  return total // 2, total - total // 2


def _latent_frames(config: TrainConfig, kernel: int, dilations) -> Tuple[int, int]:
  """(past, future) reach, in frames/samples, of a stack of dilated convolutions."""
  if config.causal:
    return sum((kernel - 1) * d for d in dilations), 0
  pads = [_same_padding(kernel, d) for d in dilations]
  return sum(p for p, _ in pads), sum(f for _, f in pads)


def receptive_field_extent(config: TrainConfig) -> Tuple[int, int]:
  """(past, future) in samples: output t depends only on input ``[t - past, t + future]``."""
  past, future = _core_extent(config)
  if config.agc_strength and config.model != 'dense':
    past += max(agc_windows(config)) - 1   # the gain at s sees x[s - N + 1 .. s]
  return past, future


def agc_windows(config: TrainConfig) -> Tuple[int, ...]:
  """The agc envelope windows in samples."""
  return tuple(max(1, int(round(ms * config.sample_rate / 1000.0)))
               for ms in config.agc_windows_ms)


def fir_extent(config: TrainConfig) -> Tuple[int, int]:
  """(past, future) samples of the FIR branch: ``fir_taps - 1 - fir_lookahead`` and
  ``fir_lookahead``; (0, 0) without it."""
  if not config.fir_taps:
    return 0, 0
  return config.fir_taps - 1 - config.fir_lookahead, config.fir_lookahead


def _core_extent(config: TrainConfig) -> Tuple[int, int]:
  fir = fir_extent(config)
  if config.model == 'dense':
    n = config.dense_frame_samples
    return n - 1, n - 1
  if config.model == 'tcn':
    past, future = _latent_frames(config, config.tcn_kernel, config.tcn_dilations)
    return max(past, fir[0]), max(future, fir[1])
  if config.model in ('wavenet', 'hybrid'):
    past = wavenet_reach(config)
    if config.model == 'hybrid' and config.condition_channels:
      # The condition is mixed in after each layer's convolution, so it passes through
      # every wavenet convolution but the first.
      first = (config.wavenet_kernel - 1) * config.wavenet_dilations[0]
      past = max(past, condition_reach(config) + past - first)
    return max(past, fir[0]), fir[1]
  s, overlap = config.conv_stride, (config.conv_kernel - config.conv_stride) // 2
  frames_past, frames_future = _latent_frames(config, config.latent_kernel,
                                              config.latent_dilations)
  past = s * (frames_past + 1) + 2 * overlap - 1
  future = s * (frames_future + 1) + 2 * overlap - 1
  if config.modulation_channels:
    look = modulation_lookahead(config)
    fir = (max(fir[0], config.modulation_taps - 1 - look), max(fir[1], look))
  return max(past, fir[0]), max(future, fir[1])


def wavenet_reach(config: TrainConfig) -> int:
  """Past samples the wavenet path sees: arrays x (kernel - 1) x sum(dilations)."""
  return (len(config.wavenet_channels) * (config.wavenet_kernel - 1)
          * sum(config.wavenet_dilations))


def full_rate_skip(config: TrainConfig, left_context: int) -> int:
  """Samples at the start of a training input that the full-rate path of a ``wavenet`` or
  ``hybrid`` need not compute (0 for the other models).

  A training input holds ``left_context`` samples before the first scored output. The
  layer arrays and the FIR branch reach back ``wavenet_reach`` and ``fir_taps - 1 -
  fir_lookahead`` samples (of the front end's output); only the hybrid's conditioning path
  reaches further (:func:`condition_reach`). So the full-rate path can start that far
  before the first scored output, and the samples before it feed the conditioning path
  only: the scored outputs are the same, and a wavenet computes every sample it is given.
  """
  if config.model not in ('wavenet', 'hybrid'):
    return 0
  return max(0, int(left_context) - max(wavenet_reach(config), fir_extent(config)[0]))


def condition_reach(config: TrainConfig) -> int:
  """Past samples the hybrid's causal conv-transpose path sees: 2 K + S R - 2 for encoder
  and decoder kernel K, stride S and a latent reach of R = (latent_kernel - 1) x
  sum(condition_dilations) frames (the worst case over a sample's place in its frame)."""
  frames = (config.latent_kernel - 1) * sum(config.condition_dilations)
  return 2 * config.conv_kernel + config.conv_stride * frames - 2


def receptive_field(config: TrainConfig) -> int:
  """Length (samples) of the input span that can affect one output sample: past + 1 + future."""
  past, future = receptive_field_extent(config)
  return past + 1 + future


def block_multiple(config: TrainConfig) -> int:
  """Block-wise processing must start blocks at multiples of this (samples)."""
  return {'conv': config.conv_stride, 'hybrid': config.conv_stride,
          'dense': config.dense_frame_samples}.get(config.model, 1)


def describe(config: TrainConfig) -> str:
  """One line: architecture and receptive field in samples and ms."""
  past, future = receptive_field_extent(config)
  ms = 1000.0 / config.sample_rate
  return (f'{config.model}: receptive field {past + 1 + future} samples '
          f'({(past + 1 + future) * ms:.1f} ms; past {past} = {past * ms:.1f} ms, '
          f'future {future} = {future * ms:.1f} ms), block multiple {block_multiple(config)}')


def modulation_lookahead(config: TrainConfig) -> int:
  return min(config.fir_lookahead, config.modulation_taps - 1)
