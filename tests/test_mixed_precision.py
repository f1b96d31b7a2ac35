"""Mixed precision: the policy switch, float32 edges of the model, training and export.

CPUs run bfloat16, so ``mixed_bfloat16`` is trained for real here; ``mixed_float16``
(GPUs) shares the code path plus the loss-scale optimizer, checked on one step.
"""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from components.audio import dsp
from schema import contract
from tests.conftest import REPO  # noqa: F401  (sets TF_USE_LEGACY_KERAS first)
from trainer import architectures
from trainer import callbacks
from trainer import layers as layers_lib
from trainer import losses
from trainer import model as model_lib
from trainer import testing
from trainer.config import TrainConfig

SR = 16000
WINDOW, CONTEXT, HOP = 2048, 512, 1024
CONFIG = dict(model='conv', train_seconds=0,
              sample_rate=SR, window_samples=WINDOW, context_samples=CONTEXT, conv_stride=16,
              conv_kernel=32, latent_channels=8, latent_dilations=(1, 2), fir_taps=32,
              fir_init='zeros', epochs=8, early_stopping_patience=0, learning_rate=1e-2,
              warmup_steps=5, seed=3, batch_size=8)
FIR = testing.lowpass_fir(31, 0.15)


T4, P100 = (7, 5), (6, 0)


@pytest.mark.parametrize('setting, gpus, policy', [
    ('auto', [], 'float32'), ('auto', [T4], 'mixed_float16'), ('auto', [T4, T4], 'mixed_float16'),
    ('auto', [P100], 'float32'), ('auto', [T4, None], 'float32'), ('off', [T4], 'float32'),
    ('mixed_float16', [], 'mixed_float16'), ('mixed_bfloat16', [T4], 'mixed_bfloat16')])
def test_policy_resolution(setting, gpus, policy):
  assert model_lib.precision_policy(setting, gpus) == policy


def test_auto_is_float32_on_this_cpu_only_machine():
  if tf.config.list_physical_devices('GPU'):
    pytest.skip('a GPU is visible')
  assert model_lib.gpu_capabilities() == []
  assert model_lib.precision_policy('auto', model_lib.gpu_capabilities()) == 'float32'


def test_unknown_setting_is_rejected():
  with pytest.raises(ValueError, match='mixed_precision must be one of'):
    TrainConfig(mixed_precision='float16')


@pytest.mark.parametrize('name', ['conv', 'tcn', 'dense', 'wavenet', 'hybrid'])
def test_mixed_model_keeps_float32_edges_and_its_float32_copy_agrees(name):
  config = TrainConfig(**dict(CONFIG, model=name, agc_strength=1.0 * (name != 'dense'),
                              modulation_channels=2 * (name == 'conv'), dense_frame_samples=256,
                              dense_units=32, tcn_dilations=(1, 2), wavenet_channels=(4, 3),
                              wavenet_dilations=(1, 2), condition_latent_channels=4,
                              condition_dilations=(1, 2)))
  with model_lib.dtype_policy('mixed_bfloat16'):
    core = architectures.build_model(config)
  assert keras.mixed_precision.global_policy().name == 'float32'   # restored
  layers = {layer.name: layer for layer in core.layers}
  # The output; for conv/tcn also the input path the FIR branch and the AGC see, and the sum.
  expected = ('wet',) if name == 'dense' else ('wet', 'to_channels', 'fir', 'agc', 'sum')
  for float32_layer in expected:
    assert layers[float32_layer].compute_dtype == 'float32', float32_layer
  hidden = [l for l in core.layers if isinstance(l, (keras.layers.Conv1D, keras.layers.Dense,
                                                    layers_lib.WaveNetLayer))]
  assert hidden and all(l.compute_dtype == 'bfloat16' for l in hidden)
  assert all(w.dtype == tf.float32 for w in core.weights)   # float32 master weights
  # Make every branch contribute (the decoders start at zero).
  rng = np.random.default_rng(0)
  core.set_weights([w + 0.05 * rng.standard_normal(w.shape).astype(np.float32)
                    for w in core.get_weights()])
  audio = testing.noise(SR // 2, 1)[None]
  mixed = core(audio)
  assert mixed.dtype == tf.float32
  exact = model_lib.float32_copy(core, config)
  assert all(l.compute_dtype == 'float32' for l in exact.layers)
  reference = exact(audio).numpy()
  assert dsp.esr_db(reference[0], mixed.numpy()[0]) < -25   # bfloat16: ~3 significant digits


def test_mixed_float16_uses_a_loss_scale_optimizer_and_trains_one_step():
  # float16 kernels are slow on most CPUs: a short window and the small dense model.
  config = TrainConfig(**dict(CONFIG, window_samples=256, context_samples=64, model='dense',
                              dense_frame_samples=64, dense_units=16,
                              mixed_precision='mixed_float16'))
  with model_lib.dtype_policy('mixed_float16'):
    core = architectures.build_model(config)
    train_model = model_lib.training_model(core, config)
  optimizer = keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(1e-3))
  train_model.compile(optimizer=optimizer, loss=losses.make_loss(config))
  dry = testing.noise(2 * config.input_samples, 2).reshape(2, -1)
  wet = dry[:, 64:64 + 256]
  left, right = model_lib.input_crop(config)      # the context the model cannot use
  assert train_model.output.dtype == tf.float32
  loss = train_model.train_on_batch(dry[:, left:dry.shape[1] - right], wet)
  assert np.isfinite(loss)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('data'))
  tracks = {s: {k: (x, testing.apply_causal_fir(x, FIR)) for k, x in d.items()}
            for s, d in {'train': {f'n{i}': testing.noise(3 * SR, i) for i in range(2)},
                         'eval': {'e': testing.noise(SR, 10)}}.items()}
  return testing.write_dataset(root, tracks, WINDOW, CONTEXT, HOP, SR)


