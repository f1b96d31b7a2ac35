"""Tests of the trainer package: config, losses, data, architectures, run_fn and export.

Training runs are real but tiny (16 kHz noise through a known FIR low-pass, 2048-sample
windows, a few thousand parameters) so the whole file runs in well under a minute on
two CPU cores.
"""
import dataclasses
import json
import os
import subprocess
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top
from tfx.components.trainer.fn_args_utils import FnArgs  # pylint: disable=g-import-not-at-top

from components.audio import dsp  # pylint: disable=g-import-not-at-top
from schema import contract
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import callbacks  # pylint: disable=g-import-not-at-top
from trainer import data  # pylint: disable=g-import-not-at-top
from trainer import distribute  # pylint: disable=g-import-not-at-top
from trainer import export  # pylint: disable=g-import-not-at-top
from trainer import fir_init  # pylint: disable=g-import-not-at-top
from trainer import losses  # pylint: disable=g-import-not-at-top
from trainer import model as model_lib  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer import streaming  # pylint: disable=g-import-not-at-top
from trainer import testing  # pylint: disable=g-import-not-at-top
from trainer import train_metrics  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

SR = 16000
WINDOW, CONTEXT, HOP = 2048, 512, 1024
FIR = testing.lowpass_fir(31, 0.15)
SMALL = dict(model='conv', train_seconds=0,
             sample_rate=SR, window_samples=WINDOW, context_samples=CONTEXT, conv_stride=16,
             conv_kernel=32, latent_channels=16, latent_dilations=(1, 2, 4), fir_taps=64,
             batch_size=8, early_stopping_patience=0)


def effect(x):
  return testing.apply_causal_fir(x, FIR)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  """Train/eval/test splits of noise through the low-pass FIR; returns file patterns."""
  root = str(tmp_path_factory.mktemp('data'))
  splits = {'train': {f'noise{i}': testing.noise(4 * SR, i) for i in range(2)},
            'eval': {'noise_eval': testing.noise(2 * SR, 10)},
            'test': {'noise_test': testing.noise(2 * SR, 11)}}
  tracks = {s: {k: (x, effect(x)) for k, x in d.items()} for s, d in splits.items()}
  patterns = testing.write_dataset(root, tracks, WINDOW, CONTEXT, HOP, SR)
  return {**patterns, 'tracks': tracks}


def fn_args(tmp_path, dataset, config, **kwargs):
  return FnArgs(train_files=[dataset['train']], eval_files=[dataset['eval']],
                serving_model_dir=str(tmp_path / 'serving'), model_run_dir=str(tmp_path / 'run'),
                custom_config=config.to_custom_config(), **kwargs)


def serve_audio(loaded, audio):
  return loaded.signatures['serving_default'](audio=tf.constant(audio, tf.float32))['wet'].numpy()


def randomise(model, seed=0):
  """Random weights everywhere (zero-initialised layers included), scaled by fan-in."""
  rng = np.random.default_rng(seed)
  for w in model.weights:
    fan_in = max(1, int(np.prod(w.shape[:-1])))
    w.assign(rng.normal(0, 1.0 / np.sqrt(fan_in), w.shape).astype(np.float32))


# --- Config --------------------------------------------------------------------------

def test_config_round_trips_through_json():
  config = TrainConfig(model='dense', latent_dilations=(1, 3), causal=False, loss='esr+0.1*mrstft')
  restored = TrainConfig.from_custom_config(json.loads(json.dumps(config.to_custom_config())))
  assert restored == config
  assert TrainConfig.from_custom_config(None) == TrainConfig()
  assert all(text for text in TrainConfig.field_help().values())


def test_schedule_and_weight_averaging_default_per_model():
  """The full-rate models train at a constant rate and keep an average of their weights;
  the frame-rate ones keep the cosine without averaging; explicit values win."""
  assert (TrainConfig(model='hybrid').schedule, TrainConfig(model='hybrid').averaging_momentum
          ) == ('constant', 0.995)
  assert (TrainConfig(model='conv').schedule, TrainConfig(model='conv').averaging_momentum
          ) == ('cosine', 0.0)
  explicit = TrainConfig(model='hybrid', lr_schedule='cosine', ema_momentum=0.0)
  assert (explicit.schedule, explicit.averaging_momentum) == ('cosine', 0.0)


