"""``fxemu serve MODEL_BASE``: TF Serving's REST API for an fxemu model, in the standard library.

Routes (NAME is the model name, by default the base directory's name; V a version)::

    GET  /v1/models/NAME[/versions/V]            model status
    GET  /v1/models/NAME[/versions/V]/metadata   signature defs (+ ``metadata.fxemu``)
    POST /v1/models/NAME[/versions/V]:predict    {"instances": [[...], ...]} -> predictions
                                                 {"inputs": [[...]] | {"audio": ...}} -> outputs

Rows are ``audio [batch, samples]`` float32 (one row per channel); the answer has the
same shape. A row may also be ``{"b64": "<base64 of its little-endian float32 bytes>"}``
(TF Serving's binary-value encoding, used here for float rows: an fxemu extension, about
30x cheaper to encode and parse than JSON numbers); the answer then has binary rows too. Errors are ``{"error": "..."}`` with 400 (bad input), 404 (unknown
model, version or path), 405 (method), 411/413 (no length / body over the limit) or 500.
A watcher thread polls the base directory and switches to the newest complete version
(``saved_model.pb`` and ``variables/``); a version that fails to load is skipped
(until its files change) and the serving version stays. ``metadata.fxemu`` carries
``assets/fxemu.json`` so ``fxemu apply`` can process files block-wise through the server.
"""
from __future__ import annotations

import base64
import binascii
import http.server
import json
import logging
import os
import re
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from components.audio import model_versions
from pipeline.inference import apply
from schema import contract

log = logging.getLogger('fxemu.serve')

DEFAULT_PORT = 8501
DEFAULT_MAX_REQUEST_BYTES = 16 << 20
DEFAULT_POLL_SECONDS = 1.0
_ROUTE = re.compile(r'^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?'
                    r'(?P<tail>/metadata|:predict|:[A-Za-z]+)?/?$')


class HttpError(Exception):
  """An error answer: HTTP ``status`` and the ``{"error": message}`` body."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status, self.message = status, message


# --- Versions ------------------------------------------------------------------------------

def _fingerprint(version_dir: str) -> Tuple:
  """(path, size, mtime) of every file: changes while a version is still being written."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  entries = []
  for folder, _, files in tf.io.gfile.walk(version_dir):
    for name in files:
      path = os.path.join(folder, name)
      try:
        stat = tf.io.gfile.stat(path)
        entries.append((path, stat.length, stat.mtime_nsec))
      except Exception:  # pylint: disable=broad-except
        entries.append((path, -1, -1))
  return tuple(sorted(entries))


class ModelWatcher:
  """Serves the newest complete version of a model base directory.

  :meth:`poll` loads a newer (or, after a rollback, the newest remaining) version and
  swaps it in atomically; in-flight requests finish on the model they started with.
  """

  def __init__(self, base_dir: str, poll_seconds: float = DEFAULT_POLL_SECONDS, loader=None):
    self.base_dir, self.poll_seconds = base_dir, poll_seconds
    self._loader = loader or apply.LocalModel
    self._current = None                   # LocalModel being served
    self._failures: Dict[int, Tuple[Tuple, str]] = {}   # version -> (fingerprint, error)
    self._lock = threading.Lock()
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  @property
  def current(self):
    return self._current

  def poll(self) -> bool:
    """Looks at the base directory once; returns True when the served version changed."""
    with self._lock:
      serving = int(self._current.version) if self._current is not None else None
      for version, path in model_versions.versions(self.base_dir):
        if version == serving:
          return False
        fingerprint = _fingerprint(path)
        failed = self._failures.get(version)
        if failed and failed[0] == fingerprint:
          continue                         # same files that failed before
        try:
          model = self._loader(path)
          model.predict(np.zeros([1, 4 * model.info.block_multiple], np.float32))  # warm up
        except Exception as e:  # pylint: disable=broad-except
          self._failures[version] = (fingerprint, str(e)[:1000])
          log.warning('version %d of %s failed to load (still serving %s): %s', version,
                      self.base_dir, serving, e)
          continue
        self._failures.pop(version, None)
        self._current = model
        log.info('serving version %d from %s', version, path)
        return True
      return False

  def statuses(self) -> List[Dict[str, Any]]:
    """TF Serving's ``model_version_status`` entries, newest first."""
    entries = {}
    for version, (_, error) in list(self._failures.items()):   # a copy: poll() may change it
      entries[version] = {'version': str(version), 'state': 'END',
                          'status': {'error_code': 'UNKNOWN', 'error_message': error}}
    current = self._current
    if current is not None:
      entries[int(current.version)] = {'version': current.version, 'state': 'AVAILABLE',
                                       'status': {'error_code': 'OK', 'error_message': ''}}
    return [entries[v] for v in sorted(entries, reverse=True)]

  def start(self) -> None:
    """Polls every ``poll_seconds`` in a daemon thread until :meth:`stop`."""
    def loop():
      while not self._stop.wait(self.poll_seconds):
        try:
          self.poll()
        except Exception:  # pylint: disable=broad-except
          log.exception('polling %s failed', self.base_dir)
    self._thread = threading.Thread(target=loop, name='fxemu-model-watcher', daemon=True)
    self._thread.start()

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=30)


