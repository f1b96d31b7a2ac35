"""Model architectures: ``audio [batch, samples] -> wet [batch, samples]``, any length.

* ``conv`` (default): a strided Conv1D encoder (kernel K, stride S) turns audio into
  latent frames of S samples; pointwise Dense layers and residual dilated Conv1D
  blocks over the frames give nonlinear capacity and long memory (a compressor needs
  hundreds of ms); a Conv1DTranspose decoder (kernel K, stride S) returns to samples.
  A parallel linear FIR branch is added to the output (linear effects are then easy;
  it can start from a least-squares fit), and an optional time-varying filter branch
  adds ``sum_m g_m(t) * (f_m * x)(t)`` with gains g_m decoded from the latent frames.
  Input is padded to a multiple of S inside the model and cropped back.
* ``dense``: the original fully connected baseline: frames of N samples -> Dense
  layers -> N samples, framewise (no memory across frames).
* ``tcn``: gated residual dilated Conv1D layers at the sample rate plus the FIR branch.
* ``wavenet``: the full-rate path of Neural Amp Modeler's standard WaveNet: layer arrays
  in series (default 16 then 8 channels, kernel 3, dilations 1..512 each), every layer a
  causal dilated convolution plus a 1x1 mix of the input audio, an activation, a 1x1
  residual; the layers' activations are summed into a head. Plus the FIR branch.
* ``hybrid`` (default): the wavenet path, and a causal conv -> dense/dilated latent ->
  Conv1DTranspose path (strided like ``conv``) that decodes ``condition_channels`` slow
  signals (level, dynamics, long memory) which every wavenet layer mixes in beside the
  audio. Plus the FIR branch.

The residual paths' last layers start at zero, so an untrained conv/tcn model is its
FIR branch. The conv model is silent for silence (zero in, exactly zero out): its
encoder and decoder have no bias and every biased nonlinear layer subtracts its own
output at zero (:class:`SilentDense`, :class:`SilentConv1D`), which keeps the biases'
asymmetry (even harmonics) without a constant latent that the stride-S decoder would
turn into a tone at multiples of sample_rate / S. The layers are in :mod:`trainer.layers`;
:mod:`trainer.receptive_field` gives, for every output sample t, the input span
``[t - past, t + future]`` outside which input changes cannot affect it.
"""
from __future__ import annotations

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from schema import contract
from trainer import layers  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top


def _front_end(config: TrainConfig, x3):
  """The input ``[b, t, 1]`` the model works on: level-normalised by
  :class:`trainer.layers.AGC` if enabled."""
  if not config.agc_strength:
    return x3
  return layers.AGC(receptive_field.agc_windows(config), config.agc_reference_db,
                    config.agc_floor_db, config.agc_max_gain_db, config.agc_strength,
                    name='agc', dtype='float32')(x3)


def _fir_branch(config: TrainConfig, x3):
  return layers.FIRFilter(config.fir_taps, config.fir_lookahead, config.fir_lr_scale, name='fir',
                          dtype='float32')(x3)


def build_conv(config: TrainConfig) -> keras.Model:
  """conv -> dense -> Conv1DTranspose model with a FIR branch; see the module docstring."""
  s, k, c = config.conv_stride, config.conv_kernel, config.latent_channels
  overlap = (k - s) // 2
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)                    # [b, t]
  x3 = keras.layers.Reshape([-1, 1], name='to_channels', dtype='float32')(audio)  # [b, t, 1]
  x3 = _front_end(config, x3)
  padded = layers.PadTime(overlap, overlap, s, name='pad_to_frames')(x3)         # [b, F*S + 2h, 1]
  z = keras.layers.Conv1D(c, k, strides=s, use_bias=False, name='encoder')(padded)  # [b, F, c]
  for i in range(config.latent_dense_layers):
    z = layers.SilentDense(c, activation=config.activation, name=f'frame_dense_{i}')(z)
  padding = 'causal' if config.causal else 'same'
  for i, dilation in enumerate(config.latent_dilations):
    h = layers.SilentConv1D(c, config.latent_kernel, dilation_rate=dilation, padding=padding,
                            activation=config.activation, name=f'latent_conv_{i}')(z)
    h = keras.layers.Dense(c, use_bias=False, name=f'latent_mix_{i}')(h)
    z = keras.layers.Add(name=f'latent_residual_{i}')([z, h])
  z = layers.SilentDense(c, activation=config.activation, name='frame_out')(z)
  decoded = keras.layers.Conv1DTranspose(1, k, strides=s, kernel_initializer='zeros',
                                         use_bias=False, name='decoder')(z)  # [b, F*S + 2h, 1]
  branches = [layers.CropTime(overlap, name='crop_decoder')([decoded, audio])]
  if config.fir_taps:
    branches.append(_fir_branch(config, x3))
  if config.modulation_channels:
    m = config.modulation_channels
    gains = keras.layers.Conv1DTranspose(m, k, strides=s, kernel_initializer='zeros',
                                         name='modulation_decoder')(z)
    gains = layers.CropTime(overlap, name='crop_gains')([gains, audio])          # [b, t, m]
    look = receptive_field.modulation_lookahead(config)
    filtered = layers.PadTime(config.modulation_taps - 1 - look, look, name='pad_modulation')(x3)
    filtered = keras.layers.Conv1D(m, config.modulation_taps, use_bias=False,
                                   name='modulation_fir')(filtered)      # [b, t, m]
    branches.append(layers.ModulatedSum(name='modulation')([gains, filtered]))
  out = (keras.layers.Add(name='sum', dtype='float32')(branches) if len(branches) > 1
         else branches[0])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(out)
  return keras.Model(audio, wet, name='fxemu_conv')


