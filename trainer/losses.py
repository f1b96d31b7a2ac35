"""Training losses for audio, one per class (Keras 2 / tf_keras).

Every loss takes ``y_true`` and ``y_pred`` of shape ``[batch, samples]`` (float32, full
scale 1.0) and returns one value per example, ``[batch]``; Keras averages them over the
batch. The ratio losses (ESR, pre-emphasised ESR, DC) divide each example's error by the
*batch mean* of the target energies, so that their batch average is the ratio of the
summed error to the summed target energy -- the same definition as the evaluation
metrics (quiet examples are not over-weighted). ``esr_per_example`` is the exception, on
purpose: Neural Amp Modeler's mean of per-example ratios.

A loss specification is a ``+``-separated sum of optionally weighted terms, e.g.
``"esr"``, ``"esr_preemphasis+0.1*mrstft"``; see :func:`trainer.config.parse_loss_spec`.
"""
from __future__ import annotations

import os
from typing import Sequence, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from trainer.config import parse_loss_spec  # pylint: disable=g-import-not-at-top

EPS = 1e-8


def _batch_normalised(error: tf.Tensor, energy: tf.Tensor) -> tf.Tensor:
  """error_i / mean_j(energy_j): per-example values whose mean is sum(error)/sum(energy)."""
  return error / (tf.reduce_mean(energy) + EPS)


class ESRLoss(keras.losses.Loss):
  """Error-to-signal ratio  sum((y - y_hat)^2) / sum(y^2)  (dimensionless, 0 = perfect).

  Sums run over all samples of the batch. ESR is the standard measure for audio-effect
  emulation (Wright et al., 2019): the error energy relative to the target energy, so
  -20 dB (0.01) means the error is 20 dB below the signal.
  """

  def __init__(self, name: str = 'esr', **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    error = tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)      # [batch]
    return self.normalise(error, tf.reduce_sum(tf.square(y_true), axis=-1))

  @staticmethod
  def normalise(error: tf.Tensor, energy: tf.Tensor) -> tf.Tensor:
    """Each example's error ``[batch]`` over the batch mean of the energies ``[batch]``."""
    return _batch_normalised(error, energy)


#: esr_per_example: an example's target energy counts as at least this fraction of the
#: batch's mean energy (-40 dB), so a silent crop cannot dominate the batch.
PER_EXAMPLE_ENERGY_FLOOR = 1e-4


class PerExampleESRLoss(ESRLoss):
  """ESR of every example on its own, ``sum_n (y - y_hat)^2 / sum_n y^2`` (dimensionless).

  Neural Amp Modeler's definition: Keras averages the ratios over the batch, so a quiet
  example weighs as much as a loud one (plain :class:`ESRLoss` weighs examples by their
  energy). Targets quieter than ``PER_EXAMPLE_ENERGY_FLOOR`` times the batch mean count
  as that quiet.
  """

  def __init__(self, name: str = 'esr_per_example', **kwargs):
    super().__init__(name=name, **kwargs)

  @staticmethod
  def normalise(error: tf.Tensor, energy: tf.Tensor) -> tf.Tensor:
    """Each example's error ``[batch]`` over its own energy (floored)."""
    floor = PER_EXAMPLE_ENERGY_FLOOR * tf.reduce_mean(energy) + EPS
    return error / tf.maximum(energy, floor)


def preemphasize(x: tf.Tensor, coefficient: float) -> tf.Tensor:
  """First-order high-pass ``x[n] - a * x[n-1]`` along the last axis (x[-1] taken as 0)."""
  previous = tf.pad(x[..., :-1], [[0, 0]] * (len(x.shape) - 1) + [[1, 0]])
  return x - coefficient * previous


class PreEmphasisESRLoss(keras.losses.Loss):
  """ESR after a first-order pre-emphasis filter ``H(z) = 1 - a z^-1`` on both signals.

  Pre-emphasis raises the weight of high frequencies (about +20 dB near Nyquist for
  a = 0.95 against -26 dB at DC), where plain ESR lets a model be lazy because audio
  energy is concentrated in the bass.

  Args:
    coefficient: a, in [0, 1); 0 gives plain ESR.
  """

  def __init__(self, coefficient: float = 0.95, name: str = 'esr_preemphasis', **kwargs):
    super().__init__(name=name, **kwargs)
    self.coefficient = float(coefficient)

  def call(self, y_true, y_pred):
    y_true = preemphasize(tf.cast(y_true, tf.float32), self.coefficient)
    y_pred = preemphasize(tf.cast(y_pred, tf.float32), self.coefficient)
    error = tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)
    return _batch_normalised(error, tf.reduce_sum(tf.square(y_true), axis=-1))

  def get_config(self):
    return {**super().get_config(), 'coefficient': self.coefficient}


