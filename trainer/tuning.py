"""TFX Tuner entry point: ``tuner_fn`` (module path ``trainer.tuning.tuner_fn``), for
``fxemu run --tune``.

KerasTuner's random search tries ``tune_trials`` points of :func:`search_space` (the
model family, the WaveNet layer arrays' channels, the peak learning rate, the AGC front
end on or off, the FIR branch on or off). Each trial trains its model exactly as the
Trainer does (:func:`trainer.model.train`: same data, loss, schedule, FIR start,
best-weights restore) for ``tune_seconds / tune_trials`` seconds of wall clock, and is
scored by its best eval ESR (``val_esr_db``, dB, lower is better). The Tuner writes the
best point as ``best_hyperparameters``; the Trainer's ``run_fn`` puts it over its
TrainConfig (:meth:`TrainConfig.with_tuned`) and trains with the full ``train_seconds``,
as TFX intends.

``fn_args.custom_config``: a TrainConfig dict plus ``schema.contract.TUNE_TRIALS`` and
``TUNE_SECONDS`` (the pipeline adds them).
"""
from __future__ import annotations

import os
from typing import Any, Dict

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from absl import logging  # pylint: disable=g-import-not-at-top
import keras_tuner  # pylint: disable=g-import-not-at-top
from tfx import v1 as tfx  # pylint: disable=g-import-not-at-top

from schema import contract
from trainer import distribute  # pylint: disable=g-import-not-at-top
from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

OBJECTIVE = model_lib.MONITOR    # val_esr_db, minimised

#: The search: TrainConfig field -> the values tried (sequences as strings: KerasTuner's
#: choices are scalars).
SEARCH_SPACE: Dict[str, list] = {
    'model': ['hybrid', 'wavenet'],
    'wavenet_channels': ['8,4', '12,6', '16,8'],
    'learning_rate': [0.002, 0.004, 0.008],
    # The level-normalising front end: it helped the hardware pedals' compression
    # (benchmarks/quality_notes.md).
    'agc_strength': [0.0, 1.0],
    # The linear FIR branch (started as fir_init says: auto by default) or none. Against
    # the least-squares start, no branch scored 1.9 dB better on the hardware pedals under
    # protocol A (hybrid, 540 s) and a zero start 1 to 2.8 dB better; linear effects need
    # the branch (benchmarks/quality_notes.md, sessions 7 and 8).
    'fir_taps': [256, 0],
    # Decoupled weight decay: 0.1 gained 1.3 dB on the hardware pedals (hybrid 16 + 8,
    # 540 s) and 0.9 dB on their validation blocks (benchmarks/quality_notes.md, session 14).
    'weight_decay': [0.0, 0.1],
    # The hybrid's conditioning path: 16 latent channels with the decay gained 1.1 dB over
    # 32 on the hardware pedals (benchmarks/quality_notes.md, session 16).
    'condition_latent_channels': [16, 32],
}


def search_space() -> keras_tuner.HyperParameters:
  """:data:`SEARCH_SPACE` as KerasTuner hyperparameters (one Choice per field)."""
  hp = keras_tuner.HyperParameters()
  for name, values in SEARCH_SPACE.items():
    hp.Choice(name, values)
  return hp


def split_custom_config(custom_config: Dict[str, Any]):
  """``(TrainConfig, trials, seconds per trial)`` from the Tuner's custom_config."""
  values = dict(custom_config or {})
  trials = int(values.pop(contract.TUNE_TRIALS, 4))
  seconds = float(values.pop(contract.TUNE_SECONDS, 0.0))
  if trials < 1 or seconds <= 0:
    raise ValueError(f'the Tuner needs {contract.TUNE_TRIALS} >= 1 and '
                     f'{contract.TUNE_SECONDS} > 0, got {trials} and {seconds}')
  return TrainConfig.from_custom_config(values), trials, seconds / trials


class BudgetedSearch(keras_tuner.RandomSearch):
  """Random search whose trial is :func:`trainer.model.train` of the TrainConfig with the
  trial's values, for ``seconds`` of wall clock (the trial's own data crop, schedule and
  callbacks: no shared Keras hypermodel)."""

  def __init__(self, base: TrainConfig, fn_args, seconds: float, strategy, **kwargs):
    super().__init__(hypermodel=None, objective=keras_tuner.Objective(OBJECTIVE, 'min'),
                     hyperparameters=search_space(), **kwargs)
    self.base, self.fn_args, self.seconds = base, fn_args, float(seconds)
    self.strategy = strategy

  def run_trial(self, trial, *args, **kwargs) -> Dict[str, float]:
    config = self.base.with_tuned({**trial.hyperparameters.values,
                                   'train_seconds': self.seconds})
    log_dir = os.path.join(self.project_dir, f'trial_{trial.trial_id}', 'logs')
    result = model_lib.train(config, self.fn_args, self.strategy, log_dir)
    best = result.restore.best
    logging.info('Tuner trial %s: %s -> best %s %.2f dB', trial.trial_id,
                 trial.hyperparameters.values, OBJECTIVE, best)
    return {OBJECTIVE: float(best)}


def tuner_fn(fn_args) -> tfx.components.TunerFnResult:
  """The TFX Tuner's entry point: a :class:`BudgetedSearch` over :data:`SEARCH_SPACE`."""
  strategy = distribute.choose_strategy()   # First: multi-worker needs a fresh runtime.
  base, trials, seconds = split_custom_config(fn_args.custom_config)
  if not fn_args.eval_files:
    raise ValueError('the Tuner needs an eval split to score its trials')
  tuner = BudgetedSearch(base, fn_args, seconds, strategy, max_trials=trials, seed=base.seed,
                         directory=fn_args.working_dir, project_name='fxemu_tuning',
                         overwrite=True)
  return tfx.components.TunerFnResult(tuner=tuner, fit_kwargs={})