def build_dense(config: TrainConfig) -> keras.Model:
  """Framewise fully connected baseline: N samples -> Dense x L -> N samples."""
  n = config.dense_frame_samples
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)
  x3 = keras.layers.Reshape([-1, 1], name='to_channels')(audio)
  padded = layers.PadTime(0, 0, n, name='pad_to_frames')(x3)
  frames = keras.layers.Reshape([-1, n], name='frames')(padded)           # [b, F, n]
  h = frames
  for i in range(config.dense_layers):
    h = keras.layers.Dense(config.dense_units, activation=config.activation,
                           name=f'dense_{i}')(h)
  h = keras.layers.Dense(n, name='dense_out')(h)                          # [b, F, n]
  samples = keras.layers.Reshape([-1, 1], name='samples')(h)              # [b, F*n, 1]
  cropped = layers.CropTime(0, name='crop')([samples, audio])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(cropped)
  return keras.Model(audio, wet, name='fxemu_dense')


def build_tcn(config: TrainConfig) -> keras.Model:
  """Gated dilated residual Conv1D stack at the sample rate (WaveNet-like) + FIR branch."""
  c, padding = config.tcn_channels, 'causal' if config.causal else 'same'
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)
  x3 = keras.layers.Reshape([-1, 1], name='to_channels', dtype='float32')(audio)
  x3 = _front_end(config, x3)
  h = keras.layers.Conv1D(c, 1, name='input_mix')(x3)
  skips = []
  for i, dilation in enumerate(config.tcn_dilations):
    filt = keras.layers.Conv1D(c, config.tcn_kernel, dilation_rate=dilation, padding=padding,
                               activation='tanh', name=f'filter_{i}')(h)
    gate = keras.layers.Conv1D(c, config.tcn_kernel, dilation_rate=dilation, padding=padding,
                               activation='sigmoid', name=f'gate_{i}')(h)
    gated = keras.layers.Multiply(name=f'gated_{i}')([filt, gate])
    skips.append(gated)
    mixed = keras.layers.Conv1D(c, 1, name=f'mix_{i}')(gated)
    h = keras.layers.Add(name=f'residual_{i}')([h, mixed])
  mixed = keras.layers.Concatenate(name='skips')(skips)
  mixed = keras.layers.Conv1D(c, 1, activation=config.activation, name='post')(mixed)
  branches = [keras.layers.Conv1D(1, 1, kernel_initializer='zeros', name='out')(mixed)]
  if config.fir_taps:
    branches.append(_fir_branch(config, x3))
  out = (keras.layers.Add(name='sum', dtype='float32')(branches) if len(branches) > 1
         else branches[0])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(out)
  return keras.Model(audio, wet, name='fxemu_tcn')


def _causal_condition(config: TrainConfig, x3):
  """The hybrid's slow path, ``[b, t, 1] -> [b, t, condition_channels]``, causal.

  The input is padded by K - 1 samples in front (and to a multiple of S), so latent frame
  f encodes samples ``[f S - K + 1, f S]``; causal dilated latent convolutions; the
  Conv1DTranspose writes frame f to samples ``[f S, f S + K)``: no output sample sees
  its future. Zero in, zero out (no encoder/decoder bias, silent latent layers). The
  decoder starts at zero.
  """
  s, k, c = config.conv_stride, config.conv_kernel, config.condition_latent_channels
  padded = layers.PadTime(k - 1, 0, s, name='condition_pad')(x3)              # [b, K - 1 + F S, 1]
  z = keras.layers.Conv1D(c, k, strides=s, use_bias=False, name='condition_encoder')(padded)
  for i in range(config.latent_dense_layers):                            # z: [b, F, c]
    z = layers.SilentDense(c, activation=config.activation, name=f'condition_dense_{i}')(z)
  for i, dilation in enumerate(config.condition_dilations):
    h = layers.SilentConv1D(c, config.latent_kernel, dilation_rate=dilation, padding='causal',
                            activation=config.activation, name=f'condition_conv_{i}')(z)
    h = keras.layers.Dense(c, use_bias=False, name=f'condition_mix_{i}')(h)
    z = keras.layers.Add(name=f'condition_residual_{i}')([z, h])
  z = layers.SilentDense(c, activation=config.activation, name='condition_out')(z)
  # Zero-initialised: the hybrid starts as the plain wavenet and grows its slow path only
  # as far as training asks (a random start let the path fit the training signals'
  # levels and made the piano 9 dB worse: benchmarks/quality_notes.md).
  decoded = keras.layers.Conv1DTranspose(config.condition_channels, k, strides=s,
                                         use_bias=False, kernel_initializer='zeros',
                                         name='condition_decoder')(z)
  return layers.CropTime(0, name='condition_crop')([decoded, x3])                 # [b, t, m]


