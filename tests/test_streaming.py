"""Streaming inference: blockwise output equals whole-file output, O(block) per call,
exported as a SavedModel signature and as TFLite."""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from schema import contract  # pylint: disable=g-import-not-at-top
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import export  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer import streaming  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

_DATA = dict(sample_rate=16000, window_samples=256, context_samples=256)
CONFIGS = {
    'hybrid': TrainConfig(model='hybrid', wavenet_channels=(4, 3), wavenet_dilations=(1, 2, 4),
                          conv_stride=16, conv_kernel=32, condition_latent_channels=4,
                          condition_dilations=(1, 2), fir_taps=8, fir_lookahead=3, **_DATA),
    'hybrid_agc_k48': TrainConfig(model='hybrid', wavenet_channels=(4,), wavenet_dilations=(1, 2),
                                  conv_stride=16, conv_kernel=48, condition_latent_channels=4,
                                  condition_dilations=(1,), fir_taps=8, fir_lookahead=0,
                                  agc_strength=1.0, agc_windows_ms=(1, 3), **_DATA),
    'wavenet_gated': TrainConfig(model='wavenet', wavenet_channels=(3,), wavenet_gated=True,
                                 wavenet_kernel=4, wavenet_dilations=(1, 5), fir_taps=0,
                                 **_DATA),
    'wavenet_leaky_k6': TrainConfig(model='wavenet', wavenet_channels=(3,), wavenet_kernel=6,
                                    wavenet_dilations=(1, 3, 7),
                                    wavenet_activation='leaky_relu', fir_taps=0, **_DATA),
    'tcn': TrainConfig(model='tcn', tcn_channels=4, tcn_dilations=(1, 2, 4), fir_taps=8,
                       fir_lookahead=3, **_DATA),
    'conv': TrainConfig(model='conv', conv_stride=16, conv_kernel=32, latent_channels=4,
                        latent_dense_layers=1, latent_dilations=(1, 2), fir_taps=16,
                        fir_lookahead=4, **_DATA),
}
BLOCKINGS = {'32': [32], '64': [64], '128': [128], '512': [512], 'odd': [1, 7, 13, 300, 5, 77],
             'one': [1]}


def random_model(config, seed=0):
  """The model with random weights everywhere (its zero-initialised parts included)."""
  model = architectures.build_model(config)
  rng = np.random.default_rng(seed)
  model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in model.get_weights()])
  return model


def compiled(streamer):
  """``streamer.step`` as one graph for any block length (as the export traces it)."""
  return tf.function(streamer.step, input_signature=[
      tf.TensorSpec([None, None], tf.float32),
      tf.TensorSpec([None, streamer.state_size], tf.float32)])


def stream(streamer, audio, sizes, step=None):
  """``audio [b, t]`` through ``streamer`` in blocks cycling through ``sizes``."""
  step = step or compiled(streamer)
  state, outs, start, i = streamer.initial_state(audio.shape[0]), [], 0, 0
  while start < audio.shape[1]:
    n = min(sizes[i % len(sizes)], audio.shape[1] - start)
    wet, state = step(audio[:, start:start + n], state)
    assert wet.shape == (audio.shape[0], n) and state.shape == (audio.shape[0],
                                                                streamer.state_size)
    outs.append(wet.numpy())
    start, i = start + n, i + 1
  return np.concatenate(outs, axis=1)


def late(whole, latency):
  """The whole-file output as a stream with ``latency`` delivers it."""
  return np.concatenate([np.zeros([whole.shape[0], latency], np.float32), whole],
                        axis=1)[:, :whole.shape[1]]


@pytest.fixture(scope='module')
def audio():
  return (0.3 * np.random.default_rng(1).standard_normal([2, 1500])).astype(np.float32)


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_stream_equals_the_whole_file(name, audio):
  """Blocks of 1, 32, 64, 128, 512 samples and of odd, changing sizes."""
  config = CONFIGS[name]
  model = random_model(config)
  streamer = streaming.Streamer(model, config)
  assert streamer.latency == receptive_field.receptive_field_extent(config)[1]
  expected = late(model(audio).numpy(), streamer.latency)
  step = compiled(streamer)
  for blocking, sizes in sorted(BLOCKINGS.items()):
    np.testing.assert_allclose(stream(streamer, audio, sizes, step), expected, atol=1e-5,
                               err_msg=f'{name}, blocks {blocking}')