def test_weight_decay_shrinks_the_weights_but_not_the_offsets_or_the_fir():
  """With a zero gradient Adam moves nothing, so one step shows the decay alone: every
  decayed weight shrinks by learning_rate x weight_decay; biases and the FIR branch stay."""
  config = TrainConfig(model='hybrid', wavenet_channels=(3, 2), wavenet_dilations=(1, 2),
                       condition_latent_channels=2, condition_dilations=(1,), fir_taps=8,
                       fir_lookahead=0, ema_momentum=0.0, learning_rate=0.01, weight_decay=2.0)
  core = architectures.build_model(config)
  for w in core.trainable_weights:   # Biases start at zero: make every weight visible.
    w.assign(tf.ones_like(w))
  optimizer = model_lib.make_optimizer(config, total_steps=10)
  optimizer.apply_gradients([(tf.zeros_like(w), w) for w in core.trainable_weights])
  kept = {w.name for w in core.trainable_weights if 'bias' in w.name or w.name.startswith('fir/')}
  assert any(name.startswith('fir/') for name in kept) and len(kept) > 1
  for w in core.trainable_weights:
    expected = 1.0 if w.name in kept else 1.0 - 0.01 * 2.0
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6, err_msg=w.name)
  assert model_lib.make_optimizer(TrainConfig(), 10).weight_decay is None


@pytest.mark.parametrize('model,agc', [('hybrid', 0.0), ('hybrid', 1.0), ('wavenet', 1.0)])
def test_training_skip_scores_the_outputs_of_the_whole_model(model, agc):
  """In training the full-rate path skips the context only the conditioning path (or the
  AGC) needs: the scored outputs are the whole model's, and the copy for export is the
  whole model with the same weights."""
  config = TrainConfig(model=model, wavenet_channels=(3, 2), wavenet_dilations=(1, 2, 4),
                       condition_latent_channels=4, condition_dilations=(1, 2, 4),
                       conv_stride=8, conv_kernel=16, fir_taps=16, fir_lookahead=2,
                       agc_strength=agc, agc_windows_ms=(2,), window_samples=256,
                       context_samples=512, ema_momentum=0.0)
  left, right = model_lib.input_crop(config)
  trimmed, train_model, skip = model_lib.build_for_training(config)
  # Reaches: wavenet 2 x 2 x 7 = 28, FIR 13, conditioning 2 x 16 + 8 x 14 - 2 = 142, AGC 88.
  assert skip == config.context_samples - left - 28 > 0
  whole = architectures.build_model(config)
  rng = np.random.default_rng(0)   # Every branch contributes (the decoders start at zero).
  whole.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(np.float32)
                     for w in whole.get_weights()])
  model_lib.copy_weights(whole, trimmed)
  dry = testing.noise(config.input_samples, 1).reshape(1, -1)[:, left:config.input_samples - right]
  expected = model_lib.training_model(whole, config)(dry).numpy()
  scored = train_model(dry).numpy()
  assert scored.shape == expected.shape == (1, config.window_samples)
  np.testing.assert_allclose(scored, expected, rtol=1e-5, atol=1e-6)
  assert np.std(expected) > 1e-3
  copy = model_lib.float32_copy(trimmed, config)
  np.testing.assert_allclose(copy(dry).numpy(), whole(dry).numpy(), rtol=1e-5, atol=1e-6)
  assert receptive_field.full_rate_skip(dataclasses.replace(config, model='conv'), 500) == 0
  with pytest.raises(ValueError, match='no full-rate path'):
    architectures.build_model(dataclasses.replace(config, model='tcn'), 5)


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match='unknown options'):
    TrainConfig.from_custom_config({'windw_samples': 3})
  for bad in [dict(model='rnn'), dict(conv_kernel=65), dict(conv_kernel=32, conv_stride=64),
              dict(loss='esr+foo'), dict(activation='leaky_relu'), dict(wavenet_activation='x'),
              dict(wavenet_initializer='he_normal'), dict(ema_momentum=1.0),
              dict(latent_kernel=2), dict(fir_taps=8, fir_lookahead=8), dict(weight_decay=-0.1)]:
    with pytest.raises(ValueError):
      TrainConfig(**bad)


# --- Losses and metrics --------------------------------------------------------------

def test_losses_match_numpy():
  rng = np.random.default_rng(1)
  y = rng.normal(0, 1, [3, 512]).astype(np.float32) * np.array([[1.0], [0.1], [0.5]], np.float32)
  y_hat = (y + rng.normal(0, 0.05, y.shape)).astype(np.float32)
  np.testing.assert_allclose(losses.ESRLoss()(y, y_hat), dsp.esr(y, y_hat), rtol=1e-4)
  per_example = np.mean(np.sum((y - y_hat) ** 2, 1) / np.sum(y ** 2, 1))
  np.testing.assert_allclose(losses.PerExampleESRLoss()(y, y_hat), per_example, rtol=1e-4)
  assert per_example > 2 * dsp.esr(y, y_hat)   # the quiet example counts as much as the loud
  silent = np.concatenate([y, np.zeros([1, 512], np.float32)])
  noisy = np.concatenate([y_hat, np.full([1, 512], 1e-3, np.float32)])
  assert np.isfinite(float(losses.PerExampleESRLoss()(silent, noisy)))
  a = 0.9
  pre = lambda x: x - a * np.concatenate([np.zeros([3, 1]), x[:, :-1]], axis=1)
  np.testing.assert_allclose(losses.PreEmphasisESRLoss(a)(y, y_hat), dsp.esr(pre(y), pre(y_hat)),
                             rtol=1e-4)
  np.testing.assert_allclose(losses.MSELoss()(y, y_hat), np.mean((y - y_hat) ** 2), rtol=1e-4)
  dc = np.sum(np.mean(y - y_hat, 1) ** 2) / np.sum(np.mean(y ** 2, 1))
  np.testing.assert_allclose(losses.DCLoss()(y, y_hat), dc, rtol=1e-3)
  stft = losses.MultiResolutionSTFTLoss((128, 64))
  assert float(stft(y, y)) == pytest.approx(0.0, abs=1e-5)
  assert float(stft(y, y_hat)) > 0.01
  combined = losses.make_loss(TrainConfig(loss='esr+0.5*mse'))
  np.testing.assert_allclose(combined(y, y_hat),
                             dsp.esr(y, y_hat) + 0.5 * np.mean((y - y_hat) ** 2), rtol=1e-4)
  assert losses.parse_loss_spec('esr_preemphasis + 0.1*mrstft') == [(1.0, 'esr_preemphasis'),
                                                                     (0.1, 'mrstft')]


