"""fxemu apply: seamless blocks, streaming, WAV formats, model resolution, clear errors."""
import argparse
import os
import shutil

import numpy as np
import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

from components.audio import model_versions
from components.audio import wav  # pylint: disable=g-import-not-at-top
from pipeline.cli import apply_command  # pylint: disable=g-import-not-at-top
from pipeline.inference import apply  # pylint: disable=g-import-not-at-top
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import export  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

RATE = 16000
_DATA = dict(sample_rate=RATE, window_samples=256, context_samples=256)
TINY_CONFIGS = {
    'conv_causal': TrainConfig(model='conv', conv_stride=16, conv_kernel=32, latent_channels=4,
                               latent_dense_layers=1, latent_dilations=(1, 2), fir_taps=16,
                               fir_lookahead=4, **_DATA),
    'conv_noncausal': TrainConfig(model='conv', causal=False, conv_stride=16, conv_kernel=48,
                                  latent_channels=4, latent_dense_layers=1,
                                  latent_dilations=(1, 2), fir_taps=16, fir_lookahead=4, **_DATA),
    'conv_modulated': TrainConfig(model='conv', conv_stride=8, conv_kernel=8, latent_channels=4,
                                  latent_dense_layers=0, latent_dilations=(1,), fir_taps=8,
                                  fir_lookahead=2, modulation_channels=2, modulation_taps=8,
                                  **_DATA),
    'dense': TrainConfig(model='dense', dense_frame_samples=32, dense_units=16, dense_layers=1,
                         **_DATA),
    'tcn': TrainConfig(model='tcn', causal=False, tcn_channels=4, tcn_dilations=(1, 2, 4),
                       fir_taps=8, fir_lookahead=3, **_DATA),
    'wavenet': TrainConfig(model='wavenet', wavenet_channels=(4, 3), wavenet_dilations=(1, 2, 4),
                           fir_taps=8, fir_lookahead=3, **_DATA),
    'hybrid': TrainConfig(model='hybrid', wavenet_channels=(4,), wavenet_dilations=(1, 2),
                          conv_stride=16, conv_kernel=32, condition_latent_channels=4,
                          condition_dilations=(1, 2), fir_taps=8, fir_lookahead=3, **_DATA),
}


def random_model(config: TrainConfig, seed: int = 0):
  """A Keras model of ``config`` with random weights everywhere (no zero-init branches)."""
  model = architectures.build_model(config)
  rng = np.random.default_rng(seed)
  model.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32)
                     for w in model.get_weights()])
  return model


class KerasModel:
  """The apply model interface over an in-memory Keras model (fast, no export)."""

  def __init__(self, config: TrainConfig, seed: int = 0):
    self.keras_model = random_model(config, seed)
    self.info = apply.ModelInfo.from_metadata(export.metadata(self.keras_model, config))

  def predict(self, audio):
    return self.keras_model(tf.constant(audio, tf.float32), training=False).numpy()


def export_tiny_model(version_dir: str, seed: int = 0, config: TrainConfig = None) -> str:
  """Exports a random-weight non-causal conv model (16 kHz) to ``version_dir``."""
  config = config or TINY_CONFIGS['conv_noncausal']
  return export.export_serving_model(random_model(config, seed), config, version_dir)


@pytest.fixture(scope='module')
def model_base(tmp_path_factory):
  """``<tmp>/lowpass/{2,10}`` (same model) and an incomplete ``<tmp>/lowpass/99``."""
  base = tmp_path_factory.mktemp('serving') / 'lowpass'
  export_tiny_model(str(base / '2'))
  shutil.copytree(base / '2', base / '10')
  (base / '99').mkdir()
  (base / '99' / 'saved_model.pb').write_bytes(b'')   # being written: no variables/ yet
  return str(base)


@pytest.fixture(scope='module')
def local_model(model_base):
  return apply.LocalModel(model_base)


def _signal(frames: int, channels: int, seed: int = 1) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-0.8, 0.8, [frames, channels]).astype(np.float32)


# --- Seams ---------------------------------------------------------------------------------

