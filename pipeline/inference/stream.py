"""Streaming inference with carried state: ``fxemu apply --block-size``, ``fxemu stream``,
``fxemu export --tflite``.

A model exported with the ``stream`` signature (``trainer/export.py``; the streamable
architectures of ``trainer/streaming.py``) runs a block of N samples per call with its
memory in an explicit ``state`` vector, so a block costs O(N) whatever the receptive
field. Each channel is one batch row with its own state row.

* :class:`SavedModelStream` calls the signature of a :class:`pipeline.inference.apply.LocalModel`;
  :class:`TFLiteStream` runs the TFLite form (``fxemu export --tflite``) in the TFLite
  interpreter. Both have ``step(block [channels, n]) -> wet [channels, n]``, ``latency``
  (samples) and ``reset()``.
* The stream's output is the whole-file output ``latency`` samples late (0 for causal
  models; the FIR look-ahead or the conv model's centred frames make it late).
  :func:`process_stream` feeds a whole file, drops the first ``latency`` output samples
  and computes the last ``latency`` with one whole-file call on the end of the file
  (:func:`whole_file_tail`; the conv model has no frames past a file's end, which
  silence fed to the stream would not reproduce): the result equals the whole-file
  output (to float rounding, tested to 1e-5).
* ``fxemu stream`` does the same from stdin to stdout, block by block: raw PCM
  (``--raw f32|s16``, ``--rate``, ``--channels``) or a WAV file (header first, then
  samples), and prints the latency on stderr.
"""
from __future__ import annotations

import os
import struct
import sys
from typing import BinaryIO, List, Optional

import numpy as np

from components.audio import atomic_file
from components.audio import dsp
from components.audio import wav
from pipeline.inference import apply
from schema import contract

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

DEFAULT_BLOCK = apply.STREAM_BLOCK_SAMPLES
RAW_FORMATS = {'f32': ('<f4', 4, 'FLOAT'), 's16': ('<i2', 2, 'PCM_16')}
_UNKNOWN_SIZE = 0xFFFFFFFF


class NotStreamable(apply.ModelError):
  """The model has no ``stream`` signature; the message names the model and says why."""


def stream_info(model) -> tuple:
  """``(state_size, latency_samples)`` from a model's fxemu.json; NotStreamable if it has
  no ``stream`` signature."""
  meta = getattr(model, 'metadata', {}) or {}
  source = getattr(getattr(model, 'info', None), 'source', '') or '?'
  if contract.STREAM_SIGNATURE not in meta.get('signatures', {}) or not meta.get('stream_state_size'):
    name = meta.get('model', 'this')
    raise NotStreamable(f'{source}: the {name} model has no {contract.STREAM_SIGNATURE!r} signature '
                        '(streamable architectures: hybrid, wavenet, causal tcn, causal conv '
                        'without modulation; re-export it with this version of fxemu)')
  return int(meta['stream_state_size']), int(meta.get('stream_latency_samples') or 0)


def checked_block(block, channels: int) -> np.ndarray:
  """``block`` as a contiguous float32 ``[channels, n]`` array; ValueError if it is not
  that shape (what both stream runners accept)."""
  block = np.ascontiguousarray(block, np.float32)
  if block.ndim != 2 or block.shape[0] != channels:
    raise ValueError(f'expected a block [{channels}, n], got {block.shape}')
  return block


