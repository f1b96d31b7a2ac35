"""WAV decoding: every supported format, odd files, and clear errors naming the file."""
import os
import struct

import numpy as np
import pytest

from components.audio import wav


@pytest.mark.parametrize('subtype,tolerance', [('PCM_U8', 1 / 127), ('PCM_16', 1 / 32767),
                                               ('PCM_24', 1 / 2 ** 23), ('PCM_32', 1e-7),
                                               ('FLOAT', 0.0)])
@pytest.mark.parametrize('channels', [1, 2])
def test_formats_round_trip(tmp_path, subtype, tolerance, channels):
  audio = np.random.default_rng(1).uniform(-0.9, 0.9, [999, channels]).astype(np.float32)
  path = str(tmp_path / f'x {subtype}.wav')
  wav.write_wav(path, audio, 22050, subtype)
  decoded, info = wav.read_wav(path)
  assert info.subtype == subtype and info.channels == channels
  assert info.sample_rate == 22050 and info.num_frames == 999
  assert decoded.dtype == np.float32 and decoded.shape == (999, channels)
  np.testing.assert_allclose(decoded, audio, atol=tolerance + 1e-9)


def _with_chunk(data: bytes, chunk: bytes, before_data: bool) -> bytes:
  body = data[12:]
  data_pos = body.index(b'data')
  body = body[:data_pos] + chunk + body[data_pos:] if before_data else body + chunk
  return b'RIFF' + struct.pack('<I', 4 + len(body)) + b'WAVE' + body


@pytest.mark.parametrize('before_data', [True, False])
def test_extra_riff_chunks_are_skipped(tmp_path, before_data):
  audio = np.linspace(-0.5, 0.5, 100, dtype=np.float32)
  path = str(tmp_path / 'plain.wav')
  wav.write_wav(path, audio, 44100)
  odd = _with_chunk(open(path, 'rb').read(), b'LIST' + struct.pack('<I', 5) + b'abcde\0',
                    before_data)
  odd_path = str(tmp_path / 'odd.wav')
  open(odd_path, 'wb').write(odd)
  decoded, info = wav.read_wav(odd_path)
  assert 'LIST' in info.extra_chunks
  np.testing.assert_allclose(decoded[:, 0], audio, atol=1 / 32767)


def test_seed_recording_with_extra_chunks(seed_audio):
  audio, info = wav.read_wav(os.path.join(seed_audio, 'pedals - post - beethoven_opus10_1.wav'))
  assert info.extra_chunks and audio.shape == (info.num_frames, 2)
  assert 0.1 < np.abs(audio).max() <= 1.0


@pytest.mark.parametrize('content,problem', [
    (b'', 'empty'),
    (b'this is not audio at all', 'not a WAV file'),
    (b'RIFF\x10\x00\x00\x00WAVEjunk\x00\x00\x00\x00', 'no fmt chunk'),
])
def test_bad_files_name_the_file_and_problem(tmp_path, content, problem):
  path = str(tmp_path / 'bad file é.wav')
  open(path, 'wb').write(content)
  with pytest.raises(wav.AudioFileError) as error:
    wav.read_wav(path)
  assert path in str(error.value) and problem in str(error.value)


def test_truncated_file(tmp_path):
  path = str(tmp_path / 'cut.wav')
  wav.write_wav(path, np.zeros([1000, 2], np.float32), 44100)
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) - 1001])
  with pytest.raises(wav.AudioFileError, match='truncated'):
    wav.read_wav(path)


def test_non_finite_float_samples(tmp_path):
  path = str(tmp_path / 'nan.wav')
  audio = np.zeros([50, 1], np.float32)
  audio[17] = np.nan
  wav.write_wav(path, audio, 44100, 'FLOAT')
  with pytest.raises(wav.AudioFileError, match='NaN or infinite samples .first at frame 17'):
    wav.read_wav(path)


def test_empty_data_chunk(tmp_path):
  path = str(tmp_path / 'silent.wav')
  wav.write_wav(path, np.zeros([0, 2], np.float32), 44100)
  with pytest.raises(wav.AudioFileError, match='no samples'):
    wav.read_wav(path)


def test_write_is_atomic_and_leaves_no_partial_file(tmp_path):
  path = str(tmp_path / 'out.wav')
  wav.write_wav(path, np.zeros(10, np.float32), 44100)
  with pytest.raises(ValueError):
    wav.write_wav(path, np.zeros(10, np.float32), 44100, subtype='PCM_12')
  assert os.listdir(tmp_path) == ['out.wav']
  assert wav.read_info(path).num_frames == 10
