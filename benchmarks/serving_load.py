"""Serving under load: latency and throughput of ``fxemu serve`` against the model in-process.

    python benchmarks/serving_load.py [--model BASE] [--requests 120] [--concurrency 4]
                                      [--mix-bad] [--in-process-server] [--json]

Starts ``fxemu serve`` on 127.0.0.1 (a subprocess, ``python -m pipeline.inference.serve``, unless
``--in-process-server``) on the model base directory (default: a default-config conv
model exported to a temporary directory), then sends ``--requests`` predict requests of
``--seconds`` of mono audio each from ``--concurrency`` client threads (bounded also by
``--max-seconds``) and reports p50/p99 latency and requests/s. The same load pattern is
run against the SavedModel in this process (``LocalModel.predict``) as the reference; the
ratio column is served / in-process. Every answer is checked against the reference
output. The client runs on the same CPUs as the server.

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
  """``python -m pipeline.inference.serve`` on 127.0.0.1, port chosen by the OS; stopped by
  :meth:`stop`."""

  def __init__(self, base: str, max_request_mb: float, timeout: float = 120.0):
    self.proc = subprocess.Popen(
        [sys.executable, '-m', 'pipeline.inference.serve', base, '--port', '0',
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


# --- Benchmark ---------------------------------------------------------------------------------

def benchmark(args, base: str) -> Dict[str, object]:
  model = apply.LocalModel(base)
  rate = model.info.sample_rate
  samples = int(round(args.seconds * rate))
  rng = np.random.default_rng(0)
  signals = [(0.3 * rng.standard_normal([1, samples])).astype(np.float32) for _ in range(4)]
  expected = [model.predict(s) for s in signals]              # also warms the model up
  bodies = [('{"instances":%s}' % apply.format_rows(s)).encode() for s in signals]
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
  try:
    def served_call(i):
      session = getattr(sessions, 'session', None) or requests.Session()
      sessions.session = session
      kind = kind_of(i)
      body = bodies[i % 4] if kind == 'good' else bad[kind]
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
      wet = np.asarray(answer.json()['predictions'], np.float32)
      return bool(wet.shape == expected[i % 4].shape and
                  np.allclose(wet, expected[i % 4], atol=1e-5)), kind

    served_call(0)                                            # one warm-up request
    load = run_load(served_call, count, args.concurrency, args.max_seconds)
    served = summarize(load)
    alive = requests.get(server.url, timeout=30).status_code == 200 and served_call(0)[0]
  finally:
    server.stop()

  results = load['results']
  checks = {'sent': len(results), 'planned': count,
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
  print(f'{"":22s} {"p50 ms":>9s} {"p99 ms":>9s} {"req/s":>8s}')
  print(f'{"served (REST, JSON)":22s} {r["served_p50_ms"]:9.1f} {r["served_p99_ms"]:9.1f} '
        f'{r["served_rps"]:8.1f}')
  print(f'{"in-process SavedModel":22s} {r["inprocess_p50_ms"]:9.1f} '
        f'{r["inprocess_p99_ms"]:9.1f} {r["inprocess_rps"]:8.1f}')
  print(f'{"ratio served/in-proc":22s} {r["ratio_p50"]:8.1f}x {r["ratio_p99"]:8.1f}x '
        f'{r["ratio_rps"]:7.2f}x')
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
  parser.add_argument('--in-process-server', action='store_true',
                      help='run the server in a thread of this process instead of a subprocess')
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  if args.requests < 1 or args.concurrency < 1 or not 0 < args.bad_fraction <= 0.5:
    parser.error('--requests and --concurrency must be >= 1, --bad-fraction in (0, 0.5]')
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
