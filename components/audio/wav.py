"""WAV files: header parsing, decoding to float32, and atomic writing.

Decoding goes through tensorflow-io (``tfio.audio.decode_wav``) for the sample formats it
supports (8- and 16-bit PCM, 32-bit float); 24- and 32-bit integer PCM, which it does not
decode, are read from the data chunk with NumPy. Every problem raises
:class:`AudioFileError` naming the file and what is wrong with it.
"""
from __future__ import annotations

import dataclasses
import struct

import numpy as np

from components.audio import atomic_file
from components.audio import dsp

FORMAT_PCM = 1
FORMAT_FLOAT = 3
FORMAT_EXTENSIBLE = 0xFFFE

#: Sample formats written by :func:`write_wav`: name -> (format tag, bits).
SUBTYPES = {
    'PCM_U8': (FORMAT_PCM, 8),
    'PCM_16': (FORMAT_PCM, 16),
    'PCM_24': (FORMAT_PCM, 24),
    'PCM_32': (FORMAT_PCM, 32),
    'FLOAT': (FORMAT_FLOAT, 32),
}


class AudioFileError(ValueError):
  """A file that cannot be used as audio; the message names the file and the problem."""

  def __init__(self, path: str, problem: str):
    super().__init__(f'{path}: {problem}')
    self.path = path
    self.problem = problem


@dataclasses.dataclass(frozen=True)
class WavInfo:
  """What a WAV header says. Lengths in sample frames, rate in Hz."""
  path: str
  format_tag: int          # FORMAT_PCM or FORMAT_FLOAT (extensible resolved)
  channels: int
  sample_rate: int
  bits: int
  num_frames: int
  data_offset: int         # byte offset of the first sample
  extra_chunks: tuple = ()  # ids of chunks other than fmt/data, e.g. ('LIST',)

  @property
  def subtype(self) -> str:
    if self.format_tag == FORMAT_FLOAT:
      return 'FLOAT'
    return 'PCM_U8' if self.bits == 8 else f'PCM_{self.bits}'

  @property
  def duration(self) -> float:
    """Length in seconds."""
    return self.num_frames / float(self.sample_rate)


def _read_bytes(path: str) -> bytes:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  try:
    return tf.io.gfile.GFile(path, 'rb').read()
  except Exception as e:  # pylint: disable=broad-except
    raise AudioFileError(path, f'cannot be read ({e})') from e


def parse_header(path: str, data: bytes) -> WavInfo:
  """Parses the RIFF/WAVE chunks of ``data`` (the file's bytes)."""
  if len(data) == 0:
    raise AudioFileError(path, 'the file is empty')
  if len(data) < 12 or data[:4] not in (b'RIFF', b'RF64') or data[8:12] != b'WAVE':
    raise AudioFileError(path, 'not a WAV file (no RIFF/WAVE header)')
  pos, fmt, data_chunk, extra = 12, None, None, []
  while pos + 8 <= len(data):
    chunk_id = data[pos:pos + 4]
    size = struct.unpack('<I', data[pos + 4:pos + 8])[0]
    body = pos + 8
    if chunk_id == b'fmt ':
      if size < 16 or body + 16 > len(data):
        raise AudioFileError(path, 'the fmt chunk is truncated')
      fmt = struct.unpack('<HHIIHH', data[body:body + 16])
      if fmt[0] == FORMAT_EXTENSIBLE and size >= 40:
        sub = struct.unpack('<H', data[body + 24:body + 26])[0]
        fmt = (sub,) + fmt[1:]
    elif chunk_id == b'data':
      available = len(data) - body
      data_chunk = (body, min(size, available), size > available)
    else:
      extra.append(chunk_id.decode('latin-1').strip())
    pos = body + size + (size & 1)
  if fmt is None:
    raise AudioFileError(path, 'no fmt chunk: not a valid WAV file')
  if data_chunk is None:
    raise AudioFileError(path, 'no data chunk: the file is truncated or not audio')
  format_tag, channels, rate, _, block_align, bits = fmt
  if format_tag not in (FORMAT_PCM, FORMAT_FLOAT):
    raise AudioFileError(path, f'unsupported WAV sample format tag {format_tag} '
                         '(supported: integer PCM and 32-bit float)')
  if format_tag == FORMAT_PCM and bits not in (8, 16, 24, 32):
    raise AudioFileError(path, f'unsupported PCM bit depth {bits}')
  if format_tag == FORMAT_FLOAT and bits != 32:
    raise AudioFileError(path, f'unsupported float bit depth {bits} (only 32-bit float)')
  if channels < 1 or rate < 1:
    raise AudioFileError(path, f'invalid header: {channels} channels at {rate} Hz')
  offset, nbytes, truncated = data_chunk
  frame_bytes = channels * bits // 8
  if truncated or nbytes % frame_bytes:
    raise AudioFileError(
        path, f'truncated: the data chunk promises more bytes than the file holds '
        f'({nbytes} of a declared length)' if truncated else
        f'truncated: {nbytes} data bytes is not a whole number of {frame_bytes}-byte frames')
  return WavInfo(path, format_tag, channels, rate, bits, nbytes // frame_bytes, offset,
                 tuple(extra))