class DCLoss(keras.losses.Loss):
  """DC error ``(mean(y) - mean(y_hat))^2 / mean(y^2)`` (Wright et al., 2019).

  Penalises an offset that ESR alone barely sees on long windows.
  """

  def __init__(self, name: str = 'dc', **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    error = tf.square(tf.reduce_mean(y_true - y_pred, axis=-1))
    return _batch_normalised(error, tf.reduce_mean(tf.square(y_true), axis=-1))


class MSELoss(keras.losses.Loss):
  """Mean squared error per example (full-scale units squared)."""

  def __init__(self, name: str = 'mse', **kwargs):
    super().__init__(name=name, **kwargs)

  def call(self, y_true, y_pred):
    return tf.reduce_mean(tf.square(tf.cast(y_true, tf.float32) - tf.cast(y_pred, tf.float32)),
                          axis=-1)


class MultiResolutionSTFTLoss(keras.losses.Loss):
  """Multi-resolution STFT loss (Yamamoto et al., 2020; as in auraloss).

  For every FFT size N (Hann window of N samples, hop N/4) it adds the spectral
  convergence ``||S - S_hat||_F / ||S||_F`` and the mean absolute log-magnitude error
  ``mean|log(S + eps) - log(S_hat + eps)|``, and averages over resolutions. It is
  insensitive to small phase errors and stresses what is audible (spectral shape), so
  it is best combined with a waveform loss, e.g. ``esr + 0.1*mrstft``.

  Args:
    fft_sizes: FFT sizes (samples); each must be <= the example length.
  """

  def __init__(self, fft_sizes: Sequence[int] = (2048, 512, 128), name: str = 'mrstft',
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.fft_sizes = tuple(int(n) for n in fft_sizes)

  def call(self, y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    total = 0.0
    for size in self.fft_sizes:
      def magnitude(x, size=size):
        spectrum = tf.signal.stft(x, frame_length=size, frame_step=size // 4,
                                  fft_length=size, window_fn=tf.signal.hann_window,
                                  pad_end=True)
        return tf.abs(spectrum) + 1e-7   # [batch, frames, bins]
      s_true, s_pred = magnitude(y_true), magnitude(y_pred)
      convergence = tf.norm(s_true - s_pred, axis=[-2, -1]) / (
          tf.norm(s_true, axis=[-2, -1]) + EPS)
      log_error = tf.reduce_mean(tf.abs(tf.math.log(s_true) - tf.math.log(s_pred)),
                                 axis=[-2, -1])
      total += convergence + log_error
    return total / len(self.fft_sizes)

  def get_config(self):
    return {**super().get_config(), 'fft_sizes': list(self.fft_sizes)}


class WeightedSumLoss(keras.losses.Loss):
  """Sum of weighted losses: ``sum_k w_k * loss_k(y, y_hat)`` per example."""

  def __init__(self, terms: Sequence[Tuple[float, keras.losses.Loss]], name: str = 'loss',
               **kwargs):
    super().__init__(name=name, **kwargs)
    self.terms = list(terms)

  def call(self, y_true, y_pred):
    return tf.add_n([weight * loss.call(y_true, y_pred) for weight, loss in self.terms])


def make_loss(config) -> keras.losses.Loss:
  """The training loss described by ``config.loss`` (a :class:`TrainConfig`)."""
  factories = {
      'mse': MSELoss,
      'esr': ESRLoss,
      'esr_per_example': PerExampleESRLoss,
      'esr_preemphasis': lambda: PreEmphasisESRLoss(config.preemphasis),
      'mrstft': lambda: MultiResolutionSTFTLoss(config.stft_fft_sizes),
      'dc': DCLoss,
  }
  terms = [(weight, factories[name]()) for weight, name in parse_loss_spec(config.loss)]
  if len(terms) == 1 and terms[0][0] == 1.0:
    return terms[0][1]
  return WeightedSumLoss(terms)
