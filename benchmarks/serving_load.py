"""Serving under load: latency and throughput of ``fxemu serve`` against the model in-process.

    python benchmarks/serving_load.py [--model BASE] [--requests 120] [--concurrency 4]
                                      [--mix-bad] [--in-process-server] [--json]

Starts ``fxemu serve`` on 127.0.0.1 (a subprocess, ``python -m pipeline.cli.serve_command``, unless
``--in-process-server``) on the model base directory (default: a default-config conv
model exported to a temporary directory), then sends ``--requests`` predict requests of
``--seconds`` of mono audio each from ``--concurrency`` client threads (bounded also by
``--max-seconds``) and reports p50/p99 latency and requests/s. The same load pattern is
run against the SavedModel in this process (``LocalModel.predict``) as the reference; the
ratio column is served / in-process (goal: p50 <= 1.5x). Every answer is checked against
the reference output. The client runs on the same CPUs as the server. The load runs once
per ``--encodings``: ``json`` (TF Serving's JSON numbers) and ``b64`` (rows as
``{"b64": base64 of little-endian float32}``, answered the same way), and a breakdown
shows where the served p50 goes: client and server encoding/decoding (timed alone in
this process), the model, and the rest (HTTP, the server's threads, queueing).

``--mix-bad`` replaces ``--bad-fraction`` of the requests with malformed ones (bad JSON,
wrong shape, wrong dtype, oversized) and reports that every good request got a correct
answer, every bad one a 4xx, and that the server is alive at the end; the exit status is
1 otherwise. ``--json`` makes the last stdout line one JSON object of the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks import common  # noqa: E402
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
import requests  # pylint: disable=g-import-not-at-top

from benchmarks.apply_speed import export_default_model  # pylint: disable=g-import-not-at-top
from pipeline.inference import apply  # pylint: disable=g-import-not-at-top

BAD_KINDS = ('bad_json', 'wrong_shape', 'wrong_dtype', 'oversized')


# --- Load generation -------------------------------------------------------------------------

def run_load(call: Callable[[int], Tuple[bool, str]], count: int, concurrency: int,
             max_seconds: float) -> Dict[str, object]:
  """Calls ``call(i)`` for i < count from ``concurrency`` threads, until done or out of time.

  ``call`` returns (ok, kind); latencies are kept per kind. Returns wall time, results.
  """
  lock, next_index = threading.Lock(), [0]
  results: List[Tuple[int, str, bool, float]] = []
  deadline = time.monotonic() + max_seconds

  def worker():
    while time.monotonic() < deadline:
      with lock:
        i = next_index[0]
        if i >= count:
          return
        next_index[0] += 1
      start = time.perf_counter()
      try:
        ok, kind = call(i)
      except Exception as e:  # pylint: disable=broad-except
        ok, kind = False, f'exception: {type(e).__name__}'
      elapsed = time.perf_counter() - start
      with lock:
        results.append((i, kind, ok, elapsed))

  start = time.perf_counter()
  threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
  for t in threads:
    t.start()
  for t in threads:
    t.join(max_seconds + 120)
  return {'wall': time.perf_counter() - start, 'results': results}


def summarize(load: Dict[str, object], kind: str = 'good') -> Dict[str, float]:
  """p50/p99 ms and requests/s of one kind of request (completions over the run's wall time)."""
  ms = np.asarray([1000 * r[3] for r in load['results'] if r[1] == kind])
  if ms.size == 0:
    return {'p50_ms': float('nan'), 'p99_ms': float('nan'), 'rps': 0.0, 'count': 0}
  return {'p50_ms': float(np.percentile(ms, 50)), 'p99_ms': float(np.percentile(ms, 99)),
          'rps': ms.size / load['wall'], 'count': int(ms.size)}


# --- Requests --------------------------------------------------------------------------------

def bad_bodies(samples: int, max_request_bytes: int) -> Dict[str, bytes]:
  """One malformed predict body of each kind."""
  row = ','.join(['0.1'] * samples)
  return {
      'bad_json': ('{"instances": [[' + row).encode(),                  # truncated
      'wrong_shape': ('{"instances": [' + row + ']}').encode(),         # [samples], not 2-D
      'wrong_dtype': ('{"instances": [["' + row.replace(',', '","') + '"]]}').encode(),
      'oversized': b'{"instances": [[' + b'0.1,' * (max_request_bytes // 4 + 1000) + b'0]]}',
  }


class ServerProcess:
  """``python -m pipeline.cli.serve_command`` on 127.0.0.1, port chosen by the OS; stopped by
  :meth:`stop`."""

  def __init__(self, base: str, max_request_mb: float, timeout: float = 120.0):
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'pipeline.cli.serve_command', base, '--port', '0',
         '--host', '127.0.0.1', '--max-request-mb', str(max_request_mb)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    line = ''
    while time.monotonic() < deadline and self.proc.poll() is None:
      ready, _, _ = select.select([self.proc.stdout], [], [], 1.0)
      if ready:
        line = self.proc.stdout.readline()
        if ' at http://' in line:
          break
    if ' at http://' not in line:
      self.stop()
      raise RuntimeError(f'the server did not start: {line!r}')
    self.url = line.rsplit(' at ', 1)[1].strip()

  def stop(self) -> None:
    if self.proc.poll() is None:
      self.proc.terminate()               # SIGTERM: fxemu serve shuts down cleanly
      try:
        self.proc.wait(20)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait(10)


class InProcessServer:
  """``pipeline.inference.serve.make_server`` in a thread of this process."""

  def __init__(self, base: str, max_request_mb: float):
    from pipeline.inference import serve  # pylint: disable=g-import-not-at-top
    self.server = serve.make_server(base, port=0, max_request_bytes=int(max_request_mb * 2**20))
    self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
    self.thread.start()
    self.url = self.server.url

  def stop(self) -> None:
    self.server.shutdown()
    self.server.server_close()


# --- Encodings and where the time goes ----------------------------------------------------------

#: Goal: served p50 at most this many times the in-process p50 (issue 15).
P50_GOAL_RATIO = 1.5
ENCODINGS = ('json', 'b64')


def encode_request(rows: np.ndarray, encoding: str) -> bytes:
  """A predict body: JSON numbers (TF Serving's format) or ``{"b64": ...}`` float32 rows."""
  from pipeline.inference import serve  # pylint: disable=g-import-not-at-top
  if encoding == 'b64':
    return ('{"instances":%s}' % serve.b64_rows(rows)).encode()
  return ('{"instances":%s}' % apply.format_rows(rows)).encode()


def decode_response(content: bytes, encoding: str) -> np.ndarray:
  """The client's work on an answer: parse it and make the float32 array."""
  from pipeline.inference import serve  # pylint: disable=g-import-not-at-top
  predictions = json.loads(content)['predictions']
  if encoding == 'b64':
    return serve.decode_b64_rows(predictions)
  return np.asarray(predictions, np.float32)


def codec_breakdown(model, rows: np.ndarray, encoding: str, repeats: int = 7) -> Dict[str, float]:
  """Median ms of each in-process stage of one request, run alone: the client encodes
  the body, the server parses it (:func:`pipeline.inference.serve.parse_predict`), the model runs,
  the server writes the answer, the client parses it. What the served p50 adds beyond
  the in-process p50 and these codec stages is HTTP, the server's threads and queueing."""
  from pipeline.inference import serve  # pylint: disable=g-import-not-at-top
  stages = {
      'client_encode': lambda: encode_request(rows, encoding),
      'server_decode': lambda: serve.parse_predict(body),
      'model': lambda: model.predict(rows),
      'server_encode': lambda: serve.predict_response(wet, False, encoding == 'b64'),
      'client_decode': lambda: decode_response(answer, encoding),
  }
  body = encode_request(rows, encoding)
  wet = model.predict(rows)
  answer = serve.predict_response(wet, False, encoding == 'b64')
  out = {}
  for name, stage in stages.items():
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      stage()
      times.append(time.perf_counter() - start)
    out[name] = 1000.0 * float(np.median(times))
  return out


# --- Benchmark ---------------------------------------------------------------------------------

def benchmark(args, base: str) -> Dict[str, object]:
  model = apply.LocalModel(base)
  rate = model.info.sample_rate
  samples = int(round(args.seconds * rate))
  rng = np.random.default_rng(0)
  signals = [(0.3 * rng.standard_normal([1, samples])).astype(np.float32) for _ in range(4)]
  expected = [model.predict(s) for s in signals]              # also warms the model up
  encodings = [e.strip() for e in args.encodings.split(',') if e.strip()]
  all_bodies = {encoding: [encode_request(s, encoding) for s in signals]
                for encoding in encodings}
  bad = bad_bodies(samples, int(args.max_request_mb * 2**20)) if args.mix_bad else {}
  bad_every = int(round(1.0 / args.bad_fraction)) if args.mix_bad else 0

  def kind_of(i: int) -> str:
    if bad_every and i % bad_every == bad_every - 1:
      return BAD_KINDS[(i // bad_every) % len(BAD_KINDS)]
    return 'good'

  # Reference: the same load pattern calling the SavedModel in this process.
  def local_call(i):
    wet = model.predict(signals[i % 4])
    return bool(np.allclose(wet, expected[i % 4], atol=1e-5)), 'good'
  count = args.requests
  good_count = sum(kind_of(i) == 'good' for i in range(count))
  reference = summarize(run_load(local_call, good_count, args.concurrency, args.max_seconds))

  server = (InProcessServer if args.in_process_server else ServerProcess)(
      base, args.max_request_mb)
  sessions = threading.local()
  loads = {}
  try:
    def served_call(i, encoding):
      session = getattr(sessions, 'session', None) or requests.Session()
      sessions.session = session
      kind = kind_of(i)
      body = all_bodies[encoding][i % 4] if kind == 'good' else bad[kind]
      try:
        answer = session.post(server.url + ':predict', data=body, timeout=120,
                              headers={'Content-Type': 'application/json'})
      except requests.ConnectionError:
        sessions.session = None
        return False, kind
      if kind != 'good':
        return 400 <= answer.status_code < 500 and 'error' in answer.json(), kind
      if answer.status_code != 200:
        return False, kind
      wet = decode_response(answer.content, encoding)
      return bool(wet.shape == expected[i % 4].shape and
                  np.allclose(wet, expected[i % 4], atol=1e-5)), kind

    for encoding in encodings:
      served_call(0, encoding)                                # one warm-up request each
      loads[encoding] = run_load(lambda i, e=encoding: served_call(i, e), count,
                                 args.concurrency, args.max_seconds)
    alive = requests.get(server.url, timeout=30).status_code == 200 and all(
        served_call(0, e)[0] for e in encodings)
    sequential = {}   # one request at a time: no queueing, for the breakdown
    for encoding in encodings:
      times = []
      for _ in range(args.breakdown_requests):
        start = time.perf_counter()
        served_call(0, encoding)
        times.append(time.perf_counter() - start)
      sequential[encoding] = 1000.0 * float(np.median(times))
  finally:
    server.stop()
  load = loads[encodings[0]]
  served = summarize(load)
  breakdown = {e: codec_breakdown(model, signals[0], e) for e in encodings}

  results = [r for e in encodings for r in loads[e]['results']]
  checks = {'sent': len(results), 'planned': count * len(encodings),
            'good_total': sum(r[1] == 'good' for r in results),
            'good_correct': sum(r[1] == 'good' and r[2] for r in results),
            'bad_total': sum(r[1] != 'good' for r in results),
            'bad_4xx': sum(r[1] != 'good' and r[2] for r in results),
            'bad_by_kind': {k: [sum(r[1] == k and r[2] for r in results),
                                sum(r[1] == k for r in results)] for k in bad},
            'server_alive': bool(alive)}
  checks['all_ok'] = bool(checks['good_correct'] == checks['good_total'] and
                          checks['bad_4xx'] == checks['bad_total'] and alive)
  figures = {
      'served_p50_ms': served['p50_ms'], 'served_p99_ms': served['p99_ms'],
      'served_rps': served['rps'], 'served_all_rps': len(load['results']) / load['wall'],
      'inprocess_p50_ms': reference['p50_ms'],
      'inprocess_p99_ms': reference['p99_ms'], 'inprocess_rps': reference['rps'],
      'ratio_p50': served['p50_ms'] / reference['p50_ms'],
      'ratio_p99': served['p99_ms'] / reference['p99_ms'],
      'ratio_rps': served['rps'] / reference['rps'],
  }
  if bad:
    for kind in bad:
      figures[f'{kind}_p50_ms'] = summarize(load, kind)['p50_ms']
  for encoding in encodings:   # json_served_p50_ms, b64_ratio_p50, b64_breakdown_ms, ...
    row = summarize(loads[encoding])
    figures[f'{encoding}_served_p50_ms'] = row['p50_ms']
    figures[f'{encoding}_served_p99_ms'] = row['p99_ms']
    figures[f'{encoding}_served_rps'] = row['rps']
    figures[f'{encoding}_ratio_p50'] = row['p50_ms'] / reference['p50_ms']
    figures[f'{encoding}_ratio_p99'] = row['p99_ms'] / reference['p99_ms']
    parts = dict(breakdown[encoding])
    parts['served_one_at_a_time'] = sequential[encoding]
    parts['http_and_threads'] = sequential[encoding] - sum(
        parts[k] for k in ('server_decode', 'model', 'server_encode', 'client_decode'))
    figures[f'{encoding}_breakdown_ms'] = parts
  figures['encodings'] = encodings
  figures['p50_goal_ratio'] = P50_GOAL_RATIO
  figures['p50_goal_met'] = {e: figures[f'{e}_ratio_p50'] <= P50_GOAL_RATIO for e in encodings}
  return {'benchmark': 'serving_load', 'model': model.info.model, 'sample_rate': rate,
          'seconds_per_request': args.seconds, 'concurrency': args.concurrency,
          'server': 'in-process' if args.in_process_server else 'subprocess',
          'mix_bad': bool(args.mix_bad), 'cpus': os.cpu_count(),
          'intra_op_threads': args.intra_op_threads,
          'load_average': os.getloadavg()[0], **figures, **checks}


def print_report(r: Dict[str, object]) -> None:
  print(f'\nfxemu serve ({r["server"]}, 127.0.0.1), {r["model"]} model, '
        f'{r["seconds_per_request"]:g} s of audio per request, {r["concurrency"]} clients, '
        f'{r["sent"]} requests:')
  print(f'{"":26s} {"p50 ms":>9s} {"p99 ms":>9s} {"req/s":>8s} {"p50 ratio":>10s}')
  for e in r['encodings']:
    label = 'served (REST, JSON)' if e == 'json' else 'served (REST, b64 rows)'
    print(f'{label:26s} {r[e + "_served_p50_ms"]:9.1f} {r[e + "_served_p99_ms"]:9.1f} '
          f'{r[e + "_served_rps"]:8.1f} {r[e + "_ratio_p50"]:9.2f}x  (goal <= '
          f'{r["p50_goal_ratio"]:g}x: {"met" if r["p50_goal_met"][e] else "NOT met"})')
  print(f'{"in-process SavedModel":26s} {r["inprocess_p50_ms"]:9.1f} '
        f'{r["inprocess_p99_ms"]:9.1f} {r["inprocess_rps"]:8.1f}')
  print('\nwhere the time of one request goes, ms (one request at a time; the stages timed '
        'alone in this process; HTTP+threads = served - the four stages; the client\'s '
        'encoding is done before the load starts, so it is not in the served times):')
  names = ['served_one_at_a_time', 'server_decode', 'model', 'server_encode', 'client_decode',
           'http_and_threads', 'client_encode']
  print(f'{"":10s} ' + ' '.join(f'{n:>13s}' for n in
                                 ['served', 'server dec', 'model', 'server enc',
                                  'client dec', 'HTTP+threads', '(client enc)']))
  for e in r['encodings']:
    parts = r[e + '_breakdown_ms']
    print(f'{e:10s} ' + ' '.join(f'{parts[n]:13.2f}' for n in names))
  print(f'good requests answered correctly: {r["good_correct"]}/{r["good_total"]}')
  if r['mix_bad']:
    print(f'bad requests answered 4xx:       {r["bad_4xx"]}/{r["bad_total"]}  ' +
          ', '.join(f'{k} {v[0]}/{v[1]}' for k, v in r['bad_by_kind'].items()))
  print(f'server alive at the end: {r["server_alive"]}   all checks passed: {r["all_ok"]}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', default=None, metavar='BASE',
                      help='model base directory (default: export a default-config conv model '
                      'to a temporary directory)')
  parser.add_argument('--requests', type=int, default=120, help='requests to send (default: 120)')
  parser.add_argument('--concurrency', type=int, default=4, help='client threads (default: 4)')
  parser.add_argument('--seconds', type=float, default=1.0,
                      help='audio per request, s (default: 1)')
  parser.add_argument('--max-seconds', type=float, default=20.0,
                      help='stop sending after this long, per run, s (default: 20)')
  parser.add_argument('--mix-bad', action='store_true',
                      help='mix malformed requests in (bad JSON, wrong shape, wrong dtype, '
                      'oversized) and check the answers')
  parser.add_argument('--bad-fraction', type=float, default=0.25,
                      help='share of malformed requests with --mix-bad (default: 0.25)')
  parser.add_argument('--max-request-mb', type=float, default=2.0,
                      help='server request limit, MiB (default: 2; 1 s of 44.1 kHz audio is '
                      'about 0.6 MiB of JSON)')
  parser.add_argument('--encodings', default=','.join(ENCODINGS),
                      help='request/answer encodings to load the server with, in turn: json '
                      '(numbers) and b64 ({"b64": float32 bytes} rows) (default: json,b64)')
  parser.add_argument('--breakdown-requests', type=int, default=9,
                      help='requests sent one at a time per encoding for the breakdown '
                      '(default: 9)')
  parser.add_argument('--in-process-server', action='store_true',
                      help='run the server in a thread of this process instead of a subprocess')
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  if args.requests < 1 or args.concurrency < 1 or not 0 < args.bad_fraction <= 0.5:
    parser.error('--requests and --concurrency must be >= 1, --bad-fraction in (0, 0.5]')
  if not args.encodings or any(e.strip() not in ENCODINGS for e in args.encodings.split(',')):
    parser.error(f'--encodings: a comma-separated subset of {",".join(ENCODINGS)}')
  with tempfile.TemporaryDirectory(prefix='fxemu-serve-bench-') as scratch:
    base = args.model
    if not base:
      print('exporting a default-config conv model ...', file=sys.stderr, flush=True)
      base = os.path.join(scratch, 'conv')
      export_default_model(base, 'conv')
    report = benchmark(args, base)
  print_report(report)
  if args.json:
    print(json.dumps(report))
  return 0 if report['all_ok'] else 1


if __name__ == '__main__':
  sys.exit(main())
