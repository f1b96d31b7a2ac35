"""Streaming through the user-facing paths: LocalModel + the ``stream`` signature,
``fxemu apply --block-size``, ``fxemu stream`` (stdin -> stdout, WAV and raw PCM) and
``fxemu export --tflite``; every output equals the whole-file output."""
import argparse
import io
import os

import numpy as np
import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from components.audio import wav  # pylint: disable=g-import-not-at-top
from pipeline.inference import apply  # pylint: disable=g-import-not-at-top
from pipeline.cli import main as cli  # pylint: disable=g-import-not-at-top
from pipeline.inference import stream  # pylint: disable=g-import-not-at-top
from schema import contract  # pylint: disable=g-import-not-at-top
from tests.test_apply import TINY_CONFIGS, export_tiny_model  # pylint: disable=g-import-not-at-top
from tests.test_streaming import BLOCKINGS, CONFIGS  # pylint: disable=g-import-not-at-top

RATE = 16000


@pytest.fixture(scope='module')
def models(tmp_path_factory):
  """Exported (random-weight) models: hybrid (latency 3), causal conv (latency 31, no
  frames past the end of a file), and a non-causal conv model (no stream signature)."""
  root = tmp_path_factory.mktemp('models')
  paths = {'hybrid': export_tiny_model(str(root / 'hybrid' / '1'), 4, CONFIGS['hybrid']),
           'conv': export_tiny_model(str(root / 'conv' / '1'), 5, CONFIGS['conv']),
           'noncausal': export_tiny_model(str(root / 'noncausal' / '1'), 6,
                                          TINY_CONFIGS['conv_noncausal'])}
  return {name: apply.LocalModel(path) for name, path in paths.items()}


def _audio(frames=1500, channels=2, seed=1):
  return np.random.default_rng(seed).uniform(-0.8, 0.8, [frames, channels]).astype(np.float32)


@pytest.mark.parametrize('name', ['hybrid', 'conv'])
def test_local_model_stream_equals_the_whole_file(models, name):
  model = models[name]
  state_size, latency = stream.stream_info(model)
  assert state_size == model.metadata['stream_state_size'] > 0
  assert latency == model.metadata['stream_latency_samples'] == {'hybrid': 3, 'conv': 31}[name]
  audio = _audio()
  whole = apply.process(model, audio)
  runner = stream.open_stream(model, channels=2)
  for blocking, sizes in sorted(BLOCKINGS.items()):
    if blocking == 'one':
      continue   # 1500 calls: covered by trainer/streaming's tests
    np.testing.assert_allclose(stream.process_stream(runner, audio, sizes), whole, atol=1e-5,
                               err_msg=f'{name}, blocks {blocking}')
  # The conv model's end is not what silence fed to the stream gives: the tail is needed.
  runner.tail_model = None
  silence_end = stream.process_stream(runner, audio, 128)
  np.testing.assert_allclose(silence_end[:-latency], whole[:-latency], atol=1e-5)
  if name == 'conv':
    assert np.abs(silence_end[-latency:] - whole[-latency:]).max() > 1e-3


def _run_cli(argv, stdin=None):
  args = cli.build_parser().parse_args(argv)
  if stdin is None:
    return args.func(args)
  out = io.BytesIO()
  status = args.func(args, io.BytesIO(stdin), out)
  return status, out.getvalue()


@pytest.mark.parametrize('block', [32, 64, 128, 512, 77])
def test_cli_apply_block_size_equals_the_whole_file(tmp_path, models, block, capsys):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'wet.wav')
  wav.write_wav(in_path, _audio(1500, 2), RATE, 'FLOAT')
  assert _run_cli(['apply', models['conv'].path, in_path, out_path, '--block-size',
                   str(block)]) == 0
  captured = capsys.readouterr()
  assert f'{-(-1500 // block)} blocks' in captured.out
  assert 'latency 31 samples' in captured.err
  whole = apply.process(models['conv'], wav.read_wav(in_path)[0])
  np.testing.assert_allclose(wav.read_wav(out_path)[0], whole, atol=1e-5)


