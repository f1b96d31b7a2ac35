"""Streaming Keras metrics reported during training (``esr``, ``esr_db``).

Unlike a loss averaged over batches, these accumulate the error and target energies
over every sample seen in an epoch (or in the whole eval split), so ``val_esr`` is the
ESR of the eval split -- the same definition as the TFMA metric in
:mod:`trainer.metrics`. Inputs are ``[batch, samples]``.
"""
from __future__ import annotations

import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top


class _EnergyRatio(keras.metrics.Metric):
  """Accumulates sum((y - y_hat)^2) and sum(y^2) in float64."""

  def __init__(self, name: str, **kwargs):
    super().__init__(name=name, **kwargs)
    self.error = self.add_weight('error', initializer='zeros', dtype=tf.float64)
    self.energy = self.add_weight('energy', initializer='zeros', dtype=tf.float64)

  def update_state(self, y_true, y_pred, sample_weight=None):
    y_true = tf.cast(y_true, tf.float64)
    y_pred = tf.cast(y_pred, tf.float64)
    error = tf.reduce_sum(tf.square(y_true - y_pred), axis=-1)
    energy = tf.reduce_sum(tf.square(y_true), axis=-1)
    if sample_weight is not None:
      weight = tf.reshape(tf.cast(sample_weight, tf.float64), [-1])
      error, energy = error * weight, energy * weight
    self.error.assign_add(tf.reduce_sum(error))
    self.energy.assign_add(tf.reduce_sum(energy))

  def ratio(self):
    return self.error / tf.maximum(self.energy, 1e-12)

  def reset_state(self):
    self.error.assign(0.0)
    self.energy.assign(0.0)


class ESR(_EnergyRatio):
  """Error-to-signal ratio over all samples seen (dimensionless)."""

  def __init__(self, name: str = 'esr', **kwargs):
    super().__init__(name=name, **kwargs)

  def result(self):
    return tf.cast(self.ratio(), tf.float32)


class ESRdB(_EnergyRatio):
  """ESR over all samples seen, in dB (10 log10, floored at -300 dB)."""

  def __init__(self, name: str = 'esr_db', **kwargs):
    super().__init__(name=name, **kwargs)

  def result(self):
    ratio = tf.maximum(self.ratio(), 1e-30)
    return tf.cast(10.0 * tf.math.log(ratio) / tf.math.log(tf.constant(10.0, tf.float64)),
                   tf.float32)
