"""Streaming inference: blocks of any size in, the same output as the whole file, O(block).

A :class:`Streamer` runs a trained model on a stream, one block of N samples at a time,
with all the memory it needs in an explicit ``state`` tensor ``[batch, state_size]``:

* every causal convolution keeps the last ``(kernel - 1) x dilation`` samples (or latent
  frames) of its input and convolves them with the new ones ('VALID'), so a block costs
  O(N) whatever the receptive field;
* the strided conv -> latent -> Conv1DTranspose paths (``hybrid``'s conditioning path, the
  ``conv`` model) keep the encoder's last ``K - 1`` input samples, the latent layers' last
  frames and the decoded frames that still overlap the stream (a ring of ``ceil(K / S)``
  frames), and encode a frame when its last sample arrives;
* the level-normalising front end keeps its longest window of input;
* branches that look ahead (the FIR branch's look-ahead taps, the ``conv`` model's
  centred frames) make the stream late by ``latency`` samples: the output of a call is
  the whole-file output ``latency`` samples earlier (zeros before the stream began), and
  every branch is delayed to that time.

So a stream's output equals the whole-file output (to float rounding, tested to 1e-5) for
any block sizes, and ``latency`` is the algorithmic delay in samples (0 for a causal model).
The state also counts the stream's position (modulo the frame length) for the frame
arithmetic. Models: ``hybrid``, ``wavenet``, ``tcn`` (causal) and ``conv`` (causal latent,
no modulation branch); :class:`NotStreamable` says why another one is not.

Shapes: ``audio [batch, N]`` float32 -> ``wet [batch, N]``; N may change from call to call.

:meth:`Streamer.fixed_step` is the same step for one block size N, a multiple of the frame
length, on a stream fed only such blocks: every offset is then a constant and every shape
static (no data-dependent frame count), the form TFLite runs fastest (built-in operators,
no tensor resizing). Both forms share the state, so a stream may switch between them.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from trainer import architectures as arch  # pylint: disable=g-import-not-at-top
from trainer import layers as layers_lib  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

STREAMABLE = ('hybrid', 'wavenet', 'tcn', 'conv')
#: The position counter is kept below this (a multiple of every frame length is
#: subtracted), so it stays an exact integer in float32 however long the stream runs.
POSITION_WRAP = 1 << 20


class NotStreamable(ValueError):
  """The model has no streaming form; the message says why."""


def streamable(config: TrainConfig) -> str:
  """'' if ``config``'s model can stream, else the reason it cannot."""
  if config.model not in STREAMABLE:
    return (f'the {config.model} model has no streaming form (streamable: '
            f'{", ".join(STREAMABLE)})')
  if config.model in ('tcn', 'conv') and not config.causal:
    return f'a {config.model} model with causal=False looks ahead in every layer'
  if config.model == 'conv' and config.modulation_channels:
    return 'the conv model\'s modulation branch has no streaming form'
  return ''


class _State:
  """Named parts of the flat state vector, each ``[batch, *shape]``."""

  def __init__(self):
    self.parts: List[Tuple[str, Tuple[int, ...]]] = []

  def add(self, name: str, *shape: int) -> str:
    self.parts.append((name, tuple(int(s) for s in shape)))
    return name

  @property
  def size(self) -> int:
    return sum(math.prod(shape) for _, shape in self.parts)

  def unpack(self, flat) -> Dict[str, tf.Tensor]:
    """``[batch, size]`` -> the parts. Only static-size slices and reshapes (a
    zero-size part, which no operation reads, is a zeros tensor of its shape)."""
    out, offset = {}, 0
    for name, shape in self.parts:
      n = math.prod(shape)
      if n:
        out[name] = tf.reshape(flat[:, offset:offset + n], [-1, *shape])
      else:
        out[name] = tf.zeros(tf.concat([tf.shape(flat)[:1], shape], 0))
      offset += n
    return out

  def pack(self, values: Dict[str, tf.Tensor]):
    return tf.concat([tf.reshape(values[name], [-1, math.prod(shape)])
                      for name, shape in self.parts if math.prod(shape)], axis=1)