# --- Request and response bodies -----------------------------------------------------------

def _as_audio(value: Any, where: str) -> np.ndarray:
  """A JSON value -> float32 ``[batch, samples]``; HttpError(400) on any problem."""
  try:
    array = np.asarray(value)
  except (ValueError, TypeError) as e:
    raise HttpError(400, f'{where}: rows must all have the same length '
                    f'(ragged or nested input: {e})') from e
  if array.dtype.kind not in 'iuf':
    raise HttpError(400, f'{where}: expected numbers (DT_FLOAT), got '
                    f'{"booleans" if array.dtype.kind == "b" else "non-numeric values"}')
  if array.ndim != 2:
    raise HttpError(400, f'{where}: expected shape [batch, samples], got {list(array.shape)}')
  if array.shape[0] == 0 or array.shape[1] == 0:
    raise HttpError(400, f'{where}: empty input {list(array.shape)}')
  with np.errstate(over='ignore'):
    audio = array.astype(np.float32)
  if not np.all(np.isfinite(audio)):
    raise HttpError(400, f'{where}: NaN, infinite or out-of-range (float32) values')
  return audio


def _b64_row(value: Dict[str, Any], where: str) -> np.ndarray:
  """``{"b64": base64 of little-endian float32}`` -> float32 ``[samples]``."""
  text = value.get('b64')
  if set(value) != {'b64'} or not isinstance(text, str):
    raise HttpError(400, f'{where}: a binary row must be {{"b64": "<base64 of little-endian '
                    f'float32 samples>"}}, got keys {sorted(value)}')
  try:
    raw = base64.b64decode(text, validate=True)
  except (binascii.Error, ValueError) as e:
    raise HttpError(400, f'{where}: "b64" is not valid base64 ({e})') from e
  if not raw or len(raw) % 4:
    raise HttpError(400, f'{where}: "b64" must hold little-endian float32 samples (4 bytes '
                    f'each); got {len(raw)} bytes')
  return np.frombuffer(raw, '<f4').astype(np.float32)


def _rows(value: Any, where: str) -> Tuple[np.ndarray, bool]:
  """Rows as JSON numbers or ``{"b64": ...}`` objects -> (audio, binary?)."""
  if isinstance(value, dict):           # one binary row: batch of 1
    return _as_audio(_b64_row(value, where)[None, :], where), True
  if isinstance(value, list) and any(isinstance(row, dict) for row in value):
    rows = []
    for i, row in enumerate(value):
      if not isinstance(row, dict):
        raise HttpError(400, f'{where}: mix of binary ({{"b64": ...}}) and JSON rows; use one')
      rows.append(_b64_row(row, f'{where}[{i}]'))
    if len({r.size for r in rows}) != 1:
      raise HttpError(400, f'{where}: rows must all have the same length, got '
                      f'{sorted({r.size for r in rows})} samples')
    return _as_audio(np.stack(rows), where), True
  return _as_audio(value, where), False


def parse_predict(body: bytes) -> Tuple[np.ndarray, bool, bool]:
  """A predict body -> (audio ``[batch, samples]`` float32, columnar format?, binary rows?).

  Rows are JSON numbers (TF Serving's format) or, as an fxemu extension for speed,
  ``{"b64": "<base64 of the row's little-endian float32 bytes>"}`` (TF Serving's binary
  value encoding, applied to float rows); answers to binary requests carry binary rows.
  """
  try:
    request = json.loads(body)
  except RecursionError as e:
    raise HttpError(400, 'JSON Parse error: the body nests arrays or objects too deeply '
                    '(expected [batch, samples])') from e
  except (ValueError, UnicodeDecodeError) as e:
    raise HttpError(400, f'JSON Parse error: {e}') from e
  try:
    return _parse_request(request)
  except RecursionError as e:
    raise HttpError(400, 'the input nests lists too deeply (expected [batch, samples])') from e