def test_cli_apply_block_size_without_a_stream_signature_falls_back(tmp_path, models, capsys):
  in_path, out_path = str(tmp_path / 'dry.wav'), str(tmp_path / 'wet.wav')
  wav.write_wav(in_path, _audio(900, 1), RATE, 'FLOAT')
  assert _run_cli(['apply', models['noncausal'].path, in_path, out_path, '--block-size',
                   '100']) == 0
  assert 'no \'stream\' signature' in capsys.readouterr().err
  np.testing.assert_allclose(wav.read_wav(out_path)[0],
                             apply.process(models['noncausal'], wav.read_wav(in_path)[0]),
                             atol=1e-5)


@pytest.mark.parametrize('frames', [1500, 20])   # longer and shorter than the latency
@pytest.mark.parametrize('subtype', ['FLOAT', 'PCM_16', 'PCM_24'])
def test_cli_stream_wav_stdin_to_stdout(models, capsys, frames, subtype):
  audio = _audio(frames, 2) * 0.5
  data = wav.encode_wav(audio, RATE, subtype)
  status, out = _run_cli(['stream', models['conv'].path, '--block-size', '128'], data)
  assert status == 0
  assert 'latency 31 samples' in capsys.readouterr().err
  header = stream.read_wav_header(io.BytesIO(out))
  assert header[1:3] == (2, RATE) and header[4] == frames * 2 * wav.SUBTYPES[subtype][1] // 8
  dry = stream._decode(data[44:], subtype, 2)  # pylint: disable=protected-access
  wet = stream._decode(out[44:], subtype, 2)  # pylint: disable=protected-access
  expected = apply.process(models['conv'], dry)
  # Float output to 1e-5 (streaming and whole-file runs may round differently); integer
  # output to one step of its format, or 1e-5 where a step is finer (24-bit).
  tolerance = max(1e-5, 0.0 if subtype == 'FLOAT' else 2.0 ** -(wav.SUBTYPES[subtype][1] - 1))
  np.testing.assert_allclose(wet, np.clip(expected, -1, 1), atol=tolerance)


@pytest.mark.parametrize('raw', ['f32', 's16'])
def test_cli_stream_raw_pcm_aligned_and_real_time(models, capsys, raw):
  audio = _audio(1000, 1) * 0.5
  dtype = stream.RAW_FORMATS[raw][0]
  data = (audio.astype(dtype) if raw == 'f32' else
          np.round(audio * 32768).astype(dtype)).tobytes()
  dry = stream._decode(data, stream.RAW_FORMATS[raw][2], 1)  # pylint: disable=protected-access
  expected = apply.process(models['hybrid'], dry)
  tolerance = 1e-5 if raw == 'f32' else 1.0 / 32768
  argv = ['stream', models['hybrid'].path, '--raw', raw, '--rate', str(RATE),
          '--channels', '1', '--block-size', '64']
  status, out = _run_cli(argv, data)
  assert status == 0 and 'latency 3 samples' in capsys.readouterr().err
  wet = np.frombuffer(out, dtype).astype(np.float32).reshape(-1, 1)
  wet = wet if raw == 'f32' else wet / 32768
  np.testing.assert_allclose(wet, expected, atol=tolerance)
  # --no-align: the real-time stream, 3 samples late, same length as the input.
  status, out = _run_cli(argv + ['--no-align'], data)
  late = np.frombuffer(out, dtype).astype(np.float32).reshape(-1, 1)
  late = late if raw == 'f32' else late / 32768
  assert status == 0 and late.shape == (1000, 1)
  np.testing.assert_array_equal(late[:3], 0.0)
  np.testing.assert_allclose(late[3:], expected[:-3], atol=tolerance)


@pytest.mark.parametrize('argv_extra, stdin, problem', [
    ([], b'', 'empty input'),
    ([], b'this is not a wav file', 'not a WAV file'),
    (['--raw', 'f32', '--rate', '44100'], b'\0' * 64, '44100 Hz but the model'),
    (['--raw', 'f32', '--channels', '2'], b'\0' * 10, 'ended inside a frame'),
])
def test_cli_stream_bad_input_is_a_clear_error(models, capsys, argv_extra, stdin, problem):
  status, _ = _run_cli(['stream', models['hybrid'].path] + argv_extra, stdin)
  err = capsys.readouterr().err
  assert status == 1 and 'fxemu stream: error:' in err and problem in err
  assert '<stdin>' in err or 'Hz' in err