def _length(x, axis: int = 1):
  """The size of ``x`` along ``axis``: a Python int when it is static, else a tensor."""
  size = x.shape[axis]
  return int(size) if size is not None else tf.shape(x)[axis]


def _with_past(past, new):
  """``concat(past, new)`` along time, and the new past: its last ``len(past)`` samples."""
  keep = past.shape[1]
  if not keep:
    return new, past
  joined = tf.concat([past, new], axis=1)
  return joined, joined[:, -keep:]


def _conv_valid(layer: keras.layers.Conv1D, x):
  """A Keras (Silent)Conv1D on ``x`` without its padding ('VALID'): the last
  ``len(x) - reach`` outputs of the layer on a stream whose past ``x`` begins with."""
  y = tf.nn.conv1d(x, layer.kernel, stride=1, padding='VALID',
                   dilations=layer.dilation_rate[0])
  if layer.use_bias:
    y = y + layer.bias
  if layer.activation is not None and layer.activation is not keras.activations.linear:
    out = layer.activation(y)
    if isinstance(layer, layers_lib.SilentConv1D) and layer.use_bias:
      out = out - layer.activation(layer.bias)
    return out
  return y


def _last(x, n):
  """The last ``n`` steps of ``x [b, t, c]`` (a 'VALID' convolution of an input no longer
  than its reach returns a wrong length in TensorFlow; this keeps exactly the new ones)."""
  return x[:, _length(x) - n:]


def _conv_reach(layer: keras.layers.Conv1D) -> int:
  return (layer.kernel_size[0] - 1) * layer.dilation_rate[0]


def _split_time(x, *inner: int):
  """``x [b, t, ...]`` -> ``[b, t, *inner]`` (with a static ``t``, no shape operations)."""
  if x.shape[1] is not None:
    return tf.reshape(x, [-1, int(x.shape[1]), *inner])
  return tf.reshape(x, tf.concat([tf.shape(x)[:2], inner], 0))


