"""TFX Trainer entry point: ``run_fn`` (module path ``trainer.model.run_fn``).

Training objective: given ``dry`` (``window + 2 * context`` samples) predict ``wet``,
the centre ``window`` samples of the model's output. The any-length model is exported
with the signatures of :mod:`trainer.export`.

Mixed precision (``TrainConfig.mixed_precision``): the model is built under a Keras
``mixed_float16`` / ``mixed_bfloat16`` policy (the architectures keep the input, the
AGC and FIR branches, the sum and the output in float32; the loss sees float32), with
dynamic loss scaling for float16. The exported model is a float32 copy with the same
weights (Keras keeps float32 master weights), so serving is float32 on any device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from typing import Any, Dict, Optional, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from absl import logging  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from schema import contract
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import callbacks as callbacks_lib  # pylint: disable=g-import-not-at-top
from trainer import data  # pylint: disable=g-import-not-at-top
from trainer import distribute  # pylint: disable=g-import-not-at-top
from trainer import export  # pylint: disable=g-import-not-at-top
from trainer import fir_init  # pylint: disable=g-import-not-at-top
from trainer import losses  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer import train_metrics  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top
from trainer.config import tuned_values  # pylint: disable=g-import-not-at-top

MONITOR = 'val_esr_db'


class Laps:
  """Wall-clock seconds of consecutive phases: ``lap(name)`` ends the phase that began
  at the previous lap (or at construction) and records it under ``name``."""

  def __init__(self):
    self.seconds: Dict[str, float] = {}
    self._last = time.monotonic()

  def lap(self, name: str) -> None:
    now = time.monotonic()
    self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
    self._last = now


FLOAT32 = 'float32'


def precision_policy(setting: str, gpu_capabilities=()) -> str:
  """The Keras dtype policy for ``TrainConfig.mixed_precision``.

  'auto' is mixed_float16 when this process sees GPUs and all have float16 tensor cores
  (compute capability >= 7.0; ``gpu_capabilities`` holds one (major, minor) or None per
  GPU), float32 otherwise; 'off' is float32; the others are Keras policy names.
  """
  if setting == 'auto':
    capable = [tuple(c or (0, 0)) >= (7, 0) for c in gpu_capabilities]
    return 'mixed_float16' if capable and all(capable) else FLOAT32
  return FLOAT32 if setting == 'off' else setting


def gpu_capabilities():
  """(major, minor) compute capability (or None) of each GPU this process sees."""
  return [tf.config.experimental.get_device_details(gpu).get('compute_capability')
          for gpu in tf.config.list_physical_devices('GPU')]


@contextlib.contextmanager
def dtype_policy(name: str):
  """Sets Keras's global dtype policy for the layers built inside; restores it after."""
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    keras.mixed_precision.set_global_policy(previous)


def copy_weights(source: keras.Model, target: keras.Model) -> keras.Model:
  """Sets every layer of ``target`` that has weights to those of ``source``'s layer of the
  same name (builds of one architecture with another dtype policy or training skip);
  returns ``target``."""
  for layer in target.layers:
    if layer.weights:
      layer.set_weights(source.get_layer(layer.name).get_weights())
  return target


def float32_copy(core: keras.Model, config: TrainConfig) -> keras.Model:
  """The same architecture built in float32 and whole (no training skip), with ``core``'s
  weights."""
  with dtype_policy(FLOAT32):
    copy = architectures.build_model(config)
  return copy_weights(core, copy)


class ContextCrop(keras.layers.Layer):
  """``[batch, past + n + future]`` -> ``[batch, n]``: drops the context on both sides
  (any ``n``: whole windows for validation, random pieces for training)."""

  def __init__(self, past: int, future: int, **kwargs):
    super().__init__(**kwargs)
    self.past, self.future = int(past), int(future)

  def call(self, x):
    return x[:, self.past:tf.shape(x)[1] - self.future]

  def get_config(self):
    return {**super().get_config(), 'past': self.past, 'future': self.future}


def input_crop(config: TrainConfig) -> Tuple[int, int]:
  """(left, right) samples of each example's dry context the model cannot use.

  The examples carry ``context_samples`` on each side (the ExampleGen's, made for the
  longest receptive field); a model whose receptive field reaches ``past`` samples back
  and ``future`` ahead needs only that much, so the trainer drops the rest before the
  model sees it (a wavenet computes every input sample, so unused context is wasted work).
  """
  past, future = receptive_field.receptive_field_extent(config)
  return (max(0, config.context_samples - past), max(0, config.context_samples - future))


