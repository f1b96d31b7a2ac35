"""Use a pushed model: ``fxemu apply MODEL in.wav out.wav``, seamless blocks, streaming.

MODEL is one of

* a TF Serving model base directory as the Pusher writes it (``<base>/<version>/
  saved_model.pb``; the newest complete numeric version is used),
* one version directory (it holds ``saved_model.pb``),
* a TF Serving REST endpoint ``http://host:8501/v1/models/NAME[/versions/V]`` (``fxemu
  serve`` or ``tensorflow_model_server``); requests go to ``<endpoint>:predict``.

Every model maps ``audio [batch, samples]`` to ``wet [batch, samples]`` (float32, same
length); each channel of a file is one batch row. ``assets/fxemu.json`` (see
``trainer/export.py``) gives the sample rate and the receptive field: output sample t
depends only on input ``[t - past, t + future]``, and the model is shift-invariant only
by multiples of ``block_multiple``.

Seamless blocks: output ``[c0, c1)`` is computed from the input segment
``[s0, s1)`` with ``s0 = floor((c0 - P) / M) * M`` (clamped to 0) and ``s1 = c1 + F``
(clamped to the file end), where M is the block multiple, P = past and F = future
rounded up to M. Segments that reach the file's start or end are treated exactly as
the whole file is, so block-wise output equals whole-file output (to float rounding)
for any block size. :class:`BlockProcessor` applies the same rule to a stream of
small blocks; its output lags the input by F samples (its ``latency``).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import tqdm

from components.audio import model_versions
from components.audio import wav
from schema import contract

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

DEFAULT_BLOCK_SECONDS = 10.0
STREAM_BLOCK_SAMPLES = 512         # nominal block of the real-time API and its benchmark
_ENDPOINT = re.compile(r'^(https?://[^/]+)/v1/models/([^/:]+)(?:/versions/(\d+))?/?$')


class ModelError(ValueError):
  """A model that cannot be found, loaded or reached; the message names it."""


# --- Model description -----------------------------------------------------------------

def _round_up(value: int, multiple: int) -> int:
  return -(-int(value) // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class ModelInfo:
  """What block-wise processing needs to know about a model. Lengths in samples."""
  sample_rate: int         # Hz
  past_samples: int        # receptive field before the output sample
  future_samples: int      # receptive field after it
  block_multiple: int      # segments must start at multiples of this
  model: str = ''          # architecture name (conv, dense, tcn)
  version: str = ''        # TF Serving version, '' when unknown
  source: str = ''         # directory or URL it came from

  @classmethod
  def from_metadata(cls, meta: Dict[str, Any], source: str = '',
                    version: str = '') -> 'ModelInfo':
    """From the contents of ``fxemu.json``."""
    try:
      info = cls(int(meta['sample_rate']), int(meta['receptive_field_past_samples']),
                 int(meta['receptive_field_future_samples']), int(meta['block_multiple']),
                 str(meta.get('model', '')), str(version), source)
    except (KeyError, TypeError, ValueError) as e:
      raise ModelError(f'{source}: {contract.MODEL_INFO_FILE} is missing or has a bad value '
                       f'for {e}') from e
    if info.sample_rate < 1 or info.block_multiple < 1 or min(info.past_samples,
                                                              info.future_samples) < 0:
      raise ModelError(f'{source}: {contract.MODEL_INFO_FILE} holds inconsistent values: {info}')
    return info

  @property
  def past_context(self) -> int:
    """Input kept before each block: the past receptive field rounded up to the multiple."""
    return _round_up(self.past_samples, self.block_multiple)

  @property
  def latency(self) -> int:
    """Input needed after each block (and the streaming delay): future field, rounded up."""
    return _round_up(self.future_samples, self.block_multiple)


def read_asset(model_dir: str) -> Dict[str, Any]:
  """The ``assets/fxemu.json`` of a version directory (local path or gs://...)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  path = os.path.join(model_dir, 'assets', contract.MODEL_INFO_FILE)
  try:
    with tf.io.gfile.GFile(path) as f:
      return json.load(f)
  except Exception as e:  # pylint: disable=broad-except
    raise ModelError(f'{model_dir}: cannot read {path} ({e}); is it an fxemu model?') from e


# --- Versions in a model base directory -------------------------------------------------

def resolve_version_dir(path: str) -> str:
  """A version directory itself, or the newest complete version of a base directory."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  if tf.io.gfile.exists(os.path.join(path, 'saved_model.pb')):
    return path
  if not tf.io.gfile.isdir(path):
    raise ModelError(f'{path}: no such model directory')
  versions = model_versions.versions(path)
  if not versions:
    raise ModelError(f'{path}: no model versions (expected {path}/<version>/saved_model.pb '
                     'and variables/, as the Pusher writes them)')
  return versions[0][1]


# --- Models ----------------------------------------------------------------------------

class LocalModel:
  """A SavedModel version directory loaded in this process.

  ``predict(audio [batch, samples]) -> [batch, samples]`` float32.
  """
  max_request_samples: Optional[int] = None   # no per-call limit

  def __init__(self, path: str):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    self.path = resolve_version_dir(path)
    self.metadata = read_asset(self.path)
    version = os.path.basename(os.path.normpath(self.path))
    self.version = version if version.isdigit() else ''
    self.info = ModelInfo.from_metadata(self.metadata, self.path, self.version)
    try:
      self._loaded = tf.saved_model.load(self.path)
      self._fn = self._loaded.signatures[contract.SERVING_SIGNATURE]
    except Exception as e:  # pylint: disable=broad-except
      raise ModelError(f'{self.path}: cannot load the SavedModel ({e})') from e
    self._tf = tf

  def predict(self, audio: np.ndarray) -> np.ndarray:
    audio = np.ascontiguousarray(audio, np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
      raise ValueError(f'audio must be [batch, samples] with samples > 0, got {audio.shape}')
    outputs = self._fn(**{contract.AUDIO_INPUT: self._tf.constant(audio)})
    return outputs[contract.WET_OUTPUT].numpy()

  def signature_defs(self) -> Dict[str, Any]:
    """The SavedModel's signature defs as TF Serving prints them in its metadata JSON."""
    from google.protobuf import json_format  # start-up: TensorFlow
    from tensorflow.core.protobuf import saved_model_pb2  # start-up: TensorFlow
    proto = saved_model_pb2.SavedModel()
    with self._tf.io.gfile.GFile(os.path.join(self.path, 'saved_model.pb'), 'rb') as f:
      proto.ParseFromString(f.read())
    defs = proto.meta_graphs[0].signature_def
    try:
      kwargs = {'including_default_value_fields': True}
      json_format.MessageToDict(defs[contract.SERVING_SIGNATURE], **kwargs)
    except TypeError:  # protobuf >= 5.26 renamed the option
      kwargs = {'always_print_fields_with_no_presence': True}
    return {name: json_format.MessageToDict(d, preserving_proto_field_name=True, **kwargs)
            for name, d in defs.items()}


def format_rows(rows: np.ndarray) -> str:
  """``[batch, samples]`` floats as a JSON array of arrays, exact for float32 (9 digits)."""
  rows = np.asarray(rows, np.float32)
  if not np.all(np.isfinite(rows)):
    return json.dumps(rows.tolist())   # NaN/Infinity tokens, as Python's json writes them
  fmt = '%.9g'.__mod__
  return '[' + ','.join('[' + ','.join(map(fmt, row.tolist())) + ']' for row in rows) + ']'


class RemoteModel:
  """A model behind a TF Serving REST endpoint ``http://host:port/v1/models/NAME[/versions/V]``.

  The sample rate and receptive field come from ``metadata.fxemu`` of the endpoint's
  metadata (``fxemu serve`` adds it); ``tensorflow_model_server`` does not report them,
  so pass ``model_info``: the model's version directory or its ``fxemu.json``.
  """
  BYTES_PER_SAMPLE = 16   # upper bound of one '%.9g' number and its comma

  def __init__(self, url: str, model_info: Optional[str] = None, timeout: float = 120.0,
               max_request_bytes: int = 8 << 20):
    import requests  # start-up: requests, only for a serving URL
    url = url.strip()
    url = url[:-len(':predict')] if url.endswith(':predict') else url
    match = _ENDPOINT.match(url)
    if not match:
      raise ModelError(f'{url}: not a TF Serving REST endpoint '
                       '(expected http://HOST:PORT/v1/models/NAME[/versions/VERSION])')
    self.url, self.timeout = url.rstrip('/'), timeout
    self.max_request_samples = max(1, max_request_bytes // self.BYTES_PER_SAMPLE)
    self._session = requests.Session()
    self._requests = requests
    meta = self._get_metadata()
    spec_version = str(meta.get('model_spec', {}).get('version', '')) or (match.group(3) or '')
    fxemu = meta.get('metadata', {}).get('fxemu')
    if fxemu is None:
      if not model_info:
        raise ModelError(f'{self.url}: the server does not report the model\'s sample rate '
                         'and receptive field (tensorflow_model_server does not); pass '
                         f'--model-info with the model\'s version directory or '
                         f'{contract.MODEL_INFO_FILE}')
      fxemu = _read_model_info_file(model_info)
    self.metadata = fxemu
    self.version = spec_version
    self.info = ModelInfo.from_metadata(fxemu, self.url, spec_version)

  def _get_metadata(self) -> Dict[str, Any]:
    try:
      response = self._session.get(self.url + '/metadata', timeout=self.timeout)
    except self._requests.RequestException as e:
      raise ModelError(f'{self.url}: cannot reach the server ({e})') from e
    if response.status_code != 200:
      raise ModelError(f'{self.url}: metadata request failed: HTTP {response.status_code} '
                       f'{_error_text(response)}')
    return response.json()

  def predict(self, audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    body = '{"signature_name":"%s","instances":%s}' % (contract.SERVING_SIGNATURE,
                                                       format_rows(audio))
    try:
      response = self._session.post(self.url + ':predict', data=body.encode(),
                                    headers={'Content-Type': 'application/json'},
                                    timeout=self.timeout)
    except self._requests.RequestException as e:
      raise ModelError(f'{self.url}: predict request failed ({e})') from e
    if response.status_code != 200:
      raise ModelError(f'{self.url}: predict failed: HTTP {response.status_code} '
                       f'{_error_text(response)}')
    try:
      wet = np.asarray(response.json()['predictions'], np.float32)
    except (ValueError, KeyError, TypeError) as e:
      raise ModelError(f'{self.url}: malformed predict response ({e})') from e
    if wet.shape != audio.shape:
      raise ModelError(f'{self.url}: predict returned shape {wet.shape} for input {audio.shape}')
    return wet


def _error_text(response) -> str:
  try:
    return str(response.json().get('error', ''))[:500]
  except ValueError:
    return response.text[:500]


def _read_model_info_file(path: str) -> Dict[str, Any]:
  if os.path.isdir(path):
    return read_asset(resolve_version_dir(path))
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ModelError(f'{path}: cannot read the model info ({e})') from e


def open_model(spec: str, model_info: Optional[str] = None):
  """A :class:`LocalModel` for a directory or a :class:`RemoteModel` for an http(s) URL."""
  if re.match(r'^https?://', spec):
    return RemoteModel(spec, model_info)
  return LocalModel(spec)


# --- Seamless block-wise processing ------------------------------------------------------

def plan_blocks(num_samples: int, block_samples: int,
                info: ModelInfo) -> List[Tuple[int, int, int, int]]:
  """``[(segment_start, core_start, core_end, segment_end)]`` covering ``[0, num_samples)``.

  Model output on ``input[segment_start:segment_end]`` is kept for ``[core_start,
  core_end)`` (absolute sample indices); see the module docstring.
  """
  if block_samples < 1:
    raise ValueError(f'block_samples must be positive, got {block_samples}')
  plan, m = [], info.block_multiple
  for core_start in range(0, num_samples, block_samples):
    core_end = min(num_samples, core_start + block_samples)
    segment_start = max(0, (core_start - info.past_context) // m * m)
    segment_end = min(num_samples, core_end + info.latency)
    plan.append((segment_start, core_start, core_end, segment_end))
  return plan


def process(model, audio: np.ndarray, block_samples: Optional[int] = None,
            progress: bool = False, desc: str = '') -> np.ndarray:
  """Runs ``model`` over ``audio [frames, channels]`` -> ``[frames, channels]`` float32.

  Args:
    model: a :class:`LocalModel`, :class:`RemoteModel` or anything with ``info`` and
      ``predict``.
    audio: float32 ``[frames, channels]``; each channel is one batch row.
    block_samples: output samples per model call (any size); None = the whole file.
    progress: show a progress bar (stderr, when a terminal) for more than one block.
  """
  rows = np.ascontiguousarray(np.asarray(audio, np.float32).T)          # [channels, frames]
  frames = rows.shape[1]
  plan = plan_blocks(frames, block_samples or max(frames, 1), model.info)
  out = np.empty_like(rows)
  # disable=None: off when stderr is not a terminal (no carriage returns in logs).
  with tqdm.tqdm(total=frames, desc=desc, unit='samples', unit_scale=True, leave=False,
                 disable=None if progress and len(plan) > 1 else True) as bar:
    for segment_start, core_start, core_end, segment_end in plan:
      wet = model.predict(rows[:, segment_start:segment_end])
      out[:, core_start:core_end] = wet[:, core_start - segment_start:core_end - segment_start]
      bar.update(core_end - core_start)
  return out.T


class BlockProcessor:
  """Real-time processing: input blocks in, output blocks of the same size out.

  Output sample t is the model's whole-stream output at t - ``latency`` (zeros before
  the stream starts); :meth:`flush` returns the last ``latency`` samples, computed as if
  the stream ended there. Each call runs the model on the kept past context
  (``info.past_context`` samples, aligned to the block multiple), the new input and
  nothing else. Blocks may have any length; :data:`STREAM_BLOCK_SAMPLES` is typical.
  Call :meth:`warm_up` first for steady per-block times.
  """

  def __init__(self, model, channels: int = 1):
    self.model, self.info, self.channels = model, model.info, int(channels)
    self.latency = self.info.latency            # samples
    self.reset()

  def reset(self) -> None:
    """Starts a new stream."""
    self._history = np.zeros([self.channels, 0], np.float32)   # input from _history_start
    self._history_start = 0
    self._received = 0                                          # input samples so far
    self._computed = 0                                          # output samples computed
    self._pending = np.zeros([self.channels, self.latency], np.float32)  # output FIFO

  def warm_up(self, block_samples: int = STREAM_BLOCK_SAMPLES) -> None:
    """Runs silence through every segment length a stream of ``block_samples`` blocks
    starts with, then :meth:`reset`. TensorFlow prepares kernels per input shape (up to
    about a second each on a CPU), so call this before a real-time stream starts."""
    info = self.info
    count = -(-(info.past_context + info.latency + info.block_multiple) // block_samples) + 3
    silence = np.zeros([block_samples, self.channels], np.float32)
    for _ in range(count):
      self.process(silence)
    self.reset()

  def process(self, block: np.ndarray) -> np.ndarray:
    """``block [n]`` (mono) or ``[n, channels]`` -> output of the same shape."""
    block = np.asarray(block, np.float32)
    rows = block[None, :] if block.ndim == 1 else block.T
    if rows.shape[0] != self.channels:
      raise ValueError(f'expected {self.channels} channels, got block shape {block.shape}')
    self._history = np.concatenate([self._history, rows], axis=1)
    self._received += rows.shape[1]
    self._compute(self._received - self.latency)
    out = self._pop(rows.shape[1])
    return out[0] if block.ndim == 1 else out.T

  def flush(self) -> np.ndarray:
    """Ends the stream: the remaining ``latency`` output samples, ``[latency, channels]``."""
    self._compute(self._received)
    out = self._pop(self._pending.shape[1])
    return out.T

  def _compute(self, ready: int) -> None:
    if ready <= self._computed:
      return
    m = self.info.block_multiple
    start = max(0, (self._computed - self.info.past_context) // m * m)
    segment = self._history[:, start - self._history_start:]   # up to the newest input
    wet = self.model.predict(segment)
    kept = wet[:, self._computed - start:ready - start]
    self._pending = np.concatenate([self._pending, kept], axis=1)
    self._computed = ready
    keep_from = max(0, (ready - self.info.past_context) // m * m)
    self._history = self._history[:, keep_from - self._history_start:]
    self._history_start = keep_from

  def _pop(self, count: int) -> np.ndarray:
    out, self._pending = self._pending[:, :count], self._pending[:, count:]
    return out


# --- Files -------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ApplyResult:
  """What :func:`apply_file` did."""
  in_path: str
  out_path: str
  frames: int
  channels: int
  sample_rate: int          # Hz
  subtype: str
  blocks: int
  model_version: str


def block_samples_for(model, block_seconds: Optional[float], channels: int) -> Optional[int]:
  """Output samples per model call: ``block_seconds`` of audio, limited by the model's
  per-request size (REST) after the context; None = whole file."""
  info = model.info
  block = None if not block_seconds else max(1, int(round(block_seconds * info.sample_rate)))
  limit = getattr(model, 'max_request_samples', None)
  if limit:
    fit = limit // max(1, channels) - info.past_context - info.latency - info.block_multiple
    fit = max(info.block_multiple, fit)
    block = fit if block is None else min(block, fit)
  return block


def apply_file(model, in_path: str, out_path: str, subtype: Optional[str] = None,
               block_seconds: Optional[float] = DEFAULT_BLOCK_SECONDS, progress: bool = True,
               model_info: Optional[str] = None) -> ApplyResult:
  """Runs a model over a WAV file and writes the wet file (atomically).

  Args:
    model: a model directory / endpoint URL (see the module docstring), or a model
      object from :func:`open_model` (reused, not reloaded).
    in_path: input WAV: mono or multichannel, 8/16/24/32-bit PCM or 32-bit float, at the
      model's sample rate.
    out_path: output WAV (same channels and rate).
    subtype: output format (``components.audio.wav.SUBTYPES``); None = the input's.
    block_seconds: audio per model call; None or 0 = the whole file in one call.
    progress: progress bar on stderr (when a terminal) for files of more than one block.
    model_info: for endpoints that do not report it, the model's fxemu.json or directory.
  Raises:
    AudioFileError: unreadable input, unwritable output, sample-rate mismatch.
    ModelError: the model cannot be loaded or reached, or it produced NaN/inf.
  """
  if subtype is not None and subtype not in wav.SUBTYPES:
    raise ValueError(f'unknown subtype {subtype!r}; choose from {sorted(wav.SUBTYPES)}')
  if isinstance(model, str):
    model = open_model(model, model_info)
  audio, info = wav.read_wav(in_path)
  if info.sample_rate != model.info.sample_rate:
    raise wav.AudioFileError(in_path, f'sample rate is {info.sample_rate} Hz but the model '
                             f'({model.info.source}) expects {model.info.sample_rate} Hz; '
                             'resample the file first')
  block = block_samples_for(model, block_seconds, info.channels)
  wet = process(model, audio, block, progress=progress, desc=os.path.basename(in_path))
  blocks = len(plan_blocks(info.num_frames, block or info.num_frames, model.info))
  return write_result(model, in_path, out_path, wet, info, subtype, blocks)


def write_result(model, in_path: str, out_path: str, wet: np.ndarray, info, subtype,
                 blocks: int) -> ApplyResult:
  """Checks the model's output ``wet [frames, channels]`` (finite), writes it atomically to
  ``out_path`` in ``subtype`` (default: the input's, ``info``) and says what was done."""
  if not np.all(np.isfinite(wet)):
    raise ModelError(f'{model.info.source}: the model produced NaN or infinite samples '
                     f'for {in_path}')
  subtype = subtype or info.subtype
  try:
    wav.write_wav(out_path, wet, info.sample_rate, subtype)
  except OSError as e:
    raise wav.AudioFileError(out_path, f'cannot be written ({e})') from e
  return ApplyResult(in_path, out_path, info.num_frames, info.channels, info.sample_rate,
                     subtype, blocks, model.info.version)