@pytest.mark.parametrize('name', sorted(TINY_CONFIGS))
def test_blocks_equal_whole_file(name):
  model = KerasModel(TINY_CONFIGS[name])
  m = model.info.block_multiple
  audio = _signal(1000, 2)
  whole = apply.process(model, audio)
  multiple = m * -(-48 // m)                     # the smallest multiple of M >= 48
  for block in (multiple, 37, 101, 999, 5000):   # multiples of M and not, shorter than the file
    blockwise = apply.process(model, audio, block)
    np.testing.assert_allclose(blockwise, whole, atol=1e-5, err_msg=f'block {block}')


@pytest.mark.parametrize('frames', [1, 5, 40])
def test_files_shorter_than_one_block(frames):
  model = KerasModel(TINY_CONFIGS['conv_noncausal'])
  audio = _signal(frames, 1)
  whole = apply.process(model, audio)
  assert whole.shape == (frames, 1)
  np.testing.assert_allclose(apply.process(model, audio, 64), whole, atol=1e-5)
  np.testing.assert_allclose(apply.process(model, audio, 7), whole, atol=1e-5)


def test_missing_context_would_show_seams():
  """The seam test is sensitive: the same blocks without context differ from the whole file."""
  model = KerasModel(TINY_CONFIGS['conv_noncausal'])
  audio = _signal(1000, 1)
  whole = apply.process(model, audio)

  class NoContext:
    info = apply.ModelInfo(RATE, 0, 0, 1)
    predict = staticmethod(model.predict)
  assert np.abs(apply.process(NoContext, audio, 100) - whole).max() > 1e-2


def test_block_plan_aligns_segments_and_covers_everything():
  info = apply.ModelInfo(RATE, past_samples=95, future_samples=40, block_multiple=16)
  plan = apply.plan_blocks(1000, 37, info)
  assert [p[1] for p in plan] == list(range(0, 1000, 37)) and plan[-1][2] == 1000
  for segment_start, core_start, core_end, segment_end in plan:
    assert segment_start % 16 == 0
    assert segment_start == 0 or core_start - segment_start >= 95
    assert segment_end == 1000 or segment_end - core_end >= 40
  assert (info.past_context, info.latency) == (96, 48)


@pytest.mark.parametrize('name', ['conv_causal', 'conv_noncausal', 'dense', 'tcn', 'wavenet',
                                  'hybrid'])
@pytest.mark.parametrize('block', [apply.STREAM_BLOCK_SAMPLES, 100])
def test_stream_equals_whole_file_after_latency(name, block):
  model = KerasModel(TINY_CONFIGS[name])
  audio = _signal(2000, 2)
  whole = apply.process(model, audio)
  processor = apply.BlockProcessor(model, channels=2)
  assert processor.latency == model.info.latency
  outs = [processor.process(audio[i:i + block]) for i in range(0, len(audio), block)]
  assert [len(o) for o in outs] == [len(audio[i:i + block]) for i in range(0, len(audio), block)]
  tail = processor.flush()
  assert tail.shape == (processor.latency, 2)
  stream = np.concatenate(outs + [tail])
  np.testing.assert_array_equal(stream[:processor.latency], 0.0)
  np.testing.assert_allclose(stream[processor.latency:], whole, atol=1e-5)


def test_stream_mono_blocks_warm_up_and_reset():
  model = KerasModel(TINY_CONFIGS['conv_causal'])
  audio = _signal(700, 1)[:, 0]
  whole = apply.process(model, audio[:, None])[:, 0]
  processor = apply.BlockProcessor(model)
  processor.warm_up(64)   # leaves no trace in the stream
  for _ in range(2):   # the second pass checks reset()
    out = [processor.process(audio[i:i + 64]) for i in range(0, 700, 64)]
    stream = np.concatenate(out + [processor.flush()[:, 0]])
    np.testing.assert_allclose(stream[processor.latency:], whole, atol=1e-5)
    processor.reset()
  with pytest.raises(ValueError, match='channels'):
    processor.process(np.zeros([10, 2], np.float32))


# --- Models --------------------------------------------------------------------------------

def test_base_dir_resolves_to_newest_complete_version(model_base, local_model):
  assert [v for v, _ in model_versions.versions(model_base)] == [10, 2]
  assert local_model.version == '10' and local_model.info.version == '10'
  assert local_model.info.sample_rate == RATE and local_model.info.block_multiple == 16
  assert apply.LocalModel(os.path.join(model_base, '2')).version == '2'


def test_saved_model_matches_keras_model(local_model):
  keras_model = random_model(TINY_CONFIGS['conv_noncausal'])
  audio = _signal(300, 2).T
  np.testing.assert_allclose(local_model.predict(audio), keras_model(audio).numpy(), atol=1e-6)


def test_model_errors_name_the_model(tmp_path):
  with pytest.raises(apply.ModelError, match='no model versions'):
    apply.open_model(str(tmp_path))
  with pytest.raises(apply.ModelError, match='no such model directory'):
    apply.open_model(str(tmp_path / 'missing'))
  with pytest.raises(apply.ModelError, match='not a TF Serving REST endpoint'):
    apply.open_model('http://127.0.0.1:1/models/x')
  with pytest.raises(apply.ModelError, match='cannot reach'):
    apply.open_model('http://127.0.0.1:1/v1/models/x')


# --- Files ---------------------------------------------------------------------------------

TOLERANCE = {'PCM_U8': 1 / 100, 'PCM_16': 1e-4, 'PCM_24': 1e-6, 'PCM_32': 1e-6, 'FLOAT': 1e-6}


@pytest.mark.parametrize('subtype', sorted(wav.SUBTYPES))
@pytest.mark.parametrize('channels', [1, 2])
def test_formats_and_channels(tmp_path, local_model, subtype, channels):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'out' / 'wet.wav')
  wav.write_wav(in_path, _signal(3000, channels) * 0.5, RATE, subtype)
  result = apply.apply_file(local_model, in_path, out_path, block_seconds=0.05, progress=False)
  assert result.blocks == 4 and result.subtype == subtype
  dry, _ = wav.read_wav(in_path)
  wet, info = wav.read_wav(out_path)
  assert info.subtype == subtype and info.channels == channels and info.sample_rate == RATE
  expected = apply.process(local_model, dry)
  if subtype != 'FLOAT':
    expected = np.clip(expected, -1, 1)   # integer formats clip at full scale
  np.testing.assert_allclose(wet, expected, atol=TOLERANCE[subtype])