def test_streaming_esr_sums_over_all_batches():
  rng = np.random.default_rng(2)
  batches = [(rng.normal(0, s, [2, 100]), rng.normal(0, s, [2, 100])) for s in (1.0, 0.01)]
  esr, esr_db = train_metrics.ESR(), train_metrics.ESRdB()
  for y, y_hat in batches:
    esr.update_state(y, y_hat)
    esr_db.update_state(y, y_hat)
  y = np.concatenate([b[0] for b in batches])
  y_hat = np.concatenate([b[1] for b in batches])
  np.testing.assert_allclose(esr.result(), dsp.esr(y, y_hat), rtol=1e-5)
  np.testing.assert_allclose(esr_db.result(), dsp.esr_db(y, y_hat), atol=1e-4)


# --- Data ----------------------------------------------------------------------------

def test_dataset_shapes_shuffling_and_length_check(dataset):
  config = TrainConfig(**SMALL)
  ds = data.make_dataset([dataset['train']], config, batch_size=4, training=True)
  dry, wet = next(iter(ds))
  assert dry.shape == (4, WINDOW + 2 * CONTEXT) and wet.shape == (4, WINDOW)
  first = [b[1].numpy()[:, 0] for b in ds.take(3)]
  second = [b[1].numpy()[:, 0] for b in ds.take(3)]
  assert not all(np.array_equal(a, b) for a, b in zip(first, second))  # reshuffled per epoch
  # wet is the effect of the centre of dry.
  dry, wet = data.take_numpy([dataset['eval']], config, 4)
  np.testing.assert_allclose(wet[1], effect(dry[1])[CONTEXT:CONTEXT + WINDOW], atol=1e-5)
  n_train = data.count_examples([dataset['train']])
  assert n_train == 2 * len(dsp.window_starts(4 * SR, WINDOW, HOP))
  with pytest.raises(ValueError, match='window_samples'):
    data.check_example_lengths([dataset['train']], TrainConfig(**{**SMALL, 'context_samples': 0}))


def test_training_pieces_are_random_and_keep_the_wet_aligned_with_its_context(dataset):
  config = TrainConfig(**SMALL)
  piece, crop = WINDOW // 4, (CONTEXT // 2, CONTEXT // 4)
  past = CONTEXT - crop[0]

  def pieces():
    ds = data.make_dataset([dataset['eval']], config, batch_size=4, training=True, repeat=True,
                           crop=crop, piece=piece)
    return [(d.numpy(), w.numpy()) for d, w in ds.take(6)]

  batches = pieces()
  for dry, wet in batches:
    assert dry.shape == (4, piece + 2 * CONTEXT - sum(crop)) and wet.shape == (4, piece)
    for d, w in zip(dry, wet):   # the wet piece is the effect of the dry piece's centre
      np.testing.assert_allclose(w, effect(d)[past:past + piece], atol=1e-5)
  # Offsets differ from draw to draw, and the stream is the same for the same seed.
  starts = {tuple(np.round(w[:, 0], 6)) for _, w in batches}
  assert len(starts) > 1
  again = pieces()
  for (d1, w1), (d2, w2) in zip(batches, again):
    np.testing.assert_array_equal(w1, w2)
  # The model default: full-rate models train on pieces, the others on whole windows.
  assert TrainConfig(**{**SMALL, 'model': 'hybrid', 'window_samples': 32768}
                     ).train_window_samples == 8192
  assert TrainConfig(**{**SMALL, 'model': 'conv'}).train_window_samples == WINDOW
  assert TrainConfig(**{**SMALL, 'train_crop_samples': 10 * WINDOW}).train_window_samples == WINDOW