def read_info(path: str) -> WavInfo:
  """Reads and checks only the header of a WAV file."""
  return parse_header(path, _read_bytes(path))


def _decode_with_tfio(data: bytes, info: WavInfo) -> np.ndarray:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  import tensorflow_io as tfio  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  dtype = {8: tf.uint8, 16: tf.int16}.get(info.bits) if info.format_tag == FORMAT_PCM \
      else tf.float32
  # tfio's decoder stops at the data chunk; give it a plain fmt+data file so that
  # chunks it does not know (LIST, smpl, ...) never reach it.
  header = struct.pack('<4sI4s4sIHHIIHH4sI', b'RIFF', 36 + info.num_frames * info.channels
                       * info.bits // 8, b'WAVE', b'fmt ', 16, info.format_tag,
                       info.channels, info.sample_rate,
                       info.sample_rate * info.channels * info.bits // 8,
                       info.channels * info.bits // 8, info.bits, b'data',
                       info.num_frames * info.channels * info.bits // 8)
  body = data[info.data_offset:info.data_offset + info.num_frames * info.channels * info.bits // 8]
  decoded = tfio.audio.decode_wav(tf.constant(header + body), dtype=dtype).numpy()
  return decoded.reshape([info.num_frames, info.channels])


def _decode_with_numpy(data: bytes, info: WavInfo) -> np.ndarray:
  nbytes = info.num_frames * info.channels * info.bits // 8
  raw = np.frombuffer(data, np.uint8, nbytes, info.data_offset)
  if info.bits == 24:
    b = raw.reshape([-1, 3]).astype(np.int32)
    values = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16))
    values = np.where(values >= 1 << 23, values - (1 << 24), values)
  else:
    values = raw.view('<i4')
  return values.reshape([info.num_frames, info.channels])


def read_wav(path: str, allow_non_finite: bool = False):
  """Reads a WAV file as float32.

  Returns:
    (audio, info): audio is float32 ``[frames, channels]`` in [-1, 1] for integer PCM
    (float files are returned as stored); info is the :class:`WavInfo`.
  Raises:
    AudioFileError: unreadable, not WAV, truncated, unsupported format, or (float files)
      NaN/inf samples.
  """
  data = _read_bytes(path)
  info = parse_header(path, data)
  if info.num_frames == 0:
    raise AudioFileError(path, 'the file holds no samples (empty data chunk)')
  try:
    if info.format_tag == FORMAT_FLOAT or info.bits in (8, 16):
      raw = _decode_with_tfio(data, info)
    else:
      raw = _decode_with_numpy(data, info)
  except AudioFileError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise AudioFileError(path, f'cannot be decoded ({e})') from e
  if info.format_tag == FORMAT_FLOAT:
    audio = raw.astype(np.float32)
    if not allow_non_finite and not np.all(np.isfinite(audio)):
      bad = int(np.argmax(~np.isfinite(audio).all(axis=1)))
      raise AudioFileError(path, f'contains NaN or infinite samples (first at frame {bad})')
  else:
    audio = dsp.pcm_to_float(raw, info.bits)
  return audio, info


def _encode(audio: np.ndarray, subtype: str) -> bytes:
  if subtype == 'FLOAT':
    return np.asarray(audio, '<f4').tobytes()
  _, bits = SUBTYPES[subtype]
  pcm = dsp.float_to_pcm(audio, bits)
  if bits == 24:
    v = pcm.astype('<i4').reshape(-1).view(np.uint8).reshape(-1, 4)[:, :3]
    return v.tobytes()
  return pcm.astype({8: 'u1', 16: '<i2', 32: '<i4'}[bits]).tobytes()


def encode_wav(audio: np.ndarray, sample_rate: int, subtype: str = 'PCM_16') -> bytes:
  """Float audio ``[frames]`` or ``[frames, channels]`` as the bytes of a WAV file.

  Integer subtypes clip to full scale.
  """
  return b''.join(_wav_chunks(audio, sample_rate, subtype))


def _wav_chunks(audio: np.ndarray, sample_rate: int, subtype: str):
  """[header, sample data, pad byte or b''] of a WAV file (see :func:`encode_wav`)."""
  if subtype not in SUBTYPES:
    raise ValueError(f'unknown subtype {subtype!r}; choose from {sorted(SUBTYPES)}')
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 1:
    audio = audio[:, None]
  format_tag, bits = SUBTYPES[subtype]
  channels = audio.shape[1]
  payload = _encode(audio, subtype)
  header = struct.pack('<4sI4s4sIHHIIHH4sI', b'RIFF', 36 + len(payload), b'WAVE', b'fmt ',
                       16, format_tag, channels, sample_rate,
                       sample_rate * channels * bits // 8, channels * bits // 8, bits,
                       b'data', len(payload))
  return [header, payload, b'\0' if len(payload) & 1 else b'']


def write_wav(path: str, audio: np.ndarray, sample_rate: int, subtype: str = 'PCM_16') -> None:
  """Writes float audio ``[frames]`` or ``[frames, channels]`` as a WAV file, atomically.

  The file is written next to its destination and renamed into place, so a reader
  never sees a half-written file and an existing file is only replaced once the new
  one is complete. Integer subtypes clip to full scale.
  """
  atomic_file.write_atomically(path, _wav_chunks(audio, sample_rate, subtype))