def training_model(core: keras.Model, config: TrainConfig, skip: int = 0) -> keras.Model:
  """``dry [b, n + 2 context - left - right]`` (see :func:`input_crop`; ``n`` the window, or
  a training piece) -> the ``n`` samples of ``core(dry)`` aligned with the ``wet`` target,
  ``[b, n]``; ``skip``: the samples ``core`` (built with the same ``skip``) leaves out at the
  start."""
  left, right = input_crop(config)
  dry = keras.Input(shape=[None], name=contract.DRY)
  wet = ContextCrop(config.context_samples - left - skip, config.context_samples - right,
                    name='centre', dtype=FLOAT32)(core(dry))
  return keras.Model(dry, wet, name='fxemu_train')


def build_for_training(config: TrainConfig) -> Tuple[keras.Model, keras.Model, int]:
  """``(core, training model, skip)``: the architecture built with the training skip
  (:func:`trainer.receptive_field.full_rate_skip` for the context :func:`input_crop`
  leaves) and :func:`training_model` around it. Export :func:`float32_copy` of the core,
  which is whole."""
  left, _ = input_crop(config)
  skip = receptive_field.full_rate_skip(config, config.context_samples - left)
  core = architectures.build_model(config, skip)
  return core, training_model(core, config, skip), skip


def learning_rate(config: TrainConfig, total_steps: int):
  """The learning rate or schedule of the optimizer (with ``train_seconds`` the cosine
  schedule runs over time, set before every batch by :class:`callbacks.TimeBudget`)."""
  if config.schedule != 'cosine' or config.train_seconds:
    return config.peak_learning_rate
  warmup = min(config.warmup_steps, total_steps // 4)
  return keras.optimizers.schedules.CosineDecay(
      initial_learning_rate=config.peak_learning_rate * (0.01 if warmup else 1.0),
      decay_steps=max(1, total_steps - warmup), alpha=config.min_lr_fraction,
      warmup_target=config.peak_learning_rate if warmup else None, warmup_steps=warmup)


#: Variables that weight decay leaves alone (regular expressions on variable names): the
#: offsets, and the linear FIR branch (a filter, not a capacity to regularise).
NO_DECAY = ('bias', '^fir/')


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
  """Adam with the schedule of :func:`learning_rate`, gradient clipping (``clipnorm``), the
  weight average (``ema_momentum``) and decoupled weight decay (``weight_decay``: each step
  shrinks a decayed weight w by learning_rate x weight_decay x w, all but :data:`NO_DECAY`)."""
  kwargs = dict(clipnorm=config.clipnorm or None, weight_decay=config.weight_decay or None,
                use_ema=bool(config.averaging_momentum),
                ema_momentum=config.averaging_momentum or 0.99)
  optimizer = keras.optimizers.Adam(learning_rate(config, total_steps), **kwargs)
  if config.weight_decay:
    optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY))
  return optimizer