def test_a_long_stream_wraps_its_position_and_stays_exact(monkeypatch, audio):
  """The position counter is reduced by a multiple of the frame length (kept exact in
  float32 however long a stream runs); output is unchanged across the wrap."""
  monkeypatch.setattr(streaming, 'POSITION_WRAP', 64)
  config = CONFIGS['hybrid']
  model = random_model(config, seed=2)
  streamer = streaming.Streamer(model, config)
  out = stream(streamer, audio, [37])
  np.testing.assert_allclose(out, late(model(audio).numpy(), streamer.latency), atol=1e-5)
  state = streamer.initial_state(1)
  for _ in range(10):
    _, state = streamer.step(audio[:1, :37], state)
  assert float(state[0, 0]) < 2 * 64          # the position entry has wrapped


def test_each_block_costs_in_proportion_to_its_length():
  """O(n), not O(receptive field): FLOPs of one 1024-sample block ~ 8 x a 128-sample one."""
  from tensorflow.python.profiler import model_analyzer, option_builder  # pylint: disable=g-import-not-at-top
  config = CONFIGS['hybrid']
  streamer = streaming.Streamer(random_model(config), config)
  builder = option_builder.ProfileOptionBuilder
  options = builder(builder.float_operation()).with_empty_output().build()

  def flops(n):
    graph = tf.function(streamer.step).get_concrete_function(
        tf.TensorSpec([1, n], tf.float32), tf.TensorSpec([1, streamer.state_size],
                                                         tf.float32)).graph
    return model_analyzer.profile(graph, options=options).total_float_ops
  ratio = flops(1024) / flops(128)
  assert 6.0 < ratio < 9.0, ratio       # recomputing the past would make it about 1


@pytest.mark.parametrize('config, reason', [
    (TrainConfig(model='dense', **_DATA), 'dense model has no streaming form'),
    (TrainConfig(model='tcn', causal=False, **_DATA), 'causal=False'),
    (TrainConfig(model='conv', modulation_channels=2, **_DATA), 'modulation'),
])
def test_models_without_a_streaming_form_say_why(config, reason):
  assert reason in streaming.streamable(config)
  with pytest.raises(streaming.NotStreamable, match=reason):
    streaming.Streamer(architectures.build_model(config), config)


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  config = CONFIGS['hybrid']
  model = random_model(config, seed=3)
  path = export.export_serving_model(model, config, str(tmp_path_factory.mktemp('model')))
  return path, model, config


def test_savedmodel_stream_signature_equals_the_whole_file(exported, audio):
  path, model, config = exported
  meta = export.read_metadata(path)
  streamer = streaming.Streamer(model, config)
  assert (meta['stream_state_size'], meta['stream_latency_samples']) == (
      streamer.state_size, streamer.latency)
  assert contract.STREAM_SIGNATURE in meta['signatures']
  signature = tf.saved_model.load(path).signatures[contract.STREAM_SIGNATURE]
  state, outs = np.zeros([2, meta['stream_state_size']], np.float32), []
  for start in range(0, audio.shape[1], 128):
    result = signature(audio=tf.constant(audio[:, start:start + 128]), state=tf.constant(state))
    outs.append(result['wet'].numpy())
    state = result['state'].numpy()
  np.testing.assert_allclose(np.concatenate(outs, axis=1),
                             late(model(audio).numpy(), meta['stream_latency_samples']),
                             atol=1e-5)