def build_wavenet(config: TrainConfig, skip: int = 0) -> keras.Model:
  """``wavenet`` and ``hybrid``: layer arrays at the sample rate (+ slow conditioning for
  hybrid) + FIR branch; see the module docstring. ``[b, t] -> [b, t - skip]``: the
  full-rate path and the FIR branch start ``skip`` samples in (training, where those
  samples are context only: :func:`trainer.receptive_field.full_rate_skip`); the
  conditioning path sees them all."""
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)                       # [b, t]
  x3 = keras.layers.Reshape([-1, 1], name='to_channels', dtype='float32')(audio)  # [b, t, 1]
  x3 = _front_end(config, x3)
  slow = None
  if config.model == 'hybrid' and config.condition_channels:
    slow = _causal_condition(config, x3)                                   # [b, t, m]
  if skip:
    trim = layers.TrimFront(skip, name='trim_context')
    x3 = trim(x3)                                                          # [b, t - skip, 1]
    slow = None if slow is None else trim(slow)
  condition = x3
  if slow is not None:
    condition = keras.layers.Concatenate(name='condition')([x3, slow])    # [b, t', 1 + m]
  h, head = x3, None
  channels = config.wavenet_channels
  init = lambda: layers.wavenet_initializer(config.wavenet_initializer)
  for a, width in enumerate(channels):
    h = keras.layers.Conv1D(width, 1, use_bias=False, name=f'array{a}_rechannel',
                            kernel_initializer=init())(h)
    heads = [] if head is None else [head]
    for i, dilation in enumerate(config.wavenet_dilations):
      h, out = layers.WaveNetLayer(width, config.wavenet_kernel, dilation,
                                   config.wavenet_activation, config.wavenet_gated,
                                   config.wavenet_initializer,
                                   name=f'array{a}_layer{i}')([h, condition])
      heads.append(out)
    head = keras.layers.Add(name=f'array{a}_head_sum')(heads)             # [b, t, width]
    last = a == len(channels) - 1
    head = keras.layers.Conv1D(
        1 if last else channels[a + 1], 1, use_bias=False,
        kernel_initializer='zeros' if last else init(),
        name='head' if last else f'array{a}_head')(head)
  out = keras.layers.Rescaling(config.wavenet_head_scale, name='head_scale')(head)
  branches = [out]
  if config.fir_taps:
    branches.append(_fir_branch(config, x3))
  out = (keras.layers.Add(name='sum', dtype='float32')(branches) if len(branches) > 1
         else branches[0])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(out)
  return keras.Model(audio, wet, name=f'fxemu_{config.model}')


def build_model(config: TrainConfig, skip: int = 0) -> keras.Model:
  """The architecture selected by ``config.model``: ``[b, t] -> [b, t]``, float32; with
  ``skip`` (wavenet and hybrid only, for training) ``[b, t - skip]``, see
  :func:`build_wavenet`."""
  if config.model in ('wavenet', 'hybrid'):
    return build_wavenet(config, skip)
  if skip:
    raise ValueError(f'{config.model}: no full-rate path to skip context in')
  builders = {'conv': build_conv, 'dense': build_dense, 'tcn': build_tcn}
  return builders[config.model](config)


def fir_layer(model: keras.Model):
  """The model's :class:`layers.FIRFilter` layer, or None."""
  for layer in model.layers:
    if isinstance(layer, layers.FIRFilter):
      return layer
  return None


def front_end_model(model: keras.Model):
  """``audio [b, t] -> [b, t]``, the input as the model's branches see it (after the layers.AGC),
  or None if the model has no front end."""
  for layer in model.layers:
    if isinstance(layer, layers.AGC):
      return keras.Model(model.inputs, keras.layers.Reshape([-1])(layer.output))
  return None


def parameter_count(model: keras.Model) -> int:
  return int(np.sum([np.prod(w.shape) for w in model.trainable_weights]))