def test_cli_stream_model_without_a_stream_signature(models, capsys):
  status, _ = _run_cli(['stream', models['noncausal'].path], wav.encode_wav(_audio(100, 1),
                                                                             RATE))
  err = capsys.readouterr().err
  assert status == 1 and 'no \'stream\' signature' in err and models['noncausal'].path in err


def test_export_tflite_matches_the_saved_model(tmp_path, models, capsys):
  out = str(tmp_path / 'conv.tflite')
  assert _run_cli(['export', '--tflite', models['conv'].path, out]) == 0
  assert 'latency 31 samples' in capsys.readouterr().out
  lite = stream.open_stream(models['conv'], 2, tflite=out)
  saved = stream.open_stream(models['conv'], 2)
  audio = _audio(1500, 2)
  for start in range(0, 1500, 100):   # block by block, each with its own state
    block = np.ascontiguousarray(audio[start:start + 100].T)
    np.testing.assert_allclose(lite.step(block), saved.step(block), atol=1e-5)
  np.testing.assert_allclose(stream.process_stream(lite, audio, 128),
                             apply.process(models['conv'], audio), atol=1e-5)
  # fxemu stream runs it too
  status, wet = _run_cli(['stream', models['conv'].path, '--tflite', out], wav.encode_wav(
      audio, RATE, 'FLOAT'))
  assert status == 0
  np.testing.assert_allclose(stream._decode(wet[44:], 'FLOAT', 2),  # pylint: disable=protected-access
                             apply.process(models['conv'], audio), atol=1e-5)


def test_export_tflite_for_a_block_size_runs_its_fixed_form(tmp_path, models, capsys):
  """``fxemu export --tflite --block-size 64``: ``fxemu stream --tflite`` in 64-sample
  blocks equals the whole file (the last, shorter block through the any-size form)."""
  out = str(tmp_path / 'hybrid64.tflite')
  assert _run_cli(['export', '--tflite', models['hybrid'].path, out, '--block-size', '64']) == 0
  assert f'"{contract.STREAM_FIXED_SIGNATURE}" (audio [1, 64]' in capsys.readouterr().out
  lite = stream.open_stream(models['hybrid'], 2, tflite=out)
  assert lite.block == 64
  assert lite.interpreter.get_signature_list().keys() == {contract.STREAM_FIXED_SIGNATURE}
  audio = _audio(1000, 2)
  np.testing.assert_allclose(stream.process_stream(lite, audio, 64),
                             apply.process(models['hybrid'], audio), atol=1e-5)
  # Without a SavedModel to fall back on, a block of another size is refused, by name.
  alone = stream.TFLiteStream(open(out, 'rb').read(), 1)
  alone.step(np.zeros([1, 64], np.float32))
  with pytest.raises(ValueError, match='exactly 64 samples.*got one of 10'):
    alone.step(np.zeros([1, 10], np.float32))
  assert _run_cli(['export', '--tflite', models['hybrid'].path, out, '--block-size', '60']) == 1
  assert 'multiple of the model\'s frame' in capsys.readouterr().err


def test_export_tflite_default_path_and_errors(tmp_path, models, capsys):
  assert _run_cli(['export', '--tflite', models['hybrid'].path]) == 0
  assert os.path.getsize(os.path.join(models['hybrid'].path, 'stream.tflite')) > 1000
  assert _run_cli(['export', '--tflite', models['noncausal'].path]) == 1
  assert 'no \'stream\' signature' in capsys.readouterr().err
  assert _run_cli(['export', '--tflite', str(tmp_path / 'missing')]) == 1
  assert 'no such model directory' in capsys.readouterr().err
  broken = tmp_path / 'broken.tflite'
  broken.write_bytes(b'not a flatbuffer')
  status, _ = _run_cli(['stream', models['hybrid'].path, '--tflite', str(broken)],
                       wav.encode_wav(_audio(100, 1), RATE))
  assert status == 1 and 'broken.tflite: not a usable TFLite model' in capsys.readouterr().err
