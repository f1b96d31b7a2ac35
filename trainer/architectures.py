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
turn into a tone at multiples of sample_rate / S.  :func:`receptive_field_extent` gives, for every output sample t, the input
span ``[t - past, t + future]`` outside which input changes cannot affect it.
"""
from __future__ import annotations

import os
from typing import Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from schema import contract
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top



# --- Layers --------------------------------------------------------------------------

class PadTime(keras.layers.Layer):
  """Zero-pads the time axis of ``[batch, time, channels]``.

  Adds ``left`` samples before and ``right`` after, plus what is needed to make the
  unpadded length a multiple of ``multiple`` (appended at the end).
  """

  def __init__(self, left: int = 0, right: int = 0, multiple: int = 1, **kwargs):
    super().__init__(**kwargs)
    self.left, self.right, self.multiple = int(left), int(right), int(multiple)

  def call(self, x):
    extra = tf.math.floormod(-tf.shape(x)[1], self.multiple)
    return tf.pad(x, [[0, 0], [self.left, self.right + extra], [0, 0]])

  def get_config(self):
    return {**super().get_config(), 'left': self.left, 'right': self.right,
            'multiple': self.multiple}


class CropTime(keras.layers.Layer):
  """``([batch, time', channels], reference [batch, time])`` -> ``x[:, offset:offset + time]``."""

  def __init__(self, offset: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.offset = int(offset)

  def call(self, inputs):
    x, reference = inputs
    return x[:, self.offset:self.offset + tf.shape(reference)[1]]

  def get_config(self):
    return {**super().get_config(), 'offset': self.offset}


class FIRFilter(keras.layers.Layer):
  """Linear FIR filter ``y[t] = sum_k h[k] x[t + lookahead - k]``, ``[b, t, 1] -> [b, t, 1]``.

  ``h`` (``[taps]``, in time order) is stored as ``h / scale``: with Adam, whose steps
  are about the learning rate whatever the gradient size, ``scale`` < 1 makes the
  filter move ``scale`` times slower than the other weights, so a least-squares start
  (:meth:`set_filter`) is refined rather than shaken. Outside the input, x is 0.
  """

  def __init__(self, taps: int, lookahead: int = 0, scale: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.taps, self.lookahead, self.scale = int(taps), int(lookahead), float(scale)

  def build(self, input_shape):
    self.kernel = self.add_weight('kernel', shape=[self.taps], initializer='zeros')
    super().build(input_shape)

  @property
  def filter(self) -> tf.Tensor:
    """The effective FIR h, ``[taps]``."""
    return self.kernel * self.scale

  def set_filter(self, h) -> None:
    self.kernel.assign(tf.cast(h, self.kernel.dtype) / self.scale)

  def call(self, x):
    padded = tf.pad(x, [[0, 0], [self.taps - 1 - self.lookahead, self.lookahead], [0, 0]])
    weights = tf.reshape(tf.reverse(self.filter, [0]), [self.taps, 1, 1])
    return tf.nn.conv1d(padded, tf.cast(weights, padded.dtype), stride=1, padding='VALID')

  def get_config(self):
    return {**super().get_config(), 'taps': self.taps, 'lookahead': self.lookahead,
            'scale': self.scale}


class AGC(keras.layers.Layer):
  """Level-normalising gain ``[b, t, 1] -> x * g(t)``, with g computed in the log domain.

  For every window length N (samples) the causal mean power ``P_N(t)`` of
  ``x[t - N + 1 .. t]`` (zeros before the input) is taken in dB, floored at
  ``floor_db``, and ``g_dB(t) = offset + sum_N a_N (P_N(t)_dB - reference_db)``, limited
  to ``+-max_gain_db``. The slopes a_N start at ``-strength / len(windows)`` (strength 1:
  the output level no longer depends on the input level) and the offset at 0; both are
  learned. Working in dB makes the gain law extrapolate from the training levels to
  quieter or louder material (a compressor's static curve is piecewise linear in dB).
  Running sums are in float64 so that long inputs keep quiet envelopes exact.
  """

  def __init__(self, windows, reference_db: float = -20.0, floor_db: float = -50.0,
               max_gain_db: float = 30.0, strength: float = 1.0, **kwargs):
    super().__init__(**kwargs)
    self.windows = tuple(int(w) for w in windows)
    self.reference_db, self.floor_db = float(reference_db), float(floor_db)
    self.max_gain_db, self.strength = float(max_gain_db), float(strength)

  def build(self, input_shape):
    self.slopes = self.add_weight(
        'slopes', shape=[len(self.windows)],
        initializer=keras.initializers.Constant(-self.strength / len(self.windows)))
    self.offset = self.add_weight('offset', shape=[], initializer='zeros')
    super().build(input_shape)

  def gain_db(self, x3):
    """g_dB(t), ``[b, t]``."""
    x = tf.cast(x3[:, :, 0], tf.float64)
    length = tf.shape(x)[1]
    sums = tf.pad(tf.cumsum(tf.square(x), axis=1), [[0, 0], [1, 0]])  # sums[i] = sum x[:i]^2
    floor = 10.0 ** (self.floor_db / 10.0)
    levels = []
    for n in self.windows:
      earlier = tf.pad(sums, [[0, 0], [n, 0]])[:, 1:length + 1]        # sums[t + 1 - n]
      power = tf.cast((sums[:, 1:] - earlier) / n, tf.float32)
      levels.append(10.0 * tf.math.log(tf.maximum(power, floor)) / tf.math.log(10.0)
                    - self.reference_db)
    levels = tf.stack(levels, axis=-1)                                  # [b, t, K]
    gain = tf.reduce_sum(levels * self.slopes, axis=-1) + self.offset
    return tf.clip_by_value(gain, -self.max_gain_db, self.max_gain_db)

  def call(self, x3):
    gain = tf.pow(10.0, self.gain_db(x3) / 20.0)
    return x3 * tf.cast(gain, x3.dtype)[:, :, None]

  def get_config(self):
    return {**super().get_config(), 'windows': list(self.windows),
            'reference_db': self.reference_db, 'floor_db': self.floor_db,
            'max_gain_db': self.max_gain_db, 'strength': self.strength}


class SilentDense(keras.layers.Dense):
  """Dense layer that maps 0 to 0: ``act(x W + b) - act(b)``, ``[..., in] -> [..., units]``."""

  def call(self, inputs):
    out = super().call(inputs)
    if self.use_bias and self.activation is not None:
      out = out - self.activation(tf.cast(self.bias, out.dtype))
    return out


class SilentConv1D(keras.layers.Conv1D):
  """Conv1D that maps 0 to 0: ``act(conv(x) + b) - act(b)``, ``[b, t, in] -> [b, t', filters]``.

  With causal or 'same' zero padding, silent input frames give exactly zero output frames.
  """

  def call(self, inputs):
    out = super().call(inputs)
    if self.use_bias and self.activation is not None:
      out = out - self.activation(tf.cast(self.bias, out.dtype))
    return out


class ModulatedSum(keras.layers.Layer):
  """``(gains [b, t, m], signals [b, t, m])`` -> ``sum_m gains * signals``, ``[b, t, 1]``."""

  def call(self, inputs):
    gains, signals = inputs
    return tf.reduce_sum(gains * signals, axis=-1, keepdims=True)


class WaveNetLayer(keras.layers.Layer):
  """One layer of a WaveNet layer array, silent for silence.

  ``(h [b, t, C], condition [b, t, M])`` -> ``(h + W_r a, a)`` with
  ``a = act(conv_d(h) + W_m condition + b) - act(b)``: a causal dilated convolution
  (kernel k, dilation d) of the residual stream plus a 1x1 mix of the condition (the
  audio, and in ``hybrid`` the decoded slow signals), an activation (gated: tanh x
  sigmoid of two halves), minus its value at zero input so that silence stays exactly
  silent, and a 1x1 residual ``W_r`` without bias. ``a`` ``[b, t, C]`` goes to the array's head.
  """

  def __init__(self, channels: int, kernel: int, dilation: int, activation: str = 'tanh',
               gated: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.channels, self.kernel, self.dilation = int(channels), int(kernel), int(dilation)
    self.activation_name, self.gated = activation, bool(gated)
    self._activation = keras.activations.get(activation)

  def build(self, input_shape):
    h_shape, c_shape = input_shape
    width = self.channels * (2 if self.gated else 1)
    self.conv_kernel = self.add_weight('conv_kernel', [self.kernel, int(h_shape[-1]), width],
                                       initializer='glorot_uniform')
    self.mix_kernel = self.add_weight('mix_kernel', [1, int(c_shape[-1]), width],
                                      initializer='glorot_uniform')
    self.bias = self.add_weight('bias', [width], initializer='zeros')
    self.residual_kernel = self.add_weight('residual_kernel', [1, self.channels, self.channels],
                                           initializer='glorot_uniform')
    super().build(input_shape)

  def _act(self, z):
    if self.gated:
      return tf.tanh(z[..., :self.channels]) * tf.sigmoid(z[..., self.channels:])
    return self._activation(z)

  @property
  def reach(self) -> int:
    """Past samples of ``h`` one output sample depends on: (kernel - 1) x dilation."""
    return (self.kernel - 1) * self.dilation

  def call(self, inputs):
    h, condition = inputs
    return self.step(tf.pad(h, [[0, 0], [self.reach, 0], [0, 0]]), condition, h)

  def step(self, h_with_past, condition, h=None):
    """The layer on ``h_with_past [b, reach + n, C]`` (the ``reach`` samples before the
    ``n`` new ones, zeros before the stream began) and ``condition [b, n, M]``; returns
    ``(h [b, n, C], a [b, n, C])``. :meth:`call` pads with zeros; streaming passes the
    cached past (:mod:`trainer.streaming`), so both compute exactly the same. ``h``, the
    last n samples of ``h_with_past``, may be passed to save slicing a copy."""
    dtype = h_with_past.dtype
    if h is None:
      h = h_with_past[:, self.reach:]
    z = tf.nn.conv1d(h_with_past, tf.cast(self.conv_kernel, dtype), stride=1, padding='VALID',
                     dilations=self.dilation)
    z = z + tf.nn.conv1d(condition, tf.cast(self.mix_kernel, dtype), stride=1, padding='VALID')
    bias = tf.cast(self.bias, dtype)
    a = self._act(z + bias) - self._act(bias)
    residual = tf.nn.conv1d(a, tf.cast(self.residual_kernel, dtype), stride=1, padding='VALID')
    return h + residual, a

  def get_config(self):
    return {**super().get_config(), 'channels': self.channels, 'kernel': self.kernel,
            'dilation': self.dilation, 'activation': self.activation_name,
            'gated': self.gated}


# --- Receptive field -----------------------------------------------------------------

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


def _core_extent(config: TrainConfig) -> Tuple[int, int]:
  fir = (config.fir_taps - 1 - config.fir_lookahead, config.fir_lookahead) \
      if config.fir_taps else (0, 0)
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
    look = _modulation_lookahead(config)
    fir = (max(fir[0], config.modulation_taps - 1 - look), max(fir[1], look))
  return max(past, fir[0]), max(future, fir[1])


def wavenet_reach(config: TrainConfig) -> int:
  """Past samples the wavenet path sees: arrays x (kernel - 1) x sum(dilations)."""
  return (len(config.wavenet_channels) * (config.wavenet_kernel - 1)
          * sum(config.wavenet_dilations))


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


def _modulation_lookahead(config: TrainConfig) -> int:
  return min(config.fir_lookahead, config.modulation_taps - 1)


# --- Builders ------------------------------------------------------------------------

def _front_end(config: TrainConfig, x3):
  """The input ``[b, t, 1]`` the model works on: level-normalised by :class:`AGC` if enabled."""
  if not config.agc_strength:
    return x3
  return AGC(agc_windows(config), config.agc_reference_db, config.agc_floor_db,
             config.agc_max_gain_db, config.agc_strength, name='agc', dtype='float32')(x3)


def _fir_branch(config: TrainConfig, x3):
  return FIRFilter(config.fir_taps, config.fir_lookahead, config.fir_lr_scale, name='fir',
                   dtype='float32')(x3)


def build_conv(config: TrainConfig) -> keras.Model:
  """conv -> dense -> Conv1DTranspose model with a FIR branch; see the module docstring."""
  s, k, c = config.conv_stride, config.conv_kernel, config.latent_channels
  overlap = (k - s) // 2
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)                    # [b, t]
  x3 = keras.layers.Reshape([-1, 1], name='to_channels', dtype='float32')(audio)  # [b, t, 1]
  x3 = _front_end(config, x3)
  padded = PadTime(overlap, overlap, s, name='pad_to_frames')(x3)         # [b, F*S + 2h, 1]
  z = keras.layers.Conv1D(c, k, strides=s, use_bias=False, name='encoder')(padded)  # [b, F, c]
  for i in range(config.latent_dense_layers):
    z = SilentDense(c, activation=config.activation, name=f'frame_dense_{i}')(z)
  padding = 'causal' if config.causal else 'same'
  for i, dilation in enumerate(config.latent_dilations):
    h = SilentConv1D(c, config.latent_kernel, dilation_rate=dilation, padding=padding,
                     activation=config.activation, name=f'latent_conv_{i}')(z)
    h = keras.layers.Dense(c, use_bias=False, name=f'latent_mix_{i}')(h)
    z = keras.layers.Add(name=f'latent_residual_{i}')([z, h])
  z = SilentDense(c, activation=config.activation, name='frame_out')(z)
  decoded = keras.layers.Conv1DTranspose(1, k, strides=s, kernel_initializer='zeros',
                                         use_bias=False, name='decoder')(z)  # [b, F*S + 2h, 1]
  branches = [CropTime(overlap, name='crop_decoder')([decoded, audio])]
  if config.fir_taps:
    branches.append(_fir_branch(config, x3))
  if config.modulation_channels:
    m = config.modulation_channels
    gains = keras.layers.Conv1DTranspose(m, k, strides=s, kernel_initializer='zeros',
                                         name='modulation_decoder')(z)
    gains = CropTime(overlap, name='crop_gains')([gains, audio])          # [b, t, m]
    look = _modulation_lookahead(config)
    filtered = PadTime(config.modulation_taps - 1 - look, look, name='pad_modulation')(x3)
    filtered = keras.layers.Conv1D(m, config.modulation_taps, use_bias=False,
                                   name='modulation_fir')(filtered)      # [b, t, m]
    branches.append(ModulatedSum(name='modulation')([gains, filtered]))
  out = (keras.layers.Add(name='sum', dtype='float32')(branches) if len(branches) > 1
         else branches[0])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(out)
  return keras.Model(audio, wet, name='fxemu_conv')


def build_dense(config: TrainConfig) -> keras.Model:
  """Framewise fully connected baseline: N samples -> Dense x L -> N samples."""
  n = config.dense_frame_samples
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)
  x3 = keras.layers.Reshape([-1, 1], name='to_channels')(audio)
  padded = PadTime(0, 0, n, name='pad_to_frames')(x3)
  frames = keras.layers.Reshape([-1, n], name='frames')(padded)           # [b, F, n]
  h = frames
  for i in range(config.dense_layers):
    h = keras.layers.Dense(config.dense_units, activation=config.activation,
                           name=f'dense_{i}')(h)
  h = keras.layers.Dense(n, name='dense_out')(h)                          # [b, F, n]
  samples = keras.layers.Reshape([-1, 1], name='samples')(h)              # [b, F*n, 1]
  cropped = CropTime(0, name='crop')([samples, audio])
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
  padded = PadTime(k - 1, 0, s, name='condition_pad')(x3)              # [b, K - 1 + F S, 1]
  z = keras.layers.Conv1D(c, k, strides=s, use_bias=False, name='condition_encoder')(padded)
  for i in range(config.latent_dense_layers):                            # z: [b, F, c]
    z = SilentDense(c, activation=config.activation, name=f'condition_dense_{i}')(z)
  for i, dilation in enumerate(config.condition_dilations):
    h = SilentConv1D(c, config.latent_kernel, dilation_rate=dilation, padding='causal',
                     activation=config.activation, name=f'condition_conv_{i}')(z)
    h = keras.layers.Dense(c, use_bias=False, name=f'condition_mix_{i}')(h)
    z = keras.layers.Add(name=f'condition_residual_{i}')([z, h])
  z = SilentDense(c, activation=config.activation, name='condition_out')(z)
  # Zero-initialised: the hybrid starts as the plain wavenet and grows its slow path only
  # as far as training asks (a random start let the path fit the training signals'
  # levels and made the piano 9 dB worse: benchmarks/quality_notes.md).
  decoded = keras.layers.Conv1DTranspose(config.condition_channels, k, strides=s,
                                         use_bias=False, kernel_initializer='zeros',
                                         name='condition_decoder')(z)
  return CropTime(0, name='condition_crop')([decoded, x3])                 # [b, t, m]


def build_wavenet(config: TrainConfig) -> keras.Model:
  """``wavenet`` and ``hybrid``: layer arrays at the sample rate (+ slow conditioning for
  hybrid) + FIR branch; see the module docstring. ``[b, t] -> [b, t]``."""
  audio = keras.Input(shape=[None], name=contract.AUDIO_INPUT)                       # [b, t]
  x3 = keras.layers.Reshape([-1, 1], name='to_channels', dtype='float32')(audio)  # [b, t, 1]
  x3 = _front_end(config, x3)
  condition = x3
  if config.model == 'hybrid' and config.condition_channels:
    slow = _causal_condition(config, x3)
    condition = keras.layers.Concatenate(name='condition')([x3, slow])    # [b, t, 1 + m]
  h, head = x3, None
  channels = config.wavenet_channels
  for a, width in enumerate(channels):
    h = keras.layers.Conv1D(width, 1, use_bias=False, name=f'array{a}_rechannel')(h)
    heads = [] if head is None else [head]
    for i, dilation in enumerate(config.wavenet_dilations):
      h, out = WaveNetLayer(width, config.wavenet_kernel, dilation, config.wavenet_activation,
                            config.wavenet_gated, name=f'array{a}_layer{i}')([h, condition])
      heads.append(out)
    head = keras.layers.Add(name=f'array{a}_head_sum')(heads)             # [b, t, width]
    last = a == len(channels) - 1
    head = keras.layers.Conv1D(
        1 if last else channels[a + 1], 1, use_bias=False,
        kernel_initializer='zeros' if last else 'glorot_uniform',
        name='head' if last else f'array{a}_head')(head)
  out = keras.layers.Rescaling(config.wavenet_head_scale, name='head_scale')(head)
  branches = [out]
  if config.fir_taps:
    branches.append(_fir_branch(config, x3))
  out = (keras.layers.Add(name='sum', dtype='float32')(branches) if len(branches) > 1
         else branches[0])
  wet = keras.layers.Reshape([-1], name=contract.WET_OUTPUT, dtype='float32')(out)
  return keras.Model(audio, wet, name=f'fxemu_{config.model}')


def build_model(config: TrainConfig) -> keras.Model:
  """The architecture selected by ``config.model``: ``[b, t] -> [b, t]``, float32."""
  builders = {'conv': build_conv, 'dense': build_dense, 'tcn': build_tcn,
              'wavenet': build_wavenet, 'hybrid': build_wavenet}
  return builders[config.model](config)


def fir_layer(model: keras.Model):
  """The model's :class:`FIRFilter` layer, or None."""
  for layer in model.layers:
    if isinstance(layer, FIRFilter):
      return layer
  return None


def front_end_model(model: keras.Model):
  """``audio [b, t] -> [b, t]``, the input as the model's branches see it (after the AGC),
  or None if the model has no front end."""
  for layer in model.layers:
    if isinstance(layer, AGC):
      return keras.Model(model.inputs, keras.layers.Reshape([-1])(layer.output))
  return None


def parameter_count(model: keras.Model) -> int:
  return int(np.sum([np.prod(w.shape) for w in model.trainable_weights]))
