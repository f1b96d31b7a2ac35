"""Keras callbacks of the trainer: a step budget and best-weights restoration."""
from __future__ import annotations

import os
from typing import Optional

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top


class StepBudget(keras.callbacks.Callback):
  """Stops training once ``max_steps`` optimizer steps have run (mid-epoch if needed)."""

  def __init__(self, max_steps: int):
    super().__init__()
    self.max_steps = int(max_steps)
    self.steps = 0

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    if self.steps >= self.max_steps:
      self.model.stop_training = True


class RestoreBest(keras.callbacks.Callback):
  """Keeps the weights of the epoch with the lowest ``monitor`` and restores them at the end.

  Unlike ``EarlyStopping(restore_best_weights=True)`` it also restores when training
  ends by exhausting its epochs or step budget, and it can start from the evaluated
  initial weights (:meth:`start_from`), so training never returns a model worse than
  its starting point (e.g. a least-squares FIR). ``best_epoch`` is 1-based; 0 means the
  initial weights.
  """

  def __init__(self, monitor: str = 'val_esr_db'):
    super().__init__()
    self.monitor = monitor
    self.best: float = np.inf
    self.best_epoch: Optional[int] = None
    self._weights = None

  def start_from(self, model: keras.Model, value: float) -> None:
    """Records ``model``'s current weights as epoch 0 with monitored value ``value``."""
    if np.isfinite(value):
      self.best, self.best_epoch, self._weights = float(value), 0, model.get_weights()

  def on_epoch_end(self, epoch, logs=None):
    value = (logs or {}).get(self.monitor)
    if value is not None and np.isfinite(value) and value < self.best:
      self.best, self.best_epoch = float(value), epoch + 1
      self._weights = self.model.get_weights()

  def on_train_end(self, logs=None):
    if self._weights is not None:
      self.model.set_weights(self._weights)
