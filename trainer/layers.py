"""The custom Keras layers of the fxemu models (:mod:`trainer.architectures` builds the
models from them): time padding and cropping, the FIR branch, the AGC, the "silent for
silence" Dense and Conv1D, the modulated filter sum and the WaveNet layer (also stepped
sample block by sample block by :mod:`trainer.streaming`).
"""
from __future__ import annotations


import functools
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top


@functools.lru_cache(maxsize=None)
def dilated_conv1d_differentiable() -> bool:
  """Whether this process can differentiate a dilated ``tf.nn.conv1d`` in a graph, as
  training does: GPUs and oneDNN's CPU kernels can, TensorFlow's own CPU kernels cannot
  ("Current CPU implementations do not yet support dilation rates larger than 1").
  TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI or newer; importing
  :mod:`trainer` first turns it on elsewhere. Found by trying, once per process."""
  with tf.init_scope():   # eagerly, even when called while a model's graph is traced
    x, w = tf.ones([2, 64, 3]), tf.ones([3, 3, 2])

    @tf.function
    def gradients(x, w):
      y = tf.reduce_sum(tf.square(tf.nn.conv1d(x, w, stride=1, padding='VALID', dilations=4)))
      return tf.gradients(y, [x, w])
    try:
      [g.numpy() for g in gradients(x, w)]  # pylint: disable=expression-not-assigned
      return True
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
      return False


def dilated_conv1d(x, kernel, dilation: int):
  """``x [b, t, C]`` * ``kernel [k, C, C']`` at ``dilation``, 'VALID':
  ``[b, t - (k - 1) dilation, C']``, differentiable on every device.

  ``tf.nn.conv1d`` with ``dilations`` is one op, and oneDNN fuses a ``bias_add`` after it
  (docs/performance.md, section 4). Where its gradient does not exist
  (:func:`dilated_conv1d_differentiable`), the convolution goes through
  ``tf.nn.convolution``'s space-to-batch form, as a Keras ``Conv1D`` does.
  """
  if dilation == 1 or dilated_conv1d_differentiable():
    return tf.nn.conv1d(x, kernel, stride=1, padding='VALID', dilations=dilation)
  return tf.nn.convolution(x, kernel, strides=1, padding='VALID', dilations=dilation)


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


class TrimFront(keras.layers.Layer):
  """``[batch, time, channels]`` -> ``[batch, time - samples, channels]``: drops the first
  ``samples`` (in training, context whose outputs are not scored)."""

  def __init__(self, samples: int, **kwargs):
    super().__init__(**kwargs)
    self.samples = int(samples)

  def call(self, x):
    return x[:, self.samples:]

  def get_config(self):
    return {**super().get_config(), 'samples': self.samples}


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


#: Negative slope of ``leaky_relu`` in the WaveNet layers: PyTorch's default, which Neural
#: Amp Modeler's 0.13 default model uses (``tf.nn.leaky_relu`` defaults to 0.2).
LEAKY_RELU_SLOPE = 0.01


def wavenet_activation(name: str):
  """The activation function called ``name``: Keras's, or ``leaky_relu`` (slope
  :data:`LEAKY_RELU_SLOPE`)."""
  if name == 'leaky_relu':
    return lambda z: tf.nn.leaky_relu(z, alpha=LEAKY_RELU_SLOPE)
  return keras.activations.get(name)


def wavenet_initializer(name: str) -> keras.initializers.Initializer:
  """The initializer called ``name``: Keras's, or ``fan_in_uniform`` (uniform within
  ``+-1/sqrt(fan_in)``, fan_in = kernel x input channels: PyTorch's default for Conv1d)."""
  if name == 'fan_in_uniform':
    # VarianceScaling's uniform limit is sqrt(3 scale / fan_in): scale 1/3 gives 1/sqrt(fan_in).
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode='fan_in',
                                              distribution='uniform')
  return keras.initializers.get(name)


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
               gated: bool = False, initializer: str = 'glorot_uniform', **kwargs):
    super().__init__(**kwargs)
    self.channels, self.kernel, self.dilation = int(channels), int(kernel), int(dilation)
    self.activation_name, self.gated, self.initializer = activation, bool(gated), initializer
    self._activation = wavenet_activation(activation)

  def build(self, input_shape):
    h_shape, c_shape = input_shape
    width = self.channels * (2 if self.gated else 1)
    init = lambda: wavenet_initializer(self.initializer)  # A new (unseeded) one per weight.
    self.conv_kernel = self.add_weight('conv_kernel', [self.kernel, int(h_shape[-1]), width],
                                       initializer=init())
    self.mix_kernel = self.add_weight('mix_kernel', [1, int(c_shape[-1]), width],
                                      initializer=init())
    self.bias = self.add_weight('bias', [width], initializer='zeros')
    self.residual_kernel = self.add_weight('residual_kernel', [1, self.channels, self.channels],
                                           initializer=init())
    super().build(input_shape)

  def activate(self, z):
    """The activation of ``z [..., width]`` -> ``[..., channels]`` (gated: tanh of the
    first half times sigmoid of the second)."""
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
    bias = tf.cast(self.bias, dtype)
    # bias_add straight after the convolution: oneDNN fuses the two, which saves a pass
    # over [b, n, C] (the layers are bound by memory traffic, not FLOPs: docs/performance.md).
    z = tf.nn.bias_add(dilated_conv1d(h_with_past, tf.cast(self.conv_kernel, dtype),
                                      self.dilation), bias)
    z = z + tf.nn.conv1d(condition, tf.cast(self.mix_kernel, dtype), stride=1, padding='VALID')
    a = self.activate(z) - self.activate(bias)
    residual = tf.nn.conv1d(a, tf.cast(self.residual_kernel, dtype), stride=1, padding='VALID')
    return h + residual, a

  def get_config(self):
    return {**super().get_config(), 'channels': self.channels, 'kernel': self.kernel,
            'dilation': self.dilation, 'activation': self.activation_name,
            'gated': self.gated, 'initializer': self.initializer}