def _overlap_add(frames, hop: int):
  """``frames [b, F, K, m]`` overlap-added at ``hop`` -> ``[b, (F + Q - 1) hop, m]``,
  ``Q = ceil(K / hop)``: frame f starts at sample ``f hop`` (the end is zeros past
  ``(F - 1) hop + K``). Pads, slices and adds only (TFLite has no overlap-add kernel)."""
  k, m = int(frames.shape[2]), int(frames.shape[3])
  q = -(-k // hop)
  if q * hop > k:
    frames = tf.pad(frames, [[0, 0], [0, 0], [0, q * hop - k], [0, 0]])
  total = tf.add_n([tf.pad(frames[:, :, j * hop:(j + 1) * hop], [[0, 0], [j, q - 1 - j],
                                                                  [0, 0], [0, 0]])
                    for j in range(q)])                           # [b, F + Q - 1, hop, m]
  if total.shape[1] is not None:
    return tf.reshape(total, [-1, int(total.shape[1]) * hop, m])
  return tf.reshape(total, tf.stack([tf.shape(total)[0], -1, m]))


#: Phases of :func:`_correlate`: its convolution has this many channels in and out.
_PHASES = 32


def _correlate(x, taps, n):
  """``y[t] = sum_j taps[j] x[t + j]`` for ``t < n``: ``x [b, n + T - 1, 1]``, ``taps
  [T]`` -> ``[b, n, 1]`` (a 'VALID' one-channel convolution), computed on ``P`` phases:
  ``y[a P + r] = sum_i sum_s X[a + i, s] W_i[s, r]`` with ``X[a, s] = x[a P + s]`` and
  ``W_i[s, r] = taps[i P + s - r]`` (0 outside the taps), a P-channel convolution of
  ``ceil((T + P - 1) / P)`` taps: about the same multiply-adds, but a long one-channel
  filter is many times slower in TFLite (with or without XNNPACK)."""
  p, t = _PHASES, int(taps.shape[0])
  width = (t + p - 2) // p + 1                                 # kernel taps i
  index = (p * np.arange(width)[:, None, None] + np.arange(p)[None, :, None]
           - np.arange(p)[None, None, :])                      # [i, s, r] -> tap
  index = np.where((index >= 0) & (index < t), index, t).astype(np.int32)
  kernel = tf.gather(tf.concat([taps, tf.zeros([1], taps.dtype)], 0), index)  # [i, s, r]
  rows = -(-n // p)                                            # y in rows of p samples
  x = tf.pad(x, [[0, 0], [0, (rows + width - 1) * p - _length(x)], [0, 0]])
  if isinstance(rows, int):
    y = tf.nn.conv1d(tf.reshape(x, [-1, rows + width - 1, p]), kernel, 1, 'VALID')
    return tf.reshape(y, [-1, rows * p, 1])[:, :n]
  y = tf.nn.conv1d(tf.reshape(x, tf.stack([tf.shape(x)[0], -1, p])), kernel, 1, 'VALID')
  return tf.reshape(y, tf.stack([tf.shape(y)[0], -1, 1]))[:, :n]


class _FramePath:
  """A strided conv encoder -> pointwise/causal latent -> Conv1DTranspose decoder, run on
  frames as their last sample arrives. ``first`` is where frame 0 starts relative to the
  stream (``-(K - 1)`` for the causal condition path, ``-overlap`` for the conv model):
  frame f encodes input ``[f S + first, f S + first + K)`` and writes output samples
  ``[f S + out_first, f S + out_first + K)``."""

  def __init__(self, state: _State, name: str, encoder, latent, decoder, stride: int,
               first: int, out_first: int):
    """``latent``: the layers between encoder and decoder in order, each a pointwise
    layer or a ``(causal conv, 1x1 mix)`` residual pair (``z + mix(conv(z))``)."""
    self.encoder, self.decoder = encoder, decoder
    self.s, self.k = int(stride), int(encoder.kernel_size[0])
    self.first, self.out_first = int(first), int(out_first)
    self.last = self.first + self.k - 1                         # frame f's last sample - f S
    self.ring = -(-self.k // self.s)                            # frames overlapping a sample
    channels = int(encoder.filters)
    self.x_past = state.add(f'{name}/input', self.k - 1, 1)
    self.latent = []
    for item in latent:
      if isinstance(item, tuple):
        conv, mix = item
        past = state.add(f'{name}/{conv.name}', _conv_reach(conv), channels)
        self.latent.append((conv, mix, past))
      else:
        self.latent.append((item, None, None))
    self.decoded = state.add(f'{name}/decoded', self.ring, self.k, int(decoder.filters))

  def step(self, state, new_state, x, position, count, lookahead: int, aligned: bool):
    """``x [b, n, 1]``, the stream's samples from ``position`` (``[b, 1]`` float, exact
    integers) -> the path's output ``[b, n, out]`` for samples ``[position - lookahead,
    position - lookahead + n)`` (every frame reaching them must be complete: ``lookahead``
    at least the path's own). ``aligned``: ``n`` is static, a multiple of S, and
    ``position`` a multiple of S, so the block completes exactly ``n / S`` frames and
    every offset is a constant (static shapes, built-in TFLite operations only); else
    the frames and offsets are computed from ``position`` for any ``n``."""
    s, k = self.s, self.k
    x_ext, new_state[self.x_past] = _with_past(state[self.x_past], x)  # from position-(k-1)
    if aligned:
      # position = p S: frames p - behind ... p - behind + n / S - 1 end in the block,
      # the first of them at x_ext[last % S].
      behind = self.last // s
      frames_new, start = count // s, self.last % s
      z = tf.nn.conv1d(x_ext[:, start:start + (frames_new - 1) * s + k], self.encoder.kernel,
                       stride=s, padding='VALID')                # [b, F, c]
      if behind:    # frames before frame 0 (the stream's start) are silent
        index = position / s - behind + tf.range(frames_new, dtype=tf.float32)
        z = z * tf.cast(index >= 0, z.dtype)[:, :, None]
      offset = (behind + self.ring) * s - self.out_first - lookahead
    else:
      a = tf.cast(position[0, 0], tf.int32)
      # Frames whose last sample f S + last lies in [a, a + n): f0 .. f1.
      f0 = tf.maximum(0, -((-(a - self.last)) // s))
      f1 = (a + count - 1 - self.last) // s
      frames_new = tf.maximum(0, f1 - f0 + 1)
      start = f0 * s + self.first - (a - k + 1)                 # frame f0 in x_ext
      tail = x_ext[:, tf.minimum(start, tf.shape(x_ext)[1]):, 0]
      frames = tf.signal.frame(tail, k, s)[:, :frames_new]       # [b, F, k]
      z = tf.einsum('bfk,kc->bfc', frames, self.encoder.kernel[:, 0, :])
      offset = a - lookahead - (f0 - self.ring) * s - self.out_first
    for layer, mix, past in self.latent:
      if mix is None:
        z = layer(z)                                             # pointwise
      else:
        z_ext, new_state[past] = _with_past(state[past], z)
        z = z + mix(_last(_conv_valid(layer, z_ext), _length(z)))
    kernel = self.decoder.kernel                                 # [k, m, c]
    m = int(kernel.shape[1])
    decoded = _split_time(tf.matmul(z, tf.reshape(tf.transpose(kernel, [2, 0, 1]),
                                                  [-1, k * m])), k, m)  # [b, F, k, m]
    ring = tf.concat([state[self.decoded], decoded], axis=1)      # frames f0 - ring .. f0 + F - 1
    new_state[self.decoded] = ring[:, -self.ring:]
    signal = _overlap_add(ring, s)              # [b, L, m]; [0] is sample (f0 - ring) S + out_first
    return signal[:, offset:offset + count]


class Streamer(tf.Module):
  """The streaming form of a trained fxemu model; see the module docstring.

  ``step(audio [b, n], state [b, state_size]) -> (wet [b, n], state)``; start a stream
  with :meth:`initial_state`. Layers and weights are the model's own (no copy).
  """

  def __init__(self, core: keras.Model, config: TrainConfig):
    super().__init__(name='fxemu_streamer')
    reason = streamable(config)
    if reason:
      raise NotStreamable(reason)
    self.core, self.config = core, config
    self.layers = {layer.name: layer for layer in core.layers}
    self.latency = int(receptive_field.receptive_field_extent(config)[1])
    self._state = _State()
    self._position = self._state.add('position', 1)
    self._agc = self.layers.get('agc')
    if self._agc is not None:
      self._agc_past = self._state.add('agc/input', max(receptive_field.agc_windows(config)) - 1, 1)
    self._fir = arch.fir_layer(core)
    if self._fir is not None:
      self._fir_past = self._state.add('fir/input', self._fir.taps - 1, 1)
      self._fir_delay = self._state.add('fir/delay', self.latency - self._fir.lookahead, 1)
    self._frame_path = None
    self._main_lookahead = 0      # the main path's output lags its input by this
    if config.model == 'conv':
      self._build_conv(config)
    elif config.model == 'tcn':
      self._build_tcn(config)
    else:
      self._build_wavenet(config)
    self.state_size = self._state.size
    self.frame = config.conv_stride if self._frame_path is not None else 1

  # --- construction ----------------------------------------------------------------

  def _build_wavenet(self, config: TrainConfig) -> None:
    self._arrays = []
    for a in range(len(config.wavenet_channels)):
      layers = [self.layers[f'array{a}_layer{i}'] for i in range(len(config.wavenet_dilations))]
      pasts = [self._state.add(f'{l.name}/h', l.reach, l.channels) for l in layers]
      self._arrays.append((self.layers[f'array{a}_rechannel'], layers, pasts,
                           self.layers['head' if a == len(config.wavenet_channels) - 1
                                       else f'array{a}_head']))
    if config.model == 'hybrid' and config.condition_channels:
      latent = [self.layers[f'condition_dense_{i}'] for i in range(config.latent_dense_layers)]
      latent += [(self.layers[f'condition_conv_{i}'], self.layers[f'condition_mix_{i}'])
                 for i in range(len(config.condition_dilations))]
      latent.append(self.layers['condition_out'])
      k = config.conv_kernel
      self._frame_path = _FramePath(self._state, 'condition', self.layers['condition_encoder'],
                                    latent, self.layers['condition_decoder'], config.conv_stride,
                                    first=-(k - 1), out_first=0)
    self._main_delay = self._state.add('main/delay', self.latency, 1)

  def _build_tcn(self, config: TrainConfig) -> None:
    self._tcn = []
    for i in range(len(config.tcn_dilations)):
      filt, gate = self.layers[f'filter_{i}'], self.layers[f'gate_{i}']
      # The last layer's residual mix feeds nothing, so Keras left it out of the model.
      self._tcn.append((filt, gate, self.layers.get(f'mix_{i}'),
                        self._state.add(f'tcn_{i}/h', _conv_reach(filt), config.tcn_channels)))
    self._main_delay = self._state.add('main/delay', self.latency, 1)

  def _build_conv(self, config: TrainConfig) -> None:
    s, k = config.conv_stride, config.conv_kernel
    overlap = (k - s) // 2
    latent = [self.layers[f'frame_dense_{i}'] for i in range(config.latent_dense_layers)]
    latent += [(self.layers[f'latent_conv_{i}'], self.layers[f'latent_mix_{i}'])
               for i in range(len(config.latent_dilations))]
    latent.append(self.layers['frame_out'])
    self._frame_path = _FramePath(self._state, 'conv', self.layers['encoder'], latent,
                                  self.layers['decoder'], s, first=-overlap, out_first=-overlap)
    # Frame f covers [f S - overlap, f S - overlap + K) and is encoded when its last
    # sample arrives: a sample's output is complete K - 1 samples later (at worst).
    self._main_lookahead = k - 1
    self._main_delay = self._state.add('main/delay', self.latency - self._main_lookahead, 1)

  # --- running ---------------------------------------------------------------------

  def initial_state(self, batch: int = 1):
    """The state of a stream that has not begun: ``[batch, state_size]`` zeros."""
    return tf.zeros([batch, self.state_size], tf.float32)

  @staticmethod
  def _delayed(past, y):
    """``y`` delayed by ``len(past)`` samples through the FIFO ``past``."""
    if not past.shape[1]:
      return y, past
    joined = tf.concat([past, y], axis=1)
    n = _length(y)
    return joined[:, :n], joined[:, n:]

  def step(self, audio, state):
    """One block: ``audio [b, n]`` float32 and ``state [b, state_size]`` ->
    ``(wet [b, n], new state)``; ``wet`` is the whole-stream output ``latency`` samples
    earlier. ``n`` may be any size (0 included) and change from call to call."""
    return self._step(audio, state, aligned=False)

  def fixed_step(self, audio, state):
    """:meth:`step` for a block whose size N is static (known when traced) and a multiple
    of :attr:`frame`, on a stream whose position is a multiple of :attr:`frame` (one fed
    only such blocks since it began). The same output and state as :meth:`step` (the
    two may take turns on one stream), from a graph of static shapes whose offsets are
    constants: TFLite runs it with built-in operators only, without resizing tensors."""
    n = audio.shape[1]
    if n is None or n % self.frame:
      raise ValueError(f'fixed_step needs a static block size that is a multiple of '
                       f'{self.frame} samples, got {n}')
    return self._step(audio, state, aligned=True)

  def _step(self, audio, state, aligned: bool):
    audio = tf.convert_to_tensor(audio, tf.float32)
    parts = self._state.unpack(tf.convert_to_tensor(state, tf.float32))
    new: Dict[str, tf.Tensor] = dict(parts)
    position = parts[self._position]                               # [b, 1]
    count = _length(audio)
    x = audio[:, :, None]                                          # [b, n, 1]
    if self._agc is not None:
      x_ext, new[self._agc_past] = _with_past(parts[self._agc_past], x)
      x = _last(self._agc(x_ext), count)
    if self.config.model == 'conv':
      main = self._frame_path.step(parts, new, x, position, count, self._main_lookahead,
                                   aligned)
    elif self.config.model == 'tcn':
      main = self._tcn_main(parts, new, x)
    else:
      main = self._wavenet_main(parts, new, x, position, count, aligned)
    wet, new[self._main_delay] = self._delayed(parts[self._main_delay], main)
    if self._fir is not None:
      x_ext, new[self._fir_past] = _with_past(parts[self._fir_past], x)
      fir = _correlate(x_ext, tf.reverse(self._fir.filter, [0]), count)  # sample t - lookahead
      fir, new[self._fir_delay] = self._delayed(parts[self._fir_delay], fir)
      wet = wet + fir
    if self.latency:   # before the stream began the output is silence (look-ahead taps
      # have already seen its first samples)
      time = position - self.latency + tf.cast(tf.range(count), tf.float32)   # [b, n]
      wet = tf.where((time >= 0)[:, :, None], wet, 0.0)
    position = position + tf.cast(count, tf.float32)
    wrap = float(POSITION_WRAP // self.frame * self.frame)
    new[self._position] = tf.where(position >= 2 * wrap, position - wrap, position)
    return wet[:, :, 0], self._state.pack(new)

  def _wavenet_main(self, parts, new, x, position, count, aligned):
    """The layer arrays (:class:`trainer.layers.WaveNetLayer` in fewer operations): every
    layer's 1x1 condition mix and bias in one product per array, and each layer's
    ``act(z + b) - act(b)`` with the constant ``act(b)`` moved into the residual's bias
    and subtracted once from the head's sum."""
    condition = x
    if self._frame_path is not None:
      slow = self._frame_path.step(parts, new, x, position, count, 0, aligned)
      condition = tf.concat([x, slow], axis=-1)
    h, head = x, None
    for rechannel, layers, pasts, head_layer in self._arrays:
      h = rechannel(h)
      mixes = tf.split(
          tf.matmul(condition, tf.concat([l.mix_kernel[0] for l in layers], axis=1))
          + tf.concat([l.bias for l in layers], axis=0),
          [int(l.bias.shape[0]) for l in layers], axis=-1)   # each [b, n, width]
      heads, rest = ([] if head is None else [head]), 0.0
      for layer, past, mix in zip(layers, pasts, mixes):
        h_ext, new[past] = _with_past(parts[past], h)
        active = layer.activate(tf.nn.conv1d(h_ext, layer.conv_kernel, stride=1,
                                             padding='VALID', dilations=layer.dilation) + mix)
        at_rest = layer.activate(layer.bias)                       # the output at silence
        residual = layer.residual_kernel[0]
        h = h + tf.nn.bias_add(tf.matmul(active, residual), -tf.linalg.matvec(residual, at_rest,
                                                                              transpose_a=True))
        heads.append(active)
        rest = rest + at_rest
      head = head_layer(tf.add_n(heads) - rest)
    return self.layers['head_scale'](head)

  def _tcn_main(self, parts, new, x):
    h = self.layers['input_mix'](x)
    skips = []
    for filt, gate, mix, past in self._tcn:
      h_ext, new[past] = _with_past(parts[past], h)
      gated = _conv_valid(filt, h_ext) * _conv_valid(gate, h_ext)
      skips.append(gated)
      if mix is not None:
        h = h + mix(gated)
    mixed = self.layers['post'](tf.concat(skips, axis=-1))
    return self.layers['out'](mixed)