def test_tflite_stream_matches_the_savedmodel(exported, audio):
  path, _, _ = exported
  tflite = export.stream_tflite(path)
  runner = tf.lite.Interpreter(model_content=tflite).get_signature_runner(
      contract.STREAM_SIGNATURE)
  signature = tf.saved_model.load(path).signatures[contract.STREAM_SIGNATURE]
  size = export.read_metadata(path)['stream_state_size']
  lite_state = saved_state = np.zeros([2, size], np.float32)
  for start in range(0, audio.shape[1], 100):
    block = audio[:, start:start + 100]
    lite = runner(audio=block, state=lite_state)
    saved = signature(audio=tf.constant(block), state=tf.constant(saved_state))
    np.testing.assert_allclose(lite['wet'], saved['wet'].numpy(), atol=1e-5)
    lite_state, saved_state = lite['state'], saved['state'].numpy()


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_fixed_step_equals_the_whole_file_across_a_position_wrap(monkeypatch, name, audio):
  """Blocks of one static size N (a multiple of the frame) through ``fixed_step``, a last
  shorter block through ``step`` on the same state; the position wraps on the way."""
  monkeypatch.setattr(streaming, 'POSITION_WRAP', 256)
  config = CONFIGS[name]
  model = random_model(config, seed=4)
  streamer = streaming.Streamer(model, config)
  block = 2 * max(streamer.frame, 16)
  fixed = tf.function(streamer.fixed_step, input_signature=[
      tf.TensorSpec([None, block], tf.float32),
      tf.TensorSpec([None, streamer.state_size], tf.float32)])
  state, outs, wrapped = streamer.initial_state(audio.shape[0]), [], False
  for start in range(0, audio.shape[1], block):
    piece = audio[:, start:start + block]
    wet, state = (fixed if piece.shape[1] == block else compiled(streamer))(piece, state)
    outs.append(wet.numpy())
    wrapped = wrapped or float(state[0, 0]) < start + piece.shape[1]
  assert wrapped
  np.testing.assert_allclose(np.concatenate(outs, axis=1),
                             late(model(audio).numpy(), streamer.latency), atol=1e-5)
  with pytest.raises(ValueError, match='multiple of'):
    tf.function(streamer.fixed_step).get_concrete_function(
        tf.TensorSpec([1, None], tf.float32), tf.TensorSpec([1, streamer.state_size]))


def test_tflite_fixed_block_form_equals_the_whole_file(exported, audio):
  """``stream_tflite(block_size=N)``: a flatbuffer of ``stream_fixed`` alone (one channel,
  static shapes, built-in operators only, run by the XNNPACK delegate) for N-sample
  blocks, and the SavedModel's ``stream`` for the last, shorter block, on one state."""
  path, model, _ = exported
  meta = export.read_metadata(path)
  block = 2 * meta['stream_frame_samples']
  content = export.stream_tflite(path, block_size=block)
  interpreter = tf.lite.Interpreter(model_content=content)
  interpreter.allocate_tensors()      # as TFLiteStream: the default delegate (XNNPACK) runs it
  assert list(interpreter.get_signature_list()) == [contract.STREAM_FIXED_SIGNATURE]
  assert 'DELEGATE' in {op['op_name'] for op in interpreter._get_ops_details()}
  fixed = interpreter.get_signature_runner(contract.STREAM_FIXED_SIGNATURE)
  any_size = tf.saved_model.load(path).signatures[contract.STREAM_SIGNATURE]
  state = np.zeros([1, meta['stream_state_size']], np.float32)
  outs = []
  for start in range(0, audio.shape[1], block):
    piece = audio[:1, start:start + block]
    if piece.shape[1] == block:
      result = fixed(audio=piece, state=state)
    else:
      result = {k: v.numpy() for k, v in any_size(audio=tf.constant(piece),
                                                  state=tf.constant(state)).items()}
    outs.append(result['wet'])
    state = result['state']
  np.testing.assert_allclose(np.concatenate(outs, axis=1),
                             late(model(audio[:1]).numpy(), meta['stream_latency_samples']),
                             atol=1e-5)
  with pytest.raises(ValueError, match='multiple of the model'):
    export.stream_tflite(path, block_size=block + 1)