def initialise_fir(core: keras.Model, config: TrainConfig, train_files,
                   num_train: int) -> Dict[str, Any]:
  """Sets the FIR branch's start (``config.fir_init``) from the least-squares filter of (up
  to ``fir_init_examples``) training examples spread evenly over the training split.

  ``least_squares`` always takes the fitted filter; ``auto`` only when its ESR on those
  examples is at most ``fir_auto_esr_db`` (a nearly linear effect), else the branch stays at
  zeros. Returns what was done: ``{'fir_start': 'least_squares' | 'zeros',
  'fir_fit_esr_db': dB or None}`` ({} without a FIR branch).
  """
  layer = architectures.fir_layer(core)
  if layer is None:
    return {}
  if config.fir_init == 'zeros' or not config.fir_init_examples:
    return {'fir_start': 'zeros', 'fir_fit_esr_db': None}
  stride = max(1, num_train // config.fir_init_examples)
  fit = fir_init.FIRLeastSquares(config.fir_taps, config.fir_lookahead, config.context_samples)
  front_end = architectures.front_end_model(core)   # The FIR sees the AGC's output.
  for dry, wet in data.sample_numpy(train_files, config, stride, config.fir_init_examples):
    if front_end is not None:
      dry = front_end.predict_on_batch(dry)
    fit.add(dry, wet)
  h = fit.solve()
  fit_esr_db = fit.esr_db(h)
  start = ('least_squares' if config.fir_init == 'least_squares'
           or fit_esr_db <= config.fir_auto_esr_db else 'zeros')
  if start == 'least_squares':
    layer.set_filter(h)
  logging.info('FIR branch: least-squares fit on %d examples leaves %.2f dB ESR; start: %s '
               '(fir_init %s)', fit.examples, fit_esr_db, start, config.fir_init)
  return {'fir_start': start, 'fir_fit_esr_db': round(fit_esr_db, 3)}


def _plan(config: TrainConfig, num_train: int, global_batch: int, train_steps) -> Dict[str, int]:
  """Steps per epoch, total step budget and number of epochs (an epoch holds as many wet
  samples as the training split, in whole windows or in random pieces)."""
  pieces = config.window_samples // config.train_window_samples
  steps_per_epoch = max(1, math.ceil(num_train * pieces / global_batch))
  total = config.epochs * steps_per_epoch
  if train_steps:
    total = min(total, int(train_steps))
  return {'steps_per_epoch': steps_per_epoch, 'total_steps': total,
          'epochs': math.ceil(total / steps_per_epoch)}


@dataclasses.dataclass
class Training:
  """What :func:`train` did: the trained core model (best weights restored; built with
  the training ``skip``), the step plan, the Keras history and the callbacks that measured
  it."""
  core: keras.Model
  policy: str
  skip: int
  plan: Dict[str, int]
  crop: Tuple[int, int]
  history: Dict[str, list]
  restore: callbacks_lib.RestoreBest
  budget: callbacks_lib.StepBudget
  clock: Optional[callbacks_lib.TimeBudget]
  initial: Dict[str, float]
  laps: Laps
  fir: Dict[str, Any]


def train(config: TrainConfig, fn_args, strategy, log_dir: str) -> Training:
  """Fits ``config``'s model on ``fn_args.train_files`` (validated on ``eval_files`` after
  every epoch), within ``fn_args.train_steps`` and ``config.train_seconds``, under
  ``strategy``; TensorBoard logs go to ``log_dir``. The best weights by eval ESR are
  restored at the end. ``laps`` says where the time went (s): ``read`` (the examples'
  lengths and counts), ``build`` (datasets, model, compile), ``fir_init`` (the least-squares
  start), ``initial_eval`` (validation before training) and ``fit`` (training and the
  validations after each epoch)."""
  laps = Laps()
  keras.utils.set_random_seed(config.seed)
  logging.info('TrainConfig: %s', json.dumps(config.to_custom_config()))
  logging.info('%s', receptive_field.describe(config))
  policy = precision_policy(config.mixed_precision, gpu_capabilities())
  logging.info('Precision policy: %s (mixed_precision=%s)', policy, config.mixed_precision)

  data.check_example_lengths(fn_args.train_files, config)
  num_train = data.count_examples(fn_args.train_files)
  num_eval = data.count_examples(fn_args.eval_files) if fn_args.eval_files else 0
  laps.lap('read')
  if not num_train:
    raise ValueError(f'no training examples in {fn_args.train_files}')
  multi_worker = distribute.num_workers(distribute.tf_config()) > 1
  global_batch = config.batch_size * strategy.num_replicas_in_sync
  plan = _plan(config, num_train, global_batch, fn_args.train_steps)
  logging.info('%d train / %d eval examples, global batch %d, plan %s', num_train, num_eval,
               global_batch, plan)

  crop = input_crop(config)
  logging.info('Input crop: %s samples of context dropped (left, right)', crop)
  train_ds = data.make_dataset(fn_args.train_files, config, global_batch, training=True,
                               repeat=True, crop=crop, piece=config.train_window_samples)
  logging.info('Training pieces: %d of the %d wet samples of each window',
               config.train_window_samples, config.window_samples)
  eval_ds, validation_steps = None, None
  if num_eval:
    eval_batches = math.ceil(num_eval / global_batch)
    if multi_worker:  # Every worker must run the same number of steps.
      eval_batches = max(1, num_eval // global_batch)
    validation_steps = min(fn_args.eval_steps or eval_batches, eval_batches)
    eval_ds = data.make_dataset(fn_args.eval_files, config, global_batch, training=False,
                                repeat=multi_worker, crop=crop)
    if not multi_worker and validation_steps == eval_batches:
      validation_steps = None   # The whole split, exactly.

  with strategy.scope():
    with dtype_policy(policy):
      core, model, skip = build_for_training(config)
    logging.info('The full-rate path skips the first %d samples of each input', skip)
    optimizer = make_optimizer(config, plan['total_steps'])
    if policy == 'mixed_float16':  # Dynamic loss scaling keeps small gradients alive.
      optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, loss=losses.make_loss(config),
                  metrics=[train_metrics.ESR(), train_metrics.ESRdB()])
  core.summary(print_fn=logging.info)
  laps.lap('build')
  fir = initialise_fir(core, config, fn_args.train_files, num_train)
  laps.lap('fir_init')

  budget = callbacks_lib.StepBudget(plan['total_steps'])
  callbacks = [budget, keras.callbacks.TerminateOnNaN(),
               keras.callbacks.TensorBoard(log_dir=log_dir, update_freq='epoch')]
  clock = None
  if config.train_seconds:
    cosine = config.schedule == 'cosine'
    clock = callbacks_lib.TimeBudget(config.train_seconds,
                                     config.peak_learning_rate if cosine else None,
                                     config.min_lr_fraction, config.warmup_steps,
                                     plan['total_steps'])
    callbacks.append(clock)
  restore = callbacks_lib.RestoreBest(MONITOR)
  initial = {}
  if eval_ds is not None:
    initial = model.evaluate(eval_ds, steps=validation_steps, return_dict=True, verbose=0)
    logging.info('Before training: %s', initial)
    restore.start_from(model, initial['esr_db'])
    callbacks.append(restore)
    if config.averaging_momentum:   # After restore: it keeps the averaged weights it validated.
      callbacks.append(callbacks_lib.ValidateAveragedWeights())
    if config.early_stopping_patience and not config.train_seconds:
      callbacks.append(keras.callbacks.EarlyStopping(
          monitor=MONITOR, mode='min', patience=config.early_stopping_patience,
          min_delta=0.01))
    if config.schedule == 'plateau':
      callbacks.append(keras.callbacks.ReduceLROnPlateau(
          monitor=MONITOR, mode='min', factor=0.5, min_delta=0.01,
          patience=max(1, config.early_stopping_patience // 3 or 3),
          min_lr=config.peak_learning_rate * config.min_lr_fraction))
  laps.lap('initial_eval')

  history = model.fit(train_ds, epochs=plan['epochs'], steps_per_epoch=plan['steps_per_epoch'],
                      validation_data=eval_ds, validation_steps=validation_steps,
                      callbacks=callbacks, verbose=2)
  laps.lap('fit')
  return Training(core, policy, skip, plan, crop, history.history, restore, budget, clock,
                  initial, laps, fir)


def run_fn(fn_args) -> None:
  """Trains and exports the model (TFX generic Trainer contract).

  Uses ``fn_args.custom_config`` (a :class:`TrainConfig` dict), ``hyperparameters`` (the
  Tuner's best values with ``fxemu run --tune``, else the CaptureSettings step's, often
  none; put over the TrainConfig: :meth:`TrainConfig.with_tuned`), ``train_files`` /
  ``eval_files`` (GZIP TFRecord patterns), ``train_steps`` (upper bound on the total
  optimizer steps, None/0 = epochs only), ``eval_steps`` (batches per validation, None =
  the whole eval split),
  ``model_run_dir`` (TensorBoard logs and a training summary) and ``serving_model_dir``
  (the SavedModel).
  """
  strategy = distribute.choose_strategy()   # First: multi-worker needs a fresh runtime.
  config = TrainConfig.from_custom_config(fn_args.custom_config)
  tuned = tuned_values(getattr(fn_args, 'hyperparameters', None))
  if tuned:
    config = config.with_tuned(tuned)
    logging.info('Settings from the Trainer\'s hyperparameters input (the Tuner\'s best, '
                 'or the CaptureSettings step\'s): %s', json.dumps(tuned))
  log_dir = distribute.write_dir(fn_args.model_run_dir)
  result = train(config, fn_args, strategy, log_dir)
  core, policy, crop = result.core, result.policy, result.crop

  summary = _summary(config, core, result.plan, result.history, result.restore)
  summary.update(hyperparameters=tuned,   # what the Tuner or CaptureSettings set
                 steps_run=result.budget.steps, initial_val_esr_db=result.initial.get('esr_db'),
                 precision=policy, input_crop=list(crop),
                 train_window_samples=config.train_window_samples,
                 train_seconds_budget=config.train_seconds,
                 fit_seconds=result.clock.elapsed if result.clock else None, **result.fir)
  export_dir = distribute.write_dir(fn_args.serving_model_dir)
  whole = core if policy == FLOAT32 and not result.skip else float32_copy(core, config)
  export.export_serving_model(whole, config, export_dir)
  result.laps.lap('export')
  summary['phase_seconds'] = {k: round(v, 3) for k, v in result.laps.seconds.items()}
  logging.info('Training summary: %s', json.dumps(summary))
  with tf.io.gfile.GFile(os.path.join(log_dir, contract.TRAINING_SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  distribute.cleanup_write_dir(fn_args.serving_model_dir, export_dir)
  distribute.wait_for_chief(fn_args.serving_model_dir, export_dir)
  distribute.cleanup_write_dir(fn_args.model_run_dir, log_dir)


def _summary(config, core, plan, history, restore) -> Dict[str, Any]:
  return {
      'model': config.model,
      'parameter_count': architectures.parameter_count(core),
      'receptive_field_samples': receptive_field.receptive_field(config),
      'plan': plan,
      'lr_schedule': config.schedule,             # the model's defaults resolved
      'learning_rate': config.peak_learning_rate,
      'ema_momentum': config.averaging_momentum,  # 0 = no weight average
      'weight_decay': config.weight_decay,        # 0 = none
      'epochs_run': len(history.get('loss', [])),
      'best_epoch': restore.best_epoch,   # 1-based; 0 = the initial weights
      'best_val_esr_db': None if restore.best_epoch is None else restore.best,
      'history': {k: [float(v) for v in values] for k, values in history.items()},
  }