def test_least_squares_fir_recovers_the_filter(dataset):
  config = TrainConfig(**SMALL)
  dry, wet = data.take_numpy([dataset['train']], config, 32)
  h = fir_init.fit_fir_windows(dry, wet, 64, 16, CONTEXT)
  np.testing.assert_allclose(h[16:16 + len(FIR)], FIR, atol=1e-5)
  assert np.abs(h[:16]).max() < 1e-5 and np.abs(h[16 + len(FIR):]).max() < 1e-5
  # No context at all (signals that start at the window): the zeros outside are exact.
  x = np.stack([testing.noise(500, seed) for seed in range(4)])
  y = np.stack([effect(row) for row in x])
  h = fir_init.fit_fir_windows(x, y, 40, 3, 0)
  np.testing.assert_allclose(h[3:3 + len(FIR)], FIR, atol=1e-5)


def test_least_squares_fir_esr_matches_the_residual():
  """The fit's ESR from the normal equations equals the ESR of filtering the dry examples;
  a linear effect is fitted to the rounding floor, a clipped one is not."""
  x = np.stack([testing.noise(3000, seed) for seed in range(4)])
  for wet_of, lo, hi in ((effect, -400.0, -80.0),
                         (lambda r: np.clip(4.0 * effect(r), -0.2, 0.2), -12.0, -1.0)):
    y = np.stack([wet_of(row) for row in x])
    fit = fir_init.FIRLeastSquares(48, 3, 0)
    fit.add(x, y)
    h = fit.solve()
    predicted = np.stack([np.convolve(row, h.astype(np.float64))[3:3 + len(row)] for row in x])
    direct = 10 * np.log10(np.sum((y - predicted) ** 2) / np.sum(y.astype(np.float64) ** 2))
    assert lo < fit.esr_db(h) < hi
    if direct > -60.0:   # below, both are rounding noise
      assert fit.esr_db(h) == pytest.approx(direct, abs=0.01)
  assert fir_init.FIRLeastSquares(8, 0, 0).esr_db(np.zeros(8)) == 0.0


def test_fir_auto_start_keeps_the_fit_only_for_a_nearly_linear_effect(dataset, tmp_path):
  config = TrainConfig(**{**SMALL, 'fir_init': 'auto'})
  clipped = {s: {k: (x, np.clip(4.0 * effect(x), -0.2, 0.2)) for k, (x, _) in d.items()}
             for s, d in dataset['tracks'].items()}
  nonlinear = testing.write_dataset(str(tmp_path / 'clipped'), clipped, WINDOW, CONTEXT, HOP,
                                    SR)
  for pattern, start in ((dataset['train'], 'least_squares'), (nonlinear['train'], 'zeros')):
    core = architectures.build_model(config)
    done = model_lib.initialise_fir(core, config, [pattern], data.count_examples([pattern]))
    assert done['fir_start'] == start
    h = architectures.fir_layer(core).filter.numpy()
    if start == 'zeros':
      assert done['fir_fit_esr_db'] > config.fir_auto_esr_db and not np.any(h)
    else:
      assert done['fir_fit_esr_db'] < -60.0
      np.testing.assert_allclose(h[16:16 + len(FIR)], FIR, atol=1e-4)
  # The same nonlinear data under least_squares takes the fit anyway.
  forced = TrainConfig(**{**SMALL, 'fir_init': 'least_squares'})
  core = architectures.build_model(forced)
  done = model_lib.initialise_fir(core, forced, [nonlinear['train']],
                                  data.count_examples([nonlinear['train']]))
  assert done['fir_start'] == 'least_squares' and np.any(architectures.fir_layer(core).filter)


# --- Architectures -------------------------------------------------------------------

ARCHITECTURES = {
    'conv_causal': dict(),
    'conv_agc': dict(agc_strength=1.0, agc_windows_ms=(2, 10)),
    'conv_noncausal_modulated': dict(causal=False, modulation_channels=2, modulation_taps=8),
    'dense': dict(model='dense', dense_frame_samples=64, dense_units=32),
    'tcn': dict(model='tcn', tcn_channels=4, tcn_dilations=(1, 2, 4, 8), fir_taps=0),
    'tcn_noncausal_fir': dict(model='tcn', causal=False, tcn_kernel=4, tcn_channels=4,
                              tcn_dilations=(1, 3), fir_taps=16, fir_lookahead=5),
    'wavenet': dict(model='wavenet', wavenet_channels=(4, 3), wavenet_dilations=(1, 2, 4, 8),
                    fir_taps=0),
    'wavenet_gated_fir': dict(model='wavenet', wavenet_channels=(4,), wavenet_gated=True,
                              wavenet_kernel=4, wavenet_dilations=(1, 3), fir_taps=16,
                              fir_lookahead=5),
    'hybrid': dict(model='hybrid', wavenet_channels=(4, 3), wavenet_dilations=(1, 2),
                   condition_channels=2, condition_latent_channels=4,
                   condition_dilations=(1, 2, 4, 8), fir_taps=0),
    'hybrid_agc_fir': dict(model='hybrid', wavenet_channels=(4,), wavenet_dilations=(1, 2, 4),
                           condition_channels=2, condition_latent_channels=4,
                           condition_dilations=(1, 2), agc_strength=1.0, agc_windows_ms=(2, 10)),
}


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_impulse_response_stays_inside_the_receptive_field(name):
  config = TrainConfig(**{**SMALL, **ARCHITECTURES[name]})
  model = architectures.build_model(config)
  randomise(model)
  past, future = receptive_field.receptive_field_extent(config)
  assert receptive_field.receptive_field(config) == past + 1 + future
  length = past + future + 700
  # A quiet noise background, not silence: a gain stage (agc) only shows its reach on a
  # signal it can scale.
  background = 0.01 * testing.noise(length, 5)[None].astype(np.float32)
  for position in (future + 300, future + 317):
    impulse = background.copy()
    impulse[0, position] += 0.5
    response = (model(impulse) - model(background)).numpy()[0]
    reached = np.nonzero(response)[0]
    assert reached.min() >= position - future and reached.max() <= position + past, name
    if config.model != 'dense':  # the stated extent is tight to within one block
      slack = receptive_field.block_multiple(config) + config.conv_kernel
      assert reached.max() > position + past - slack and reached.min() < position - future + slack