def _train(root, dataset, mixed_precision, command_line=False):
  """Trains with run_fn as the pipeline calls it, or through ``kubeflow.train_job`` (the
  TFJob entry point, same run_fn)."""
  serving, run = os.path.join(root, 'serving'), os.path.join(root, 'run')
  values = dict(CONFIG, mixed_precision=mixed_precision)
  if command_line:
    from kubeflow import train_job
    examples = os.path.dirname(os.path.dirname(dataset['train']))
    flags = [f'--{k.replace("_", "-")}={",".join(map(str, v)) if isinstance(v, tuple) else v}'
             for k, v in values.items()]
    assert train_job.main(['--examples', examples, '--model-dir', serving, '--run-dir', run]
                          + flags) == 0
  else:
    from tfx.components.trainer.fn_args_utils import FnArgs
    model_lib.run_fn(FnArgs(train_files=[dataset['train']], eval_files=[dataset['eval']],
                            serving_model_dir=serving, model_run_dir=run,
                            custom_config=TrainConfig(**values).to_custom_config()))
  with open(os.path.join(run, contract.TRAINING_SUMMARY_FILE)) as f:
    return serving, json.load(f)


def _predict(loaded, audio):
  return loaded.signatures['serving_default'](audio=tf.constant(audio[None]))['wet'].numpy()[0]


def test_mixed_bfloat16_training_exports_a_float32_model_close_to_float32_training(
    tmp_path, dataset):
  reference, reference_summary = _train(str(tmp_path / 'auto'), dataset, 'auto')
  assert reference_summary['precision'] == 'float32'   # 'auto' without a GPU
  mixed, mixed_summary = _train(str(tmp_path / 'bf16'), dataset, 'mixed_bfloat16',
                                command_line=True)
  assert mixed_summary['precision'] == 'mixed_bfloat16'
  assert keras.mixed_precision.global_policy().name == 'float32'

  loaded = tf.saved_model.load(mixed)
  audio_fn = loaded.signatures['serving_default']
  assert audio_fn.structured_input_signature[1]['audio'].dtype == tf.float32
  assert audio_fn.structured_outputs['wet'].dtype == tf.float32
  examples_fn = loaded.signatures['serving_examples']
  assert examples_fn.structured_input_signature[1]['examples'].dtype == tf.string
  assert examples_fn.structured_outputs['wet'].dtype == tf.float32

  audio = testing.noise(SR, 42)
  target = testing.apply_causal_fir(audio, FIR)
  got = _predict(loaded, audio)
  want = _predict(tf.saved_model.load(reference), audio)
  assert got.dtype == np.float32 and got.shape == audio.shape
  want_db, got_db = dsp.esr_db(target, want), dsp.esr_db(target, got)
  # Here (2-core CPU): -11.7 and -11.7 dB, and -39.6 dB between the two models.
  assert want_db < -8, f'float32 training did not learn ({want_db:.1f} dB)'
  assert got_db < -8 and abs(got_db - want_db) < 3.0, (want_db, got_db)
  assert dsp.esr_db(want, got) < -20   # the two models agree sample by sample, loosely


def test_weight_average_is_validated_through_the_loss_scale_optimizer():
  """Under mixed_float16 the optimizer is a LossScaleOptimizer: the validation still scores
  the inner Adam's average of the weights, and the best-weights restore keeps it."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=[32, 4]).astype(np.float32)
  y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
  with model_lib.dtype_policy('mixed_float16'):
    model = keras.Sequential([keras.Input([4]), keras.layers.Dense(1, dtype='float32')])
  inner = keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9)
  model.compile(optimizer=keras.mixed_precision.LossScaleOptimizer(inner), loss='mse')
  best = callbacks.RestoreBest('val_loss')
  model.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
            callbacks=[best, callbacks.ValidateAveragedWeights()])
  assert best.best_epoch == 2
  average = inner._model_variables_moving_average  # pylint: disable=protected-access
  assert all(np.allclose(a, b.numpy()) for a, b in zip(model.get_weights(), average))