def _parse_request(request: Any) -> Tuple[np.ndarray, bool, bool]:
  if not isinstance(request, dict):
    raise HttpError(400, 'the request must be a JSON object with "instances" or "inputs"')
  signature = request.get('signature_name') or contract.SERVING_SIGNATURE
  if signature != contract.SERVING_SIGNATURE:
    raise HttpError(400, f'Serving signature name: "{signature}" not found in signature def '
                    f'(this server runs "{contract.SERVING_SIGNATURE}")')
  if ('instances' in request) == ('inputs' in request):
    raise HttpError(400, 'the request needs exactly one of "instances" (row format) and '
                    '"inputs" (columnar format)')
  if 'instances' in request:
    instances = request['instances']
    if not isinstance(instances, list) or not instances:
      raise HttpError(400, '"instances" must be a non-empty list of rows')
    if all(isinstance(row, dict) for row in instances) and not any(
        set(row) == {'b64'} for row in instances):
      if any(set(row) != {contract.AUDIO_INPUT} for row in instances):
        raise HttpError(400, f'each named instance must have exactly the input '
                        f'"{contract.AUDIO_INPUT}"')
      instances = [row[contract.AUDIO_INPUT] for row in instances]
    audio, binary = _rows(instances, 'instances')
    return audio, False, binary
  inputs = request['inputs']
  if isinstance(inputs, dict) and set(inputs) != {'b64'}:
    if set(inputs) != {contract.AUDIO_INPUT}:
      raise HttpError(400, f'"inputs" must have exactly the input "{contract.AUDIO_INPUT}", '
                      f'got {sorted(inputs)}')
    inputs = inputs[contract.AUDIO_INPUT]
  audio, binary = _rows(inputs, 'inputs')
  return audio, True, binary


def parse_predict_request(body: bytes) -> Tuple[np.ndarray, bool]:
  """A predict body -> (audio ``[batch, samples]`` float32, columnar format?)."""
  audio, columnar, _ = parse_predict(body)
  return audio, columnar


def b64_rows(rows: np.ndarray) -> str:
  """``[batch, samples]`` as a JSON list of ``{"b64": ...}`` rows (little-endian float32)."""
  rows = np.asarray(rows, '<f4')
  return '[' + ','.join('{"b64":"%s"}' % base64.b64encode(row.tobytes()).decode('ascii')
                        for row in rows) + ']'


def decode_b64_rows(rows: List[Dict[str, str]]) -> np.ndarray:
  """The inverse of :func:`b64_rows` (for clients): ``[batch, samples]`` float32."""
  return np.stack([np.frombuffer(base64.b64decode(r['b64']), '<f4') for r in rows])


def predict_response(wet: np.ndarray, columnar: bool, binary: bool = False) -> bytes:
  key = 'outputs' if columnar else 'predictions'
  return ('{"%s":%s}' % (key, b64_rows(wet) if binary else apply.format_rows(wet))).encode()


def metadata_response(name: str, model) -> Dict[str, Any]:
  """TF Serving's GetModelMetadata JSON, plus ``metadata.fxemu`` (the fxemu.json)."""
  fxemu = {k: v for k, v in model.metadata.items() if k != 'train_config'}
  return {'model_spec': {'name': name, 'signature_name': '', 'version': model.version},
          'metadata': {'signature_def': {'signature_def': model.signature_defs()},
                       'fxemu': fxemu}}


# --- HTTP ----------------------------------------------------------------------------------

