"""How fast does a pushed model run on this CPU? ``fxemu apply``, whole files, streaming.

    python benchmarks/apply_speed.py [--model DIR ...] [--seconds 10] [--json]

Without ``--model`` it builds the default model (``TrainConfig().model``) and the
``conv``, ``dense`` and ``tcn`` models with the trainer's default TrainConfig (untrained
weights: speed does not depend on them), exports them like the Pusher and measures those.
Figures:

* size: trainable parameters and FLOPs per output sample (TensorFlow's profiler on the
  model's graph for 1 s of audio: multiply-adds count 2);
* ``apply_rtf``: real-time factor (seconds of audio per wall second) of what
  ``fxemu apply`` does once the model is loaded: read a stereo 16-bit WAV of
  ``--seconds``, run the model in its default blocks, write the wet WAV
  (:func:`pipeline.inference.apply.apply_file`; best of ``--repeats`` after a warm-up); loading
  the SavedModel is timed separately (``load_seconds``); goals (:data:`APPLY_RTF_GOALS`):
  the default model >= 20x, the conv model >= 100x;
* whole-file real-time factor: one model call for the whole file (mono);
* streaming RTF and per-block latency (mean / p99 ms) of :class:`pipeline.inference.apply.
  BlockProcessor` with 512-sample blocks, after its ``warm_up()`` (timed separately);
  a block is real-time when it takes less than its own duration (``budget_ms``). The
  stream's algorithmic delay is ``latency`` samples (the future receptive field
  rounded up to the block multiple).

* the ``stream`` signature (:mod:`pipeline.inference.stream`, issue 15): the SavedModel's
  signature and its TFLite form (``fxemu export --tflite --block-size B`` for each block
  size B, so its static ``stream_fixed`` form runs; one interpreter thread), mono, blocks
  of ``--stream-blocks`` samples (128 and 512), measured in a child process pinned to one
  CPU before it starts (:func:`stream_rows_on_one_cpu`, like ``taskset -c N``: pinning a
  process that had already built its thread pools measured up to 2x slower,
  docs/performance.md): RTF, mean / p99 ms per block against the block's duration,
  latency in samples; goals (:data:`STREAM_RTF_GOALS`): the default model >= 10x at 128
  and >= 20x at 512, conv >= 50x at 512. Keys ``<model>_stream_<savedmodel|tflite>_<block>_rtf``.

``--json`` makes the last stdout line one JSON object with the same figures.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top

from pipeline.inference import apply  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

DEFAULT_MODEL = TrainConfig().model
#: Goal of ``apply_rtf`` per architecture (issue 12: a full-rate default at >= 20x; the
#: conv model kept at >= 100x).
APPLY_RTF_GOALS = {DEFAULT_MODEL: 20.0, 'conv': 100.0}


def export_default_model(base_dir: str, model: str = 'conv', version: int = 1) -> str:
  """Builds ``model`` with the default TrainConfig and exports ``base_dir/version``."""
  from trainer import architectures  # pylint: disable=g-import-not-at-top
  from trainer import export  # pylint: disable=g-import-not-at-top
  from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top
  config = TrainConfig(model=model)
  keras_model = architectures.build_model(config)
  return export.export_serving_model(keras_model, config,
                                     os.path.join(base_dir, str(version)))


def test_signal(seconds: float, sample_rate: int, channels: int = 1, seed: int = 0):
  """``[frames, channels]`` float32 noise at -10 dBFS."""
  rng = np.random.default_rng(seed)
  return (0.3 * rng.standard_normal([int(seconds * sample_rate), channels])).astype(np.float32)


def measure_whole_file(model, seconds: float, repeats: int) -> Dict[str, float]:
  """Best-of-``repeats`` wall time of one whole-file call on ``seconds`` of mono audio."""
  audio = test_signal(seconds, model.info.sample_rate)
  apply.process(model, audio)          # warm-up: kernels are prepared per input shape
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    apply.process(model, audio)
    times.append(time.perf_counter() - start)
  return {'whole_rtf': seconds / min(times), 'whole_seconds': min(times)}


def measure_streaming(model, seconds: float, block: int) -> Dict[str, float]:
  """Streams ``seconds`` of mono audio in ``block``-sample blocks; per-block wall times."""
  rate = model.info.sample_rate
  audio = test_signal(seconds, rate)[:, 0]
  processor = apply.BlockProcessor(model)
  start = time.perf_counter()
  processor.warm_up(block)             # first-seen input shapes cost up to ~1 s each
  warm_up_seconds = time.perf_counter() - start
  times = []
  for i in range(0, len(audio) - block + 1, block):
    start = time.perf_counter()
    processor.process(audio[i:i + block])
    times.append(time.perf_counter() - start)
  ms = 1000.0 * np.asarray(times)
  return {'stream_rtf': len(times) * block / rate / float(np.sum(times)),
          'block_mean_ms': float(ms.mean()), 'block_p99_ms': float(np.percentile(ms, 99)),
          'block_max_ms': float(ms.max()), 'budget_ms': 1000.0 * block / rate,
          'latency_samples': processor.latency,
          'latency_ms': 1000.0 * processor.latency / rate,
          'past_context_samples': model.info.past_context, 'blocks': len(times),
          'warm_up_seconds': warm_up_seconds}


def measure_apply_file(model, seconds: float, repeats: int, scratch: str) -> Dict[str, float]:
  """``fxemu apply``'s work on a stereo 16-bit WAV of ``seconds``, model already loaded."""
  from components.audio import wav  # pylint: disable=g-import-not-at-top
  in_path = os.path.join(scratch, 'apply-in.wav')
  out_path = os.path.join(scratch, 'apply-out.wav')
  wav.write_wav(in_path, test_signal(seconds, model.info.sample_rate, channels=2),
                model.info.sample_rate)
  apply.apply_file(model, in_path, out_path, progress=False)     # warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    apply.apply_file(model, in_path, out_path, progress=False)
    times.append(time.perf_counter() - start)
  return {'apply_rtf': seconds / min(times), 'apply_seconds': min(times),
          'apply_channels': 2}