class SavedModelStream:
  """The ``stream`` signature of a :class:`pipeline.inference.apply.LocalModel` with its state.

  ``step(block)`` takes ``[channels, n]`` float32 (n >= 1, any size, may change) and
  returns the wet ``[channels, n]``; the state stays a TensorFlow tensor between calls.
  """

  def __init__(self, model, channels: int = 1):
    import tensorflow as tf  # start-up: TensorFlow
    self.state_size, self.latency = stream_info(model)
    self.model, self.info, self.channels = model, model.info, int(channels)
    loaded = getattr(model, '_loaded', None)
    if loaded is None or contract.STREAM_SIGNATURE not in loaded.signatures:
      raise NotStreamable(f'{model.info.source}: no {contract.STREAM_SIGNATURE!r} signature in the '
                          'SavedModel')
    self._fn = loaded.signatures[contract.STREAM_SIGNATURE]
    self._tf = tf
    self.tail_model = model      # the whole-file signature, for the end of a file
    self.reset()

  def reset(self) -> None:
    """Starts a new stream (zero state)."""
    self._state = self._tf.zeros([self.channels, self.state_size], self._tf.float32)

  def step(self, block: np.ndarray) -> np.ndarray:
    block = checked_block(block, self.channels)
    if block.shape[1] == 0:
      return block.copy()
    out = self._fn(**{contract.AUDIO_INPUT: self._tf.constant(block),
                     contract.STATE: self._state})
    self._state = out[contract.STATE]
    return out[contract.WET_OUTPUT].numpy()

  def run(self, block: np.ndarray, state: np.ndarray) -> tuple:
    """One call of the signature on a given state, this stream's own left alone:
    ``(block [channels, n], state [channels, state_size]) -> (wet, next state)``, numpy."""
    out = self._fn(**{contract.AUDIO_INPUT: self._tf.constant(block, self._tf.float32),
                     contract.STATE: self._tf.constant(state, self._tf.float32)})
    return out[contract.WET_OUTPUT].numpy(), out[contract.STATE].numpy()


class TFLiteStream:
  """The TFLite form of the stream (``trainer.export.stream_tflite``) in
  ``tf.lite.Interpreter`` (with the select-TF-ops delegate for the few TF ops of the
  any-size form, and the default XNNPACK delegate for the fixed form).

  ``latency`` is not in the flatbuffer: pass it (fxemu.json's ``stream_latency_samples``;
  ``fxemu export --tflite`` prints it). The state size is read from the model. The
  flatbuffer holds ``stream`` (blocks of any size), or ``stream_fixed`` (``fxemu export
  --tflite --block-size N``: one channel, N samples; :attr:`block` is then N), or both
  (an earlier export). While every block of the stream has had N samples (the fixed
  form's condition) ``step`` runs the fixed form, channel by channel; any other block
  (the last of a file, odd sizes) goes through ``stream``, or ``any_size`` when the
  flatbuffer has no ``stream`` (``(block [channels, n], state) -> (wet, state)``, e.g.
  :meth:`SavedModelStream.run`: the state is the same); without either such a block is
  a ValueError.
  """

  def __init__(self, tflite: bytes, channels: int = 1, latency: int = 0, info=None,
               threads: Optional[int] = None, any_size=None):
    import tensorflow as tf  # start-up: TensorFlow
    self.interpreter = tf.lite.Interpreter(model_content=tflite, num_threads=threads)
    # Allocating the interpreter applies its default delegate (XNNPACK) where it can (not
    # to a flatbuffer with the any-size form). A signature runner alone allocates its graph
    # without it: TFLite's own kernels ran the hybrid's stream_fixed at 512 samples 1.65x
    # slower (docs/performance.md).
    self.interpreter.allocate_tensors()
    signatures = self.interpreter.get_signature_list()
    if not {contract.STREAM_SIGNATURE, contract.STREAM_FIXED_SIGNATURE} & set(signatures):
      raise NotStreamable(f'the TFLite model has neither a {contract.STREAM_SIGNATURE!r} nor a '
                          f'{contract.STREAM_FIXED_SIGNATURE!r} signature (signatures: '
                          f'{sorted(signatures)})')
    self.channels, self.latency, self.info = int(channels), int(latency), info
    self.block, self._fixed, self._any_size, sizes = None, None, any_size, set()
    if contract.STREAM_SIGNATURE in signatures:
      runner = self.interpreter.get_signature_runner(contract.STREAM_SIGNATURE)
      sizes.add(int(runner.get_input_details()[contract.STATE]['shape_signature'][-1]))

      def run(block, state):
        out = runner(**{contract.AUDIO_INPUT: block, contract.STATE: state})
        return out[contract.WET_OUTPUT], out[contract.STATE]
      self._any_size = run
    if contract.STREAM_FIXED_SIGNATURE in signatures:
      self._fixed = self.interpreter.get_signature_runner(contract.STREAM_FIXED_SIGNATURE)
      fixed = self._fixed.get_input_details()
      self.block = int(fixed[contract.AUDIO_INPUT]['shape_signature'][-1])
      sizes.add(int(fixed[contract.STATE]['shape_signature'][-1]))
    if len(sizes) != 1:
      raise NotStreamable(f'the {contract.STREAM_FIXED_SIGNATURE!r} and '
                          f'{contract.STREAM_SIGNATURE!r} signatures have different states')
    self.state_size = sizes.pop()
    self.tail_model = None       # set to a LocalModel to end files exactly (open_stream)
    self.reset()

  def reset(self) -> None:
    self._state = np.zeros([self.channels, self.state_size], np.float32)
    self._aligned = True         # every block so far had `block` samples

  def step(self, block: np.ndarray) -> np.ndarray:
    block = checked_block(block, self.channels)
    if block.shape[1] == 0:
      return block.copy()
    self._aligned = self._aligned and block.shape[1] == self.block
    if not self._aligned:
      if self._any_size is None:
        raise ValueError(f'this TFLite model runs blocks of exactly {self.block} samples from '
                         f'the stream\'s start (fxemu export --tflite --block-size {self.block}); '
                         f'got one of {block.shape[1]}')
      wet, state = self._any_size(block, self._state)
      self._state = np.array(state, np.float32)      # a writable copy
      return np.asarray(wet)
    wet = np.empty_like(block)
    for row in range(self.channels):     # stream_fixed takes one channel
      out = self._fixed(**{contract.AUDIO_INPUT: block[row:row + 1],
                           contract.STATE: self._state[row:row + 1]})
      wet[row], self._state[row] = out[contract.WET_OUTPUT][0], out[contract.STATE][0]
    return wet