def test_subtype_override(tmp_path, local_model):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'wet.wav')
  wav.write_wav(in_path, _signal(2000, 2) * 0.5, RATE, 'PCM_16')
  apply.apply_file(local_model, in_path, out_path, subtype='FLOAT', progress=False)
  wet, info = wav.read_wav(out_path)
  assert info.subtype == 'FLOAT'
  dry, _ = wav.read_wav(in_path)
  np.testing.assert_allclose(wet, apply.process(local_model, dry), atol=1e-6)
  with pytest.raises(ValueError, match='unknown subtype'):
    apply.apply_file(local_model, in_path, out_path, subtype='PCM_12')


def test_model_path_string_and_whole_file(tmp_path, model_base):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'wet.wav')
  wav.write_wav(in_path, _signal(1500, 1) * 0.5, RATE, 'FLOAT')
  result = apply.apply_file(model_base, in_path, out_path, block_seconds=None, progress=False)
  assert result.blocks == 1 and result.model_version == '10'


def test_sample_rate_mismatch_is_a_clear_error(tmp_path, local_model):
  in_path = str(tmp_path / 'at 22k.wav')
  wav.write_wav(in_path, _signal(500, 1), 22050)
  with pytest.raises(wav.AudioFileError, match='22050 Hz.*expects 16000 Hz') as e:
    apply.apply_file(local_model, in_path, str(tmp_path / 'wet.wav'), progress=False)
  assert in_path in str(e.value)
  assert not os.path.exists(tmp_path / 'wet.wav')


@pytest.mark.parametrize('content,problem', [(b'', 'empty'), (b'not audio', 'not a WAV file')])
def test_bad_input_file_names_the_file(tmp_path, local_model, content, problem):
  in_path = str(tmp_path / 'broken take.wav')
  open(in_path, 'wb').write(content)
  with pytest.raises(wav.AudioFileError, match=problem) as e:
    apply.apply_file(local_model, in_path, str(tmp_path / 'wet.wav'), progress=False)
  assert in_path in str(e.value)


def test_missing_input_names_the_file(tmp_path, local_model):
  with pytest.raises(wav.AudioFileError, match='cannot be read') as e:
    apply.apply_file(local_model, str(tmp_path / 'nope.wav'), str(tmp_path / 'w.wav'),
                     progress=False)
  assert 'nope.wav' in str(e.value)


# --- Command line --------------------------------------------------------------------------

def _parser():
  parser = argparse.ArgumentParser(prog='fxemu')
  apply_command.add_apply_command(parser.add_subparsers(dest='command'))
  return parser


def test_cli_apply_and_help(tmp_path, model_base, capsys):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'wet.wav')
  wav.write_wav(in_path, _signal(4000, 2) * 0.5, RATE, 'PCM_24')
  args = _parser().parse_args(['apply', model_base, in_path, out_path, '--subtype', 'PCM_16',
                               '--block-seconds', '0.1', '--quiet'])
  assert args.func(args) == 0
  assert wav.read_info(out_path).subtype == 'PCM_16'
  with pytest.raises(SystemExit):
    _parser().parse_args(['apply', '--help'])
  text = capsys.readouterr().out
  for option in ('--subtype', '--block-seconds', '--model-info', '--quiet', 'MODEL', 'IN.wav'):
    assert option in text


def test_cli_error_exit_status_and_message(tmp_path, model_base, capsys):
  in_path = str(tmp_path / 'garbage.wav')
  open(in_path, 'wb').write(b'garbage')
  args = _parser().parse_args(['apply', model_base, in_path, str(tmp_path / 'o.wav')])
  assert args.func(args) == 1
  err = capsys.readouterr().err
  assert 'fxemu apply: error:' in err and 'garbage.wav' in err