def flops_per_sample(core, sample_rate: int) -> float:
  """FLOPs per output sample of a Keras model ``[batch, samples] -> [batch, samples]``,
  counted by TensorFlow's profiler on its graph for (about) 1 s of mono audio."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import model_analyzer  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import option_builder  # pylint: disable=g-import-not-at-top
  builder = option_builder.ProfileOptionBuilder
  samples = max(1024, sample_rate) // 1024 * 1024   # a multiple of every block multiple
  graph = tf.function(lambda x: core(x, training=False)).get_concrete_function(
      tf.TensorSpec([1, samples], tf.float32)).graph
  options = builder(builder.float_operation()).with_empty_output().build()
  return model_analyzer.profile(graph, options=options).total_float_ops / samples


def model_size(train_config: Dict) -> Dict[str, float]:
  """Parameters and FLOPs per output sample of the model of a TrainConfig dict."""
  from trainer import architectures  # pylint: disable=g-import-not-at-top
  from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top
  config = TrainConfig.from_custom_config(train_config)
  core = architectures.build_model(config)
  return {'parameters': architectures.parameter_count(core),
          'flops_per_sample': flops_per_sample(core, config.sample_rate)}


def benchmark(path: str, seconds: float, stream_seconds: float, block: int,
              repeats: int, scratch: str) -> Dict[str, object]:
  start = time.perf_counter()
  model = apply.LocalModel(path)
  load_seconds = time.perf_counter() - start
  row = {'model': model.info.model or os.path.basename(path), 'path': path,
         'sample_rate': model.info.sample_rate, 'load_seconds': load_seconds,
         'parameters': int(model.metadata.get('parameter_count', 0))}
  try:   # FLOPs of the architecture the model was trained with (its fxemu.json)
    row['flops_per_sample'] = model_size(model.metadata['train_config'])['flops_per_sample']
  except Exception:  # pylint: disable=broad-except  (no or foreign train_config)
    row['flops_per_sample'] = float('nan')
  row.update(measure_apply_file(model, seconds, repeats, scratch))
  row.update(measure_whole_file(model, seconds, repeats))
  row.update(measure_streaming(model, stream_seconds, block))
  return row


# --- The stream signature (issue 15): O(block) per call, state carried, one core ----------

#: Goals of the stream-signature real-time factor on one core: (model, block) -> RTF.
STREAM_RTF_GOALS = {(DEFAULT_MODEL, 128): 10.0, (DEFAULT_MODEL, 512): 20.0, ('conv', 512): 50.0}


def stream_rows_on_one_cpu(path: str, seconds: float, blocks: List[int], tflite: bool,
                           scratch: str) -> List[Dict[str, object]]:
  """:func:`benchmark_stream_signature` of the model at ``path`` in a child process whose
  CPU affinity is one CPU (the last this process may use) from before it starts, so
  TensorFlow's and TFLite's threads are all made on that CPU, as under ``taskset -c N``
  (where affinity cannot be set, the child runs unpinned and says so on stderr)."""
  try:
    cpu = sorted(os.sched_getaffinity(0))[-1]
    pin = lambda: os.sched_setaffinity(0, {cpu})   # in the child, before exec
  except AttributeError:   # not Linux
    pin = None
    print('apply_speed: cannot pin a process to one CPU here; the stream rows use all CPUs',
          file=sys.stderr)
  command = [sys.executable, os.path.abspath(__file__), '--stream-worker', path,
             '--stream-signature-seconds', str(seconds),
             '--stream-blocks', ','.join(map(str, blocks)), '--scratch', scratch,
             '--tflite' if tflite else '--no-tflite']
  result = subprocess.run(command, stdout=subprocess.PIPE, check=True, preexec_fn=pin,
                          text=True)
  return json.loads(result.stdout.strip().splitlines()[-1])


def measure_stream_signature(runner, seconds: float, block: int) -> Dict[str, float]:
  """Per-block wall times of a :mod:`pipeline.inference.stream` runner (SavedModel ``stream``
  signature or its TFLite form) on ``seconds`` of mono audio, after 20 warm-up blocks."""
  rate = runner.info.sample_rate
  audio = test_signal(seconds, rate)[:, 0][None, :]
  runner.reset()
  for i in range(20):
    runner.step(audio[:, :block])
  runner.reset()
  times = []
  for i in range(0, audio.shape[1] - block + 1, block):
    start = time.perf_counter()
    runner.step(audio[:, i:i + block])
    times.append(time.perf_counter() - start)
  ms = 1000.0 * np.asarray(times)
  return {'rtf': len(times) * block / rate / float(np.sum(times)),
          'mean_ms': float(ms.mean()), 'p50_ms': float(np.percentile(ms, 50)),
          'p99_ms': float(np.percentile(ms, 99)), 'budget_ms': 1000.0 * block / rate,
          'latency_samples': runner.latency, 'blocks': len(times)}


def benchmark_stream_signature(model, seconds: float, blocks: List[int], tflite: bool,
                               scratch: str) -> List[Dict[str, object]]:
  """Rows of the stream-signature table for one model ([] if it cannot stream)."""
  from pipeline.inference import stream  # pylint: disable=g-import-not-at-top
  try:
    stream.stream_info(model)
  except stream.NotStreamable:
    return []
  runners = [('savedmodel', block, stream.open_stream(model, 1), None) for block in blocks]
  if tflite:
    for block in blocks:   # one flatbuffer per block size: its stream_fixed form is N = block
      path = os.path.join(scratch, f'{model.info.model}-{block}-{os.getpid()}.tflite')
      start = time.perf_counter()
      stream.export_tflite(model.path, path, block_size=block)
      convert_seconds = time.perf_counter() - start
      runners.append(('tflite', block, stream.open_stream(model, 1, tflite=path, threads=1),
                      convert_seconds))
  rows = []
  for runtime, block, runner, convert_seconds in runners:
    row = {'model': model.info.model, 'runtime': runtime, 'block': block,
           **measure_stream_signature(runner, seconds, block)}
    row['goal'] = STREAM_RTF_GOALS.get((model.info.model, block))
    if convert_seconds is not None:
      row['convert_seconds'] = convert_seconds
    rows.append(row)
  return rows


def print_stream_table(rows: List[Dict[str, object]]) -> None:
  if not rows:
    return
  print('\nStreaming through the "stream" signature (state carried, O(block) per call), one '
        f'channel, in a process whose CPUs were {rows[0].get("cpus_allowed")} from its start:')
  header = (f'{"model":8s} {"runtime":10s} {"block":>5s} {"RTF":>8s} {"mean":>9s} '
            f'{"p99":>9s} {"budget":>8s} {"latency":>11s}  goal')
  print(header)
  print('-' * len(header))
  for r in rows:
    goal = '' if r['goal'] is None else (f'>= {r["goal"]:.0f}x ' +
                                         ('met' if r['rtf'] >= r['goal'] else 'NOT met'))
    print(f'{r["model"]:8s} {r["runtime"]:10s} {r["block"]:5d} {r["rtf"]:7.1f}x '
          f'{r["mean_ms"]:6.3f} ms {r["p99_ms"]:6.3f} ms {r["budget_ms"]:5.2f} ms '
          f'{r["latency_samples"]:6d} smp  {goal}')
  lite = {(r['model'], r['block']): r['rtf'] for r in rows if r['runtime'] == 'tflite'}
  for r in rows:
    if r['runtime'] == 'savedmodel' and (r['model'], r['block']) in lite:
      ratio = lite[(r['model'], r['block'])] / r['rtf']
      print(f'  {r["model"]} block {r["block"]}: TFLite / SavedModel speed {ratio:.2f}x '
            f'({"at least as fast" if ratio >= 1 else "SLOWER"})')


def print_table(rows: List[Dict[str, object]], block: int) -> None:
  print(f'\nCPU speed (real-time factor = audio seconds per wall second; streaming blocks '
        f'of {block} samples):')
  header = (f'{"model":8s} {"params":>8s} {"FLOPs/smp":>10s} {"apply RTF":>10s} '
            f'{"whole RTF":>10s} {"stream RTF":>11s} '
            f'{"block mean":>11s} {"block p99":>10s} {"budget":>8s} {"latency":>16s} '
            f'{"load":>6s} {"warm-up":>8s}')
  print(header)
  print('-' * len(header))
  for r in rows:
    print(f'{r["model"]:8s} {r["parameters"]:8d} {r["flops_per_sample"]:10,.0f} '
          f'{r["apply_rtf"]:9.1f}x {r["whole_rtf"]:9.1f}x {r["stream_rtf"]:10.1f}x '
          f'{r["block_mean_ms"]:8.2f} ms {r["block_p99_ms"]:7.2f} ms {r["budget_ms"]:5.1f} ms '
          f'{r["latency_samples"]:5d} smp {r["latency_ms"]:4.1f} ms '
          f'{r["load_seconds"]:4.1f} s {r["warm_up_seconds"]:6.1f} s')
  goals = ', '.join(f'{m} >= {g:.0f}x' for m, g in APPLY_RTF_GOALS.items())
  print(f'apply RTF: `fxemu apply` on a stereo 16-bit WAV, model loaded (goals: {goals}); '
        'whole RTF: one model call, mono; FLOPs/smp: per output sample (a multiply-add is 2)')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--model', action='append', default=None, metavar='DIR',
                      help='model base or version directory (repeatable); default: export '
                      f'default-config {DEFAULT_MODEL}, conv, dense and tcn models to a '
                      'temporary directory')
  parser.add_argument('--models', default=','.join(dict.fromkeys([DEFAULT_MODEL, 'conv', 'dense',
                                                                   'tcn'])),
                      help='architectures exported when no --model is given')
  parser.add_argument('--seconds', type=float, default=10.0,
                      help='length of the whole-file test signal, s (default: 10)')
  parser.add_argument('--stream-seconds', type=float, default=3.0,
                      help='length of the streamed test signal, s (default: 3)')
  parser.add_argument('--block', type=int, default=apply.STREAM_BLOCK_SAMPLES,
                      help='streaming block, samples (default: 512)')
  parser.add_argument('--repeats', type=int, default=3, help='whole-file runs (best is kept)')
  parser.add_argument('--stream-blocks', default='128,512',
                      help='block sizes for the stream-signature table, comma-separated '
                      '(default: 128,512; empty = skip it)')
  parser.add_argument('--stream-signature-seconds', type=float, default=3.0,
                      help='audio streamed per block size and runtime, s (default: 3)')
  parser.add_argument('--tflite', default=True, action=argparse.BooleanOptionalAction,
                      help='also convert each streamable model to TFLite and time it')
  parser.add_argument('--stream-worker', metavar='DIR', help=argparse.SUPPRESS)
  parser.add_argument('--scratch', help=argparse.SUPPRESS)
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  blocks = [int(b) for b in args.stream_blocks.split(',') if b.strip()]
  if args.stream_worker:    # the child of stream_rows_on_one_cpu: rows as JSON
    rows = benchmark_stream_signature(apply.LocalModel(args.stream_worker),
                                      args.stream_signature_seconds, blocks, args.tflite,
                                      args.scratch)
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else None
    for row in rows:   # the CPUs this process ran on (one, when pinned)
      row['cpus_allowed'] = cpus
    common.emit_json(rows)
    return 0
  with tempfile.TemporaryDirectory(prefix='fxemu-bench-') as scratch:
    paths = args.model
    if not paths:
      paths = []
      for name in [m.strip() for m in args.models.split(',') if m.strip()]:
        print(f'exporting a default-config {name} model ...', file=sys.stderr, flush=True)
        paths.append(export_default_model(os.path.join(scratch, name), name))
    rows = [benchmark(p, args.seconds, args.stream_seconds, args.block, args.repeats, scratch)
            for p in paths]
    stream_rows = []
    if blocks:
      for i, p in enumerate(paths):   # 'row': the whole-file row of the same model
        stream_rows += [dict(r, row=i) for r in stream_rows_on_one_cpu(
            p, args.stream_signature_seconds, blocks, args.tflite, scratch)]
  print_table(rows, args.block)
  print_stream_table(stream_rows)
  if args.json:
    summary = {'benchmark': 'apply_speed', 'block_samples': args.block,
               'seconds': args.seconds, 'cpus': os.cpu_count(),
               'intra_op_threads': args.intra_op_threads,
               'load_average': os.getloadavg()[0], 'models': rows}
    # Flat copies of the main figures (conv_whole_rtf, hybrid_stream_tflite_128_rtf, ...),
    # named model0_, model1_, ... where two rows share an architecture (two widths of hybrid),
    # so that no model's figures, or its goals, overwrite another's.
    kinds = [r['model'] for r in rows]
    names = [k if kinds.count(k) == 1 else f'model{i}'
             for i, k in enumerate(kinds)]
    for name, r in zip(names, rows):
      for key in ('apply_rtf', 'whole_rtf', 'stream_rtf', 'block_mean_ms', 'block_p99_ms',
                  'latency_samples', 'parameters', 'flops_per_sample', 'load_seconds'):
        summary[f'{name}_{key}'] = r[key]
      if r['model'] in APPLY_RTF_GOALS:
        summary[f'{name}_apply_rtf_goal'] = APPLY_RTF_GOALS[r['model']]
        summary[f'{name}_apply_rtf_goal_met'] = r['apply_rtf'] >= APPLY_RTF_GOALS[r['model']]
    summary['stream_signature'] = stream_rows
    for r in stream_rows:
      name = names[r['row']]
      key = f'{name}_stream_{r["runtime"]}_{r["block"]}'
      summary[f'{key}_rtf'] = r['rtf']
      summary[f'{key}_p99_ms'] = r['p99_ms']
      summary[f'{name}_stream_latency_samples'] = r['latency_samples']
      if r['goal'] is not None:
        summary[f'{key}_rtf_goal'] = r['goal']
        summary[f'{key}_rtf_goal_met'] = r['rtf'] >= r['goal']
    common.emit_json(summary)
  return 0


if __name__ == '__main__':
  sys.exit(main())
