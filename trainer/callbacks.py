"""Keras callbacks of the trainer: step and wall-clock budgets, best-weights restoration,
validation of the averaged weights."""
from __future__ import annotations

import math
import os
import time
from typing import Optional

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top


def base_optimizer(model: keras.Model) -> keras.optimizers.Optimizer:
  """The optimizer that holds the learning rate and the weight average: ``model``'s own,
  or the one inside its LossScaleOptimizer (mixed_float16)."""
  optimizer = model.optimizer
  return getattr(optimizer, 'inner_optimizer', optimizer)


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


class TimeBudget(keras.callbacks.Callback):
  """Wall-clock budget: a cosine learning rate over the budget, then a stop.

  Progress is the larger of the time spent (``elapsed / seconds``) and the steps run
  (``step / total_steps``, if given), so the schedule follows whichever budget ends first.
  Before every batch the optimizer's learning rate is set to
  ``peak x warm-up(step) x (f + (1 - f) (1 + cos(pi x progress)) / 2)``, with f =
  ``min_fraction`` and a linear warm-up over the first ``warmup_steps`` steps, so the rate
  reaches its minimum when the time is up, however fast the machine is; after the batch
  that spends the time, training stops (the epoch's validation still runs). The clock
  starts at the first batch. With ``peak`` None it only stops (another schedule rules).
  """

  def __init__(self, seconds: float, peak: Optional[float] = None, min_fraction: float = 0.0,
               warmup_steps: int = 0, total_steps: int = 0):
    super().__init__()
    self.seconds, self.peak = float(seconds), peak
    self.min_fraction, self.warmup_steps = float(min_fraction), int(warmup_steps)
    self.total_steps = int(total_steps)
    self.steps = 0
    self.start: Optional[float] = None
    self.elapsed = 0.0

  def rate(self, elapsed: float, step: int) -> float:
    """The learning rate after ``elapsed`` seconds at optimizer step ``step`` (0-based)."""
    fraction = elapsed / self.seconds
    if self.total_steps:
      fraction = max(fraction, step / self.total_steps)
    fraction = min(1.0, max(0.0, fraction))
    cosine = self.min_fraction + (1.0 - self.min_fraction) * 0.5 * (
        1.0 + math.cos(math.pi * fraction))
    warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
    return self.peak * warm * cosine

  def on_train_batch_begin(self, batch, logs=None):
    if self.start is None:
      self.start = time.monotonic()
    if self.peak is None:
      return
    rate = self.rate(time.monotonic() - self.start, self.steps)
    keras.backend.set_value(base_optimizer(self.model).learning_rate, rate)

  def on_train_batch_end(self, batch, logs=None):
    self.steps += 1
    self.elapsed = time.monotonic() - self.start
    if self.elapsed >= self.seconds:
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


class ValidateAveragedWeights(keras.callbacks.Callback):
  """With an optimizer that keeps a moving average of the weights (``use_ema``), every
  validation during ``fit`` scores the averaged weights, and a :class:`RestoreBest` listed
  before this callback keeps them; training then goes on from the raw weights.

  The averaged weights go in when the validation begins and the raw ones come back at the
  end of the epoch, after the callbacks listed before this one have seen the epoch.
  """

  def __init__(self):
    super().__init__()
    self._raw = None

  def on_test_begin(self, logs=None):
    inner = base_optimizer(self.model)
    if not getattr(inner, 'use_ema', False) or not inner.iterations.numpy():
      return
    self._raw = self.model.get_weights()
    inner.finalize_variable_values(self.model.trainable_variables)

  def on_epoch_end(self, epoch, logs=None):
    if self._raw is not None:
      self.model.set_weights(self._raw)
      self._raw = None