def open_stream(model, channels: int = 1, tflite: Optional[str] = None,
                threads: Optional[int] = None):
  """A :class:`SavedModelStream` of ``model`` (a LocalModel or a model directory), or a
  :class:`TFLiteStream` of the ``tflite`` file with ``model``'s latency (``threads``:
  the interpreter's threads, None = its default)."""
  if isinstance(model, str):
    model = apply.open_model(model)
  if tflite:
    try:
      with open(tflite, 'rb') as f:
        content = f.read()
    except OSError as e:
      raise apply.ModelError(f'{tflite}: cannot read the TFLite model ({e})') from e
    state_size, latency = stream_info(model)
    try:
      runner = TFLiteStream(content, channels, latency, model.info, threads,
                            any_size=SavedModelStream(model, channels).run)
    except NotStreamable as e:
      raise apply.ModelError(f'{tflite}: {e}') from e
    except Exception as e:  # pylint: disable=broad-except
      raise apply.ModelError(f'{tflite}: not a usable TFLite model ({e})') from e
    runner.tail_model = model
    if runner.state_size != state_size:
      raise apply.ModelError(f'{tflite}: state size {runner.state_size} does not match the '
                             f'model {model.info.source} ({state_size}); export it again')
    return runner
  return SavedModelStream(model, channels)


def _sizes(block_size) -> List[int]:
  sizes = [int(block_size)] if np.isscalar(block_size) else [int(b) for b in block_size]
  if not sizes or min(sizes) < 1:
    raise ValueError(f'block sizes must be >= 1, got {block_size}')
  return sizes