class FxemuHTTPServer(http.server.ThreadingHTTPServer):
  """A ThreadingHTTPServer holding the model watcher and the limits."""
  daemon_threads = True

  def __init__(self, address, watcher: ModelWatcher, model_name: str, max_request_bytes: int,
               max_concurrent: int):
    super().__init__(address, _Handler)
    self.watcher, self.model_name = watcher, model_name
    self.max_request_bytes = max_request_bytes
    self.predict_slots = threading.BoundedSemaphore(max_concurrent)

  @property
  def url(self) -> str:
    """``http://host:port/v1/models/NAME``."""
    host, port = self.server_address[:2]
    return f'http://{host}:{port}/v1/models/{self.model_name}'

  def server_close(self) -> None:
    self.watcher.stop()
    super().server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = 'HTTP/1.1'   # keep-alive: every answer has a Content-Length
  server_version = 'fxemu-serve'
  timeout = 60                    # seconds a client may stall mid-request

  def do_GET(self):  # pylint: disable=invalid-name
    self._answer('GET')

  def do_POST(self):  # pylint: disable=invalid-name
    self._answer('POST')

  def do_PUT(self):  # pylint: disable=invalid-name
    self._answer('PUT')

  def do_DELETE(self):  # pylint: disable=invalid-name
    self._answer('DELETE')

  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    log.debug('%s %s', self.address_string(), format % args)

  def _answer(self, method: str) -> None:
    try:
      body = self._read_body()   # also for GET: a stray body would desync keep-alive
      status, payload = 200, self._route(method, body)
    except HttpError as e:
      status, payload = e.status, json.dumps({'error': e.message}).encode()
    except Exception as e:  # pylint: disable=broad-except
      log.exception('internal error on %s %s', method, self.path)
      status, payload = 500, json.dumps({'error': f'internal error: {e}'}).encode()
    try:
      self.send_response(status)
      self.send_header('Content-Type', 'application/json')
      self.send_header('Content-Length', str(len(payload)))
      if self.close_connection:
        self.send_header('Connection', 'close')
      self.end_headers()
      self.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
      self.close_connection = True

  def _read_body(self) -> bytes:
    limit = self.server.max_request_bytes
    if 'chunked' in self.headers.get('Transfer-Encoding', '').lower():
      self.close_connection = True
      raise HttpError(411, 'chunked request bodies are not supported; send Content-Length')
    try:
      length = int(self.headers.get('Content-Length', '0'))
    except ValueError as e:
      self.close_connection = True
      raise HttpError(400, 'bad Content-Length header') from e
    if length < 0:
      self.close_connection = True
      raise HttpError(400, 'bad Content-Length header')
    if length > limit:
      if length <= 4 * limit:   # read and drop it, so the client sees the answer
        remaining = length
        while remaining > 0:
          chunk = self.rfile.read(min(remaining, 1 << 20))
          if not chunk:
            break
          remaining -= len(chunk)
      self.close_connection = True
      raise HttpError(413, f'request body of {length} bytes exceeds the limit of {limit} bytes')
    body = self.rfile.read(length)
    if len(body) < length:
      self.close_connection = True
      raise HttpError(400, f'request body ended after {len(body)} of {length} bytes')
    return body

  def _route(self, method: str, body: bytes) -> bytes:
    path = self.path.split('?', 1)[0]
    match = _ROUTE.match(path)
    if not match:
      raise HttpError(404, f'Malformed request: {method} {path}')
    name, version, tail = match.group('name'), match.group('version'), match.group('tail')
    model = self._model(name, version)
    if tail in (None, ''):
      self._require(method, 'GET')
      statuses = self.server.watcher.statuses()
      if version is not None:
        statuses = [s for s in statuses if s['version'] == version]
      return json.dumps({'model_version_status': statuses}).encode()
    if tail == '/metadata':
      self._require(method, 'GET')
      return json.dumps(metadata_response(name, model)).encode()
    if tail == ':predict':
      self._require(method, 'POST')
      audio, columnar, binary = parse_predict(body)
      with self.server.predict_slots:
        wet = model.predict(audio)
      return predict_response(wet, columnar, binary)
    raise HttpError(404, f'Malformed request: {method} {path} (only :predict is supported)')

  def _model(self, name: str, version: Optional[str]):
    model = self.server.watcher.current
    if name != self.server.model_name or model is None:
      raise HttpError(404, f'Servable not found for request: Latest({name})')
    if version is not None and version != model.version:
      raise HttpError(404, f'Servable not found for request: Specific({name}, {version})')
    return model

  @staticmethod
  def _require(method: str, expected: str) -> None:
    if method != expected:
      raise HttpError(405, f'method {method} not allowed here (use {expected})')


def make_server(model_base: str, port: int = DEFAULT_PORT, host: str = '127.0.0.1',
                model_name: Optional[str] = None,
                max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                poll_seconds: float = DEFAULT_POLL_SECONDS,
                max_concurrent: int = 4) -> FxemuHTTPServer:
  """A server for ``model_base`` with the newest version loaded and the watcher running.

  Call ``serve_forever()`` (e.g. in a thread), then ``shutdown()`` and ``server_close()``.
  ``port=0`` picks a free port (see ``server.server_address`` / ``server.url``).
  """
  model_name = model_name or os.path.basename(os.path.normpath(model_base))
  watcher = ModelWatcher(model_base, poll_seconds)
  watcher.poll()
  server = FxemuHTTPServer((host, port), watcher, model_name, max_request_bytes, max_concurrent)
  watcher.start()
  return server


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
  """Polls ``predicate()`` until it is true or ``timeout`` seconds pass; returns it."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(interval)
  return bool(predicate())