@pytest.mark.parametrize('name', sorted(ARCHITECTURES))
def test_any_length_and_block_processing(name):
  """Any input length works; output depends only on samples within the receptive field."""
  config = TrainConfig(**{**SMALL, **ARCHITECTURES[name]})
  model = architectures.build_model(config)
  randomise(model, seed=1)
  x = testing.noise(3000, seed=3)[None]
  for length in (1, 1000, 1777):
    assert model(x[:, :length]).shape == (1, length)
  full = model(x).numpy()[0]
  past, future = receptive_field.receptive_field_extent(config)
  m = receptive_field.block_multiple(config)
  # A prefix gives the same output wherever the cut is out of reach.
  cut = 2000
  prefix = model(x[:, :cut]).numpy()[0]
  np.testing.assert_allclose(prefix[:cut - future], full[:cut - future], atol=1e-5)
  # Block-wise: a block starting at a multiple of block_multiple, with `past` samples of
  # context before it and `future` after it, reproduces the whole-signal output.
  start = (past // m + 2) * m
  lo = (start - past) // m * m
  block = model(x[:, lo:start + 500 + future]).numpy()[0]
  np.testing.assert_allclose(block[start - lo:start - lo + 500], full[start:start + 500],
                             atol=1e-5)


@pytest.mark.parametrize('name', [n for n in sorted(ARCHITECTURES)
                                  if n.startswith(('conv', 'wavenet', 'hybrid'))])
def test_model_is_silent_for_silence_but_not_odd(name):
  """Zero in, exactly zero out, with random biases everywhere (an earlier conv model turned
  its biases into a -54 dBFS tone at multiples of sample_rate / conv_stride); the biases
  still make the model asymmetric (f(-x) != -f(x): even harmonics stay possible)."""
  config = TrainConfig(**{**SMALL, **ARCHITECTURES[name]})
  model = architectures.build_model(config)
  randomise(model, seed=2)
  silence = np.zeros([2, 3000], np.float32)
  assert np.max(np.abs(model(silence).numpy())) == 0.0
  x = 0.5 * testing.noise(3000, seed=4)[None].astype(np.float32)
  plus, minus = model(x).numpy(), model(-x).numpy()
  assert np.max(np.abs(plus + minus)) > 1e-3 * np.max(np.abs(plus))


# --- Training and export -------------------------------------------------------------

@pytest.fixture(scope='module')
def trained_conv(dataset, tmp_path_factory):
  """run_fn on the default conv model (least-squares FIR start), step budget 20."""
  tmp_path = tmp_path_factory.mktemp('conv')
  config = TrainConfig(**{**SMALL, 'epochs': 3})
  args = fn_args(tmp_path, dataset, config, train_steps=20)
  model_lib.run_fn(args)
  return args, config


def test_run_fn_exports_its_signatures(trained_conv, dataset):
  args, config = trained_conv
  loaded = tf.saved_model.load(args.serving_model_dir)
  # The conv model here is causal without modulation, so it also streams.
  assert not streaming.streamable(config)
  assert set(loaded.signatures) == {'serving_default', 'serving_examples', 'stream'}
  for length in (1000, 4097):
    audio = np.stack([testing.noise(length, 5), testing.noise(length, 6)])
    assert serve_audio(loaded, audio).shape == (2, length)
  records = [r.numpy() for r in tf.data.TFRecordDataset(
      tf.io.gfile.glob(dataset['test']), 'GZIP').take(3)]
  wet = loaded.signatures['serving_examples'](examples=tf.constant(records))['wet'].numpy()
  assert wet.shape == (3, WINDOW)
  dry, _ = data.take_numpy([dataset['test']], config, 3)
  np.testing.assert_allclose(wet, serve_audio(loaded, dry)[:, CONTEXT:CONTEXT + WINDOW],
                             atol=1e-6)


def test_run_fn_learns_the_linear_effect(trained_conv, dataset):
  args, _ = trained_conv
  loaded = tf.saved_model.load(args.serving_model_dir)
  dry, wet = dataset['tracks']['test']['noise_test']
  assert dsp.esr_db(wet, serve_audio(loaded, dry[None])[0]) < -40.0


def test_run_fn_metadata_logs_and_step_budget(trained_conv):
  args, config = trained_conv
  meta = export.read_metadata(args.serving_model_dir)
  assert meta['receptive_field_samples'] == receptive_field.receptive_field(config)
  assert meta['block_multiple'] == config.conv_stride
  assert (meta['sample_rate'], meta['window_samples'], meta['context_samples']) == (
      SR, WINDOW, CONTEXT)
  assert meta['model'] == 'conv' and meta['parameter_count'] > 0
  assert TrainConfig.from_custom_config(meta['train_config']) == config
  with open(os.path.join(args.model_run_dir, contract.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['plan']['total_steps'] == 20 and summary['steps_run'] == 20
  assert summary['epochs_run'] == 2          # 16 steps per epoch
  assert tf.io.gfile.glob(os.path.join(args.model_run_dir, 'train', 'events.out.*'))


def test_run_fn_learns_from_scratch(dataset, tmp_path):
  """Without the least-squares start, gradient descent alone learns the filter."""
  config = TrainConfig(**{**SMALL, 'fir_init': 'zeros', 'fir_lr_scale': 1.0, 'epochs': 8,
                          'learning_rate': 0.01})
  args = fn_args(tmp_path, dataset, config)
  model_lib.run_fn(args)
  loaded = tf.saved_model.load(args.serving_model_dir)
  dry, wet = dataset['tracks']['test']['noise_test']
  assert dsp.esr_db(wet, serve_audio(loaded, dry[None])[0]) < -20.0


def test_run_fn_dense_baseline(dataset, tmp_path):
  config = TrainConfig(**{**SMALL, 'model': 'dense', 'dense_frame_samples': 128,
                          'dense_units': 128, 'epochs': 8, 'learning_rate': 0.003})
  args = fn_args(tmp_path, dataset, config)
  model_lib.run_fn(args)
  loaded = tf.saved_model.load(args.serving_model_dir)
  for length in (1000, 4097):
    assert serve_audio(loaded, testing.noise(length, 7)[None]).shape == (1, length)
  dry, wet = dataset['tracks']['test']['noise_test']
  assert dsp.esr_db(wet, serve_audio(loaded, dry[None])[0]) < dsp.esr_db(wet, dry) - 6.0
  assert export.read_metadata(args.serving_model_dir)['block_multiple'] == 128


def test_wavenet_initializer_fan_in_uniform_bounds_every_array_weight_by_its_fan_in():
  """``fan_in_uniform`` (PyTorch's Conv1d default) keeps every weight of the layer arrays
  within 1/sqrt(kernel x input channels) and fills that range; the head starts at zero."""
  config = TrainConfig(model='wavenet', wavenet_channels=(8, 4), wavenet_kernel=6,
                       wavenet_dilations=(1, 2), wavenet_initializer='fan_in_uniform', fir_taps=0)
  glorot = architectures.build_model(dataclasses.replace(config,
                                                         wavenet_initializer='glorot_uniform'))
  model = architectures.build_model(config)
  kernels = [w for w in model.weights if 'kernel' in w.name and not w.name.startswith('head/')]
  assert len(kernels) == 2 * (1 + 3 * 2) + 1      # rechannel, 2 layers x 3 kernels; 1 array head
  for weight in kernels:
    shape = weight.shape
    bound = 1.0 / np.sqrt(np.prod(shape[:-1]))
    values = np.abs(weight.numpy())
    assert values.max() <= bound and (values.size < 16 or values.max() > 0.7 * bound), weight.name
  assert not np.any(model.get_layer('head').kernel.numpy())
  # Glorot's bound for the 8-channel kernel-6 convolution, sqrt(6 / 96), is larger.
  assert (np.abs(glorot.get_layer('array0_layer1').conv_kernel.numpy()).max()
          > 1.2 / np.sqrt(6 * 8))


def test_hybrid_condition_path_is_causal_at_every_frame_phase():
  """The conv-transpose path of the hybrid sees no future sample, wherever a sample lies
  in its frame, and its stated reach is exact (frames of 16 samples)."""
  config = TrainConfig(**{**SMALL, **ARCHITECTURES['hybrid']})
  model = architectures.build_model(config)
  randomise(model, seed=3)
  for weight in model.weights:   # no offsets, so no rounding swamps the far reach's tiny effect
    if 'bias' in weight.name:
      weight.assign(tf.zeros_like(weight))
  past = receptive_field.receptive_field_extent(config)[0]
  assert past == (receptive_field.condition_reach(config) + receptive_field.wavenet_reach(config)
                  - (config.wavenet_kernel - 1) * config.wavenet_dilations[0])
  background = 0.01 * testing.noise(past + 800, 6)[None].astype(np.float32)
  reach = []
  for position in range(300, 300 + config.conv_stride):
    impulse = background.copy()
    impulse[0, position] += 0.5
    reached = np.nonzero((model(impulse) - model(background)).numpy()[0])[0]
    assert reached.min() >= position
    reach.append(reached.max() - position)
  assert max(reach) == past


def test_run_fn_trains_a_hybrid_on_a_time_budget_with_cropped_context(dataset, tmp_path):
  """train_seconds stops training on time; the input pipeline drops the context the
  receptive field does not reach; the result still learns the effect and exports."""
  config = TrainConfig(**{**SMALL, **ARCHITECTURES['hybrid'], 'fir_taps': 64,
                          'condition_dilations': (1,), 'train_seconds': 6.0, 'epochs': 1000,
                          'learning_rate': 0.004})
  past, future = receptive_field.receptive_field_extent(config)
  assert model_lib.input_crop(config) == (CONTEXT - past, CONTEXT - future)
  assert past < CONTEXT
  args = fn_args(tmp_path, dataset, config)
  model_lib.run_fn(args)
  with open(os.path.join(args.model_run_dir, contract.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['input_crop'] == [CONTEXT - past, CONTEXT - future]
  assert (summary['lr_schedule'], summary['ema_momentum'], summary['weight_decay']
          ) == ('constant', 0.995, 0.0)
  assert summary['fir_start'] == 'least_squares' and summary['fir_fit_esr_db'] < -40.0
  # Stopped by the clock (the stop rule itself: test_time_budget_schedule_and_stop), not by
  # the 1,000 epochs; its wall time is not asserted (the first batch traces the graph).
  assert summary['fit_seconds'] >= 6.0 and summary['epochs_run'] < 1000
  phases = summary['phase_seconds']   # where the Trainer's time went, in order
  assert list(phases) == ['read', 'build', 'fir_init', 'initial_eval', 'fit', 'export']
  assert min(phases.values()) >= 0.0 and phases['fit'] >= summary['fit_seconds'] - 1e-3
  loaded = tf.saved_model.load(args.serving_model_dir)
  dry, wet = dataset['tracks']['test']['noise_test']
  assert dsp.esr_db(wet, serve_audio(loaded, dry[None])[0]) < -40.0
  assert export.read_metadata(args.serving_model_dir)['block_multiple'] == config.conv_stride


def test_time_budget_schedule_and_stop():
  model = keras.Sequential([keras.Input([1]), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.Adam(1.0), loss='mse')
  clock = callbacks.TimeBudget(100.0, peak=0.01, min_fraction=0.1, warmup_steps=10)
  assert clock.rate(0.0, 0) == pytest.approx(0.001)           # warm-up: 1/10 of the peak
  assert clock.rate(0.0, 20) == pytest.approx(0.01)
  assert clock.rate(50.0, 20) == pytest.approx(0.01 * (0.1 + 0.9 * 0.5))
  assert clock.rate(100.0, 20) == pytest.approx(0.001)         # the floor when time is up
  assert clock.rate(500.0, 20) == pytest.approx(0.001)
  clock.set_model(model)
  model.stop_training = False
  clock.on_train_batch_begin(0)
  assert float(keras.backend.get_value(model.optimizer.learning_rate)) == pytest.approx(
      0.001, rel=0.01)
  clock.on_train_batch_end(0)
  assert not model.stop_training
  clock.start -= 100.0                                         # the budget is spent
  clock.on_train_batch_end(1)
  assert model.stop_training
  only_stop = callbacks.TimeBudget(1.0)
  only_stop.set_model(model)
  keras.backend.set_value(model.optimizer.learning_rate, 0.5)
  only_stop.on_train_batch_begin(0)
  assert float(keras.backend.get_value(model.optimizer.learning_rate)) == 0.5


# --- Callbacks and distribution ------------------------------------------------------

def test_restore_best_and_step_budget():
  model = keras.Sequential([keras.Input([1]), keras.layers.Dense(1)])
  best = callbacks.RestoreBest('val_esr_db')
  best.set_model(model)
  best.start_from(model, -10.0)
  initial = [w.copy() for w in model.get_weights()]
  model.set_weights([w + 1 for w in initial])
  best.on_epoch_end(0, {'val_esr_db': -5.0})     # worse: not kept
  best.on_train_end()
  assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), initial))
  assert best.best_epoch == 0
  budget = callbacks.StepBudget(2)
  budget.set_model(model)
  model.stop_training = False
  budget.on_train_batch_end(0)
  assert not model.stop_training
  budget.on_train_batch_end(1)
  assert model.stop_training


def test_validation_scores_the_averaged_weights_and_restore_keeps_them():
  """With ``use_ema``, the validation loss logged by ``fit`` is that of the optimizer's
  averaged weights, RestoreBest keeps those, and training goes on from the raw weights."""
  rng = np.random.default_rng(0)
  x = rng.normal(size=[64, 4]).astype(np.float32)
  y = x @ np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)
  keras.utils.set_random_seed(0)
  model = keras.Sequential([keras.Input([4]), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9),
                loss='mse')
  raw = []

  class Raw(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      raw[:] = [w.copy() for w in self.model.get_weights()]

  best = callbacks.RestoreBest('val_loss')
  history = model.fit(x, y, batch_size=8, epochs=3, validation_data=(x, y), verbose=0,
                      callbacks=[Raw(), best, callbacks.ValidateAveragedWeights()])
  assert best.best_epoch == 3                       # still improving at this rate
  kept = model.get_weights()
  assert not all(np.allclose(a, b) for a, b in zip(kept, raw))   # not the raw weights
  assert np.isclose(model.evaluate(x, y, verbose=0), history.history['val_loss'][-1],
                    rtol=1e-5)
  average = model.optimizer._model_variables_moving_average  # pylint: disable=protected-access
  assert all(np.allclose(a, b.numpy()) for a, b in zip(kept, average))


def test_strategy_choice():
  cluster = {'cluster': {'worker': ['a:1', 'b:2']}, 'task': {'type': 'worker', 'index': 1}}
  assert distribute.strategy_kind({}, 0) == distribute.DEFAULT
  assert distribute.strategy_kind({}, 2) == distribute.MIRRORED
  assert distribute.strategy_kind(cluster, 0) == distribute.MULTI_WORKER
  assert distribute.strategy_kind({'cluster': {'worker': ['a:1']}}, 4) == distribute.MIRRORED
  with pytest.raises(ValueError, match='parameter-server'):
    distribute.strategy_kind({'cluster': {'worker': ['a:1'], 'ps': ['p:1']}}, 0)
  assert not distribute.is_chief(cluster)
  assert distribute.is_chief({**cluster, 'task': {'type': 'worker', 'index': 0}})
  with_chief = {'cluster': {'chief': ['c:1'], 'worker': ['a:1']},
                'task': {'type': 'worker', 'index': 0}}
  assert not distribute.is_chief(with_chief)
  assert distribute.write_dir('/out', {}) == '/out'
  scratch = distribute.write_dir('/out', cluster)
  assert scratch != '/out' and os.path.isdir(scratch)
  distribute.cleanup_write_dir('/out', scratch)
  assert not os.path.exists(scratch)
  assert isinstance(distribute.choose_strategy(), tf.distribute.Strategy)


_ONEDNN_PROBE = '''
import os, sys, json
import trainer.config  # what every fxemu entry point imports before TensorFlow
setting = os.environ.get('TF_ENABLE_ONEDNN_OPTS')
import numpy as np, tensorflow as tf
from trainer import layers
layer = layers.WaveNetLayer(4, 3, dilation=8)        # what training differentiates
h = tf.random.stateless_normal([2, 256, 4], seed=[0, 0])        # [b, t, C]
condition = tf.random.stateless_normal([2, 256, 1], seed=[0, 1])  # [b, t, 1]
layer([h, condition])

@tf.function                                         # a graph, as Keras' fit traces one
def gradients():
  with tf.GradientTape() as tape:
    out, head = layer([h, condition])
    loss = tf.reduce_mean(tf.square(out + head))
  return tape.gradient(loss, layer.trainable_weights)

norms = [float(tf.norm(g)) for g in gradients()]
print(json.dumps({'setting': setting, 'conv1d': layers.dilated_conv1d_differentiable(),
                  'gradient_norms': norms}))
'''


def _onednn_probe(setting):
  env = {k: v for k, v in os.environ.items() if k != 'TF_ENABLE_ONEDNN_OPTS'}
  if setting is not None:
    env['TF_ENABLE_ONEDNN_OPTS'] = setting
  done = subprocess.run([sys.executable, '-c', _ONEDNN_PROBE], env=env, capture_output=True,
                        text=True, check=False, cwd=os.path.dirname(os.path.dirname(__file__)))
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def test_dilated_wavenet_trains_without_onednn():
  """TensorFlow's own CPU kernels have no gradient for a dilated tf.nn.conv1d (oneDNN is
  off by default on AVX2 CPUs); the wavenet layers must train there too."""
  probe = _onednn_probe('0')
  assert probe['setting'] == '0' and probe['conv1d'] is False
  assert len(probe['gradient_norms']) == 4
  assert all(np.isfinite(n) and n > 0 for n in probe['gradient_norms'])


@pytest.mark.skipif(os.uname().machine not in ('x86_64', 'AMD64'),
                    reason='oneDNN CPU kernels are an x86 build option')
def test_importing_trainer_turns_onednn_on():
  probe = _onednn_probe(None)
  assert probe['setting'] == '1' and probe['conv1d'] is True
  assert all(np.isfinite(n) and n > 0 for n in probe['gradient_norms'])