def whole_file_tail(model, rows: np.ndarray, offset: int, frames: int,
                    count: int) -> np.ndarray:
  """The whole-file output of the last ``count`` samples of a ``frames``-sample stream,
  ``[channels, count]``, from its input ``rows`` (``[channels, n]``, holding the stream's
  samples from ``offset`` on; the past context before the tail is enough): one call of
  the model's whole-file signature, as :func:`pipeline.inference.apply.process` does for a last
  block. A look-ahead model's output near the end depends on how the whole file ends
  (the conv model has no frames past it), which silence fed to the stream would not
  reproduce."""
  info = model.info
  core_start = frames - count
  start = max(0, (core_start - info.past_context) // info.block_multiple * info.block_multiple)
  if start < offset:
    raise ValueError(f'the kept input starts at {offset}, after the context start {start}')
  wet = model.predict(rows[:, start - offset:frames - offset])
  return wet[:, core_start - start:]


def history_samples(model) -> int:
  """Input samples a stream keeps for :func:`whole_file_tail` at its end."""
  info = model.info
  return info.past_context + info.latency + 2 * info.block_multiple


def process_stream(runner, audio: np.ndarray, block_size=DEFAULT_BLOCK) -> np.ndarray:
  """``audio [frames, channels]`` through a stream runner in blocks (an int, or a list of
  sizes used in turn) -> ``[frames, channels]``, equal to the whole-file output: the
  first ``latency`` samples of the stream are dropped, and the last ``latency`` output
  samples come from :func:`whole_file_tail` (the runner's ``tail_model``; without one,
  from ``latency`` samples of silence fed to the stream)."""
  sizes = _sizes(block_size)
  rows = np.ascontiguousarray(np.asarray(audio, np.float32).T)
  frames, latency = rows.shape[1], runner.latency
  tail_model = getattr(runner, 'tail_model', None)
  feed = rows
  if tail_model is None:
    feed = np.concatenate([rows, np.zeros([rows.shape[0], latency], np.float32)], axis=1)
  runner.reset()
  out, start, i = [], 0, 0
  while start < feed.shape[1]:
    n = min(sizes[i % len(sizes)], feed.shape[1] - start)
    out.append(runner.step(feed[:, start:start + n]))
    start, i = start + n, i + 1
  wet = np.concatenate(out, axis=1)[:, latency:]
  if tail_model is not None and latency:
    wet = np.concatenate([wet, whole_file_tail(tail_model, rows, 0, frames,
                                               min(latency, frames))], axis=1)
  return wet[:, :frames].T


def apply_file_streaming(model, in_path: str, out_path: str, block_size: int,
                         subtype: Optional[str] = None, tflite: Optional[str] = None,
                         progress: bool = False, verbose: bool = False) -> apply.ApplyResult:
  """``fxemu apply --block-size N``: the file in N-sample blocks through the ``stream``
  signature (O(N) per block, state carried); a model without it falls back to the
  seamless blocks of :func:`pipeline.inference.apply.process` (the past context recomputed for
  every block) and says so on stderr. Output equals the whole-file output. ``verbose``:
  print the stream's latency (samples) on stderr."""
  del progress
  if subtype is not None and subtype not in wav.SUBTYPES:
    raise ValueError(f'unknown subtype {subtype!r}; choose from {sorted(wav.SUBTYPES)}')
  if block_size < 1:
    raise ValueError(f'--block-size must be >= 1, got {block_size}')
  if isinstance(model, str):
    model = apply.open_model(model)
  audio, info = wav.read_wav(in_path)
  if info.sample_rate != model.info.sample_rate:
    raise wav.AudioFileError(in_path, f'sample rate is {info.sample_rate} Hz but the model '
                             f'({model.info.source}) expects {model.info.sample_rate} Hz; '
                             'resample the file first')
  try:
    runner = open_stream(model, info.channels, tflite)
    if verbose:
      print(f'fxemu apply: streaming in blocks of {block_size} samples through the '
            f'{contract.STREAM_SIGNATURE!r} signature; latency {runner.latency} samples '
            f'({1000.0 * runner.latency / info.sample_rate:.2f} ms)', file=sys.stderr)
    wet = process_stream(runner, audio, block_size)
    fed = info.num_frames + (0 if runner.tail_model is not None else runner.latency)
    blocks = -(-fed // block_size)
  except NotStreamable as e:
    if tflite:
      raise
    print(f'fxemu apply: {e}; using seamless blocks (each recomputes the past context)',
          file=sys.stderr)
    wet = apply.process(model, audio, block_size)
    blocks = len(apply.plan_blocks(info.num_frames, block_size, model.info))
  return apply.write_result(model, in_path, out_path, wet, info, subtype, blocks)


# --- stdin -> stdout -------------------------------------------------------------------------

def _read_exactly(stream: BinaryIO, count: int) -> bytes:
  """Up to ``count`` bytes: fewer only at the end of the stream."""
  parts, got = [], 0
  while got < count:
    chunk = stream.read(count - got)
    if not chunk:
      break
    parts.append(chunk)
    got += len(chunk)
  return b''.join(parts)


def read_wav_header(stream: BinaryIO, name: str = '<stdin>'):
  """Reads a WAV header from a stream up to the first sample: ``(format_tag, channels,
  rate, bits, data_bytes)``; ``data_bytes`` is None when the header does not know it
  (0 or 0xFFFFFFFF, as streaming writers leave it)."""
  head = _read_exactly(stream, 12)
  if not head:
    raise wav.AudioFileError(name, 'empty input (expected a WAV file, or pass --raw f32|s16)')
  if len(head) < 12 or head[:4] not in (b'RIFF', b'RF64') or head[8:12] != b'WAVE':
    raise wav.AudioFileError(name, 'not a WAV file (no RIFF/WAVE header); for raw PCM pass '
                             '--raw f32|s16 with --rate and --channels')
  fmt = None
  while True:
    chunk = _read_exactly(stream, 8)
    if len(chunk) < 8:
      raise wav.AudioFileError(name, 'no data chunk: the stream ended in the header')
    chunk_id, size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
    if chunk_id == b'data':
      break
    body = _read_exactly(stream, size + (size & 1))
    if len(body) < size:
      raise wav.AudioFileError(name, f'the {chunk_id!r} chunk is truncated')
    if chunk_id == b'fmt ':
      if size < 16:
        raise wav.AudioFileError(name, 'the fmt chunk is truncated')
      fmt = struct.unpack('<HHIIHH', body[:16])
      if fmt[0] == wav.FORMAT_EXTENSIBLE and size >= 40:
        fmt = (struct.unpack('<H', body[24:26])[0],) + fmt[1:]
  if fmt is None:
    raise wav.AudioFileError(name, 'no fmt chunk before the data: not a valid WAV stream')
  format_tag, channels, rate, _, _, bits = fmt
  if (format_tag, bits) not in [v for v in wav.SUBTYPES.values()]:
    raise wav.AudioFileError(name, f'unsupported WAV sample format (tag {format_tag}, '
                             f'{bits} bits); supported: 8/16/24/32-bit PCM, 32-bit float')
  if channels < 1 or rate < 1:
    raise wav.AudioFileError(name, f'invalid header: {channels} channels at {rate} Hz')
  return format_tag, channels, rate, bits, (None if size in (0, _UNKNOWN_SIZE) else size)


def subtype_of(format_tag: int, bits: int) -> str:
  return next(k for k, v in wav.SUBTYPES.items() if v == (format_tag, bits))


def _decode(data: bytes, subtype: str, channels: int) -> np.ndarray:
  """Interleaved sample bytes -> float32 ``[frames, channels]``."""
  if subtype == 'FLOAT':
    return np.frombuffer(data, '<f4').reshape([-1, channels]).astype(np.float32)
  bits = wav.SUBTYPES[subtype][1]
  if bits == 24:
    b = np.frombuffer(data, np.uint8).reshape([-1, 3]).astype(np.int32)
    values = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
    values = np.where(values >= 1 << 23, values - (1 << 24), values)
  else:
    values = np.frombuffer(data, {8: 'u1', 16: '<i2', 32: '<i4'}[bits])
  return dsp.pcm_to_float(values.reshape([-1, channels]), bits)


def wav_stream_header(channels: int, rate: int, subtype: str, data_bytes: Optional[int]) -> bytes:
  """A 44-byte WAV header; unknown lengths are 0xFFFFFFFF (what streaming readers accept)."""
  format_tag, bits = wav.SUBTYPES[subtype]
  size = _UNKNOWN_SIZE if data_bytes is None else data_bytes
  riff = _UNKNOWN_SIZE if data_bytes is None else min(_UNKNOWN_SIZE, 36 + data_bytes)
  return struct.pack('<4sI4s4sIHHIIHH4sI', b'RIFF', riff, b'WAVE', b'fmt ', 16, format_tag,
                     channels, rate, rate * channels * bits // 8, channels * bits // 8, bits,
                     b'data', size)


def stream_pcm(runner, source: BinaryIO, sink: BinaryIO, subtype: str, channels: int,
               block_size: int, total_bytes: Optional[int] = None, align: bool = True,
               name: str = '<stdin>') -> int:
  """Reads interleaved samples of ``subtype`` from ``source`` block by block, writes the
  wet samples in the same format to ``sink`` as each block is processed; returns frames
  read. ``align``: drop the first ``latency`` output samples and, at the end, write the
  last ``latency`` samples as the whole file ends (:func:`whole_file_tail`), so the
  output equals ``fxemu apply``'s and has the input's length; otherwise the output is
  the real-time stream (``latency`` samples late, the input's length)."""
  frame_bytes = channels * wav.SUBTYPES[subtype][1] // 8
  to_drop = runner.latency if align else 0
  tail_model = getattr(runner, 'tail_model', None) if align else None
  keep = history_samples(tail_model) if tail_model is not None else 0
  history, history_start = np.zeros([channels, 0], np.float32), 0
  remaining = total_bytes
  frames = 0
  runner.reset()

  def emit(wet_rows: np.ndarray) -> None:
    nonlocal to_drop
    if to_drop:
      cut = min(to_drop, wet_rows.shape[1])
      wet_rows, to_drop = wet_rows[:, cut:], to_drop - cut
    if wet_rows.shape[1]:
      if not np.all(np.isfinite(wet_rows)):
        raise apply.ModelError(f'the model produced NaN or infinite samples (frame {frames})')
      sink.write(wav._encode(wet_rows.T, subtype))  # pylint: disable=protected-access
      sink.flush()

  while remaining is None or remaining > 0:
    want = block_size * frame_bytes
    if remaining is not None:
      want = min(want, remaining)
    data = _read_exactly(source, want)
    if remaining is not None:
      remaining = 0 if len(data) < want else remaining - len(data)
    if len(data) % frame_bytes:
      raise wav.AudioFileError(name, f'the input ended inside a frame ({len(data) % frame_bytes}'
                               f' stray bytes; {frame_bytes} bytes per frame of {channels} '
                               f'channel(s) of {subtype})')
    if not data:
      break
    rows = np.ascontiguousarray(_decode(data, subtype, channels).T)
    if subtype == 'FLOAT' and not np.all(np.isfinite(rows)):
      raise wav.AudioFileError(name, f'NaN or infinite samples near frame {frames}')
    frames += rows.shape[1]
    if keep:
      history = np.concatenate([history, rows], axis=1)
      if history.shape[1] > 2 * keep:
        history_start += history.shape[1] - keep
        history = history[:, -keep:]
    emit(runner.step(rows))
    if remaining is None and len(data) < block_size * frame_bytes:
      break
  if align and runner.latency and frames:
    if tail_model is not None:
      to_drop = 0   # the stream has written frames - latency samples (or none): the rest
      emit(whole_file_tail(tail_model, history, history_start, frames,
                           min(runner.latency, frames)))
    else:
      emit(runner.step(np.zeros([channels, runner.latency], np.float32)))
  return frames


# --- fxemu export --tflite -------------------------------------------------------------------

def export_tflite(model_dir: str, out_path: Optional[str] = None,
                  block_size: Optional[int] = None) -> tuple:
  """Writes the TFLite form of ``model_dir``'s ``stream`` signature (the newest version of
  a base directory; with ``block_size``, its fast ``stream_fixed`` form for blocks of
  that many samples instead: :func:`trainer.export.stream_tflite`); returns ``(out_path,
  state_size, latency, version_dir)``. The default ``out_path`` is ``<version
  dir>/stream.tflite`` (TF Serving ignores extra files)."""
  from trainer import export  # start-up: TensorFlow
  model = apply.LocalModel(model_dir)
  state_size, latency = stream_info(model)
  out_path = out_path or os.path.join(model.path, 'stream.tflite')
  try:
    content = export.stream_tflite(model.path, block_size)
  except ValueError as e:       # no stream signature, or the block size does not fit
    raise apply.ModelError(str(e)) from e
  except Exception as e:  # pylint: disable=broad-except
    raise apply.ModelError(f'{model.path}: the TFLite conversion failed ({e})') from e
  try:
    atomic_file.write_atomically(out_path, [content])
  except OSError as e:
    raise apply.ModelError(f'{out_path}: cannot be written ({e})') from e
  return out_path, state_size, latency, model.path
