"""Scaling: how ingest and training time grow with the length of the audio.

    python benchmarks/scaling.py [--data DIR] [--effect lowpass] [--factors 1,4,16]
                                 [--train-factors 1,4] [--json]

The default data of ``--effect`` (``work/data`` or synthesized) is made 4x and 16x
longer by tiling every recording (dry and wet alike) end to end into a temporary folder.
For each length it times:

* ingest: the plain single-process loop and the AudioExampleGen on Beam (the
  ``--modes`` of ``benchmarks/ingest.py``), whole runs;
* training: one epoch of ``model.fit`` of the default model over the training split,
  fed by ``trainer.data.make_dataset`` as ``run_fn`` feeds it (first epoch: reads the
  files and fills the cache), for the ``--train-factors`` lengths.

Each column gets a least-squares line ``seconds = a + b * factor``; "linear" means the
seconds per unit of audio stay flat: the table shows them, the fit's R^2 and the log-log
slope between the shortest and the longest run (1.0 = linear). With ``--json`` the last
line of stdout is one JSON object of the figures (``*_rtf``: audio seconds per wall s).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def tile_data(data_dir: str, effect: str, factor: int, out_dir: str) -> str:
  """Writes every pair of ``effect`` repeated ``factor`` times end to end into ``out_dir``."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  from components.audio import pairs as pairs_lib  # pylint: disable=import-outside-toplevel
  from components.audio import wav  # pylint: disable=import-outside-toplevel
  os.makedirs(out_dir, exist_ok=True)
  for pair in pairs_lib.find_pairs(data_dir, effect):
    for path in (pair.pre_path, pair.post_path):
      audio, info = wav.read_wav(path)
      wav.write_wav(os.path.join(out_dir, os.path.basename(path)),
                    np.tile(audio, [factor, 1]), info.sample_rate, info.subtype)
  return out_dir


def train_one_epoch(examples: str, model_name: str) -> Dict:
  """Wall time of one epoch of the default model over ``examples``' training split."""
  from benchmarks import input_pipeline  # pylint: disable=import-outside-toplevel
  from trainer import data  # pylint: disable=import-outside-toplevel
  from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
  config = input_pipeline.train_config(model_name)
  train_files = os.path.join(examples, 'Split-train')
  num_train = data.count_examples(train_files)
  steps = num_train // config.batch_size
  _, model = input_pipeline.compiled_model(config, steps)
  warm = data.make_dataset(train_files, input_pipeline.train_config(model_name, cache=False),
                           config.batch_size, training=False,
                           crop=model_lib.input_crop(config)).take(2)
  model.fit(warm, epochs=1, verbose=0)              # tracing and kernel selection
  dataset = data.make_dataset(train_files, config, config.batch_size, training=True,
                              repeat=True, crop=model_lib.input_crop(config))
  start = time.perf_counter()
  model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
  return {'train_examples': num_train, 'steps': steps,
          'epoch_seconds': time.perf_counter() - start}


def fit_line(xs: List[float], ys: List[float]) -> Dict[str, float]:
  """Least-squares ``y = a + b x`` with R^2, and the log-log slope of the end points."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  x, y = np.asarray(xs, float), np.asarray(ys, float)
  if len(x) < 2:
    return {'intercept': float('nan'), 'slope': float('nan'), 'r2': float('nan'),
            'loglog_slope': float('nan')}
  b, a = np.polyfit(x, y, 1)
  residual = float(np.sum((y - (a + b * x)) ** 2))
  total = float(np.sum((y - y.mean()) ** 2)) or 1e-12
  exponent = float(np.log(y[-1] / y[0]) / np.log(x[-1] / x[0]))
  return {'intercept': float(a), 'slope': float(b), 'r2': 1 - residual / total,
          'loglog_slope': exponent}


def main(argv=None) -> int:
  from benchmarks import ingest  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='', help='base data (default: the default data set)')
  parser.add_argument('--effect', default='lowpass')
  parser.add_argument('--factors', default='1,4,16', help='lengths, x the base data')
  parser.add_argument('--train-factors', default='1,4',
                      help='lengths at which an epoch of training is timed (default 1,4; '
                      '16 adds ~5 min here)')
  parser.add_argument('--modes', default='in_memory,multi_threading_2',
                      help=f'Beam rows: {", ".join(ingest.BEAM_MODES)} (empty: none)')
  parser.add_argument('--model', default='conv')
  parser.add_argument('--scratch', default='', help='working folder (default: a temporary one)')
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  common.quiet_tensorflow()
  from components.audio import tfexample  # pylint: disable=import-outside-toplevel
  factors = [int(f) for f in args.factors.split(',') if f]
  train_factors = [int(f) for f in args.train_factors.split(',') if f]
  modes = [m for m in args.modes.split(',') if m]
  rows = []
  with tempfile.TemporaryDirectory(prefix='fxemu-scaling-', dir=args.scratch or None) as scratch:
    base = common.default_data(args.effect, scratch, args.data)
    warm = os.path.join(scratch, 'warm')
    ingest.plain_loop(common.example_gen_props(base, args.effect), warm,
                      tfexample.DEFAULT_GZIP_LEVEL)        # imports, decoder start-up
    shutil.rmtree(warm)
    for factor in sorted(set(factors) | set(train_factors)):
      print(f'{factor}x ...', file=sys.stderr, flush=True)
      data = tile_data(base, args.effect, factor, os.path.join(scratch, f'data{factor}'))
      props = common.example_gen_props(data, args.effect)
      row = {'factor': factor, 'audio_seconds': common.audio_seconds(data, args.effect)}
      examples = os.path.join(scratch, f'plain{factor}')
      start = time.perf_counter()
      summary = ingest.plain_loop(props, examples, tfexample.DEFAULT_GZIP_LEVEL)
      row['plain_seconds'] = time.perf_counter() - start
      row['examples'] = sum(summary['windows'].values())
      for mode in modes:
        out = os.path.join(scratch, f'beam{factor}')
        start = time.perf_counter()
        common.run_example_gen(props, out, ingest.BEAM_MODES[mode][0])
        row[f'beam_{mode}_seconds'] = time.perf_counter() - start
        shutil.rmtree(out)
      if factor in train_factors:
        row.update(train_one_epoch(examples, args.model))
      shutil.rmtree(examples)
      shutil.rmtree(data)
      rows.append(row)
  columns = ['plain'] + [f'beam_{m}' for m in modes] + ['epoch']
  fits = {}
  for column in columns:
    key = 'epoch_seconds' if column == 'epoch' else f'{column}_seconds'
    points = [(r['factor'], r[key]) for r in rows if key in r]
    if points:
      fits[column] = fit_line([p[0] for p in points], [p[1] for p in points])
  print(f'\nscaling of {args.effect} (1x = {rows[0]["audio_seconds"] / rows[0]["factor"]:.0f} s '
        f'of stereo audio); seconds, and in brackets seconds per 1x of audio; '
        f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
  headers = ['length', 'audio s', 'examples', 'ingest plain'] + \
      [f'ingest beam {m}' for m in modes] + ['train steps', 'train 1 epoch']

  def cell(row, key):
    return f'{row[key]:.1f} ({row[key] / row["factor"]:.2f})' if key in row else ''
  table = [[f'{r["factor"]}x', f'{r["audio_seconds"]:.0f}', r['examples'],
            cell(r, 'plain_seconds')] + [cell(r, f'beam_{m}_seconds') for m in modes] +
           [r.get('steps', ''), cell(r, 'epoch_seconds')] for r in rows]
  for name, label in (('r2', 'fit R^2'), ('loglog_slope', 'log-log slope'),
                      ('slope', 's per 1x (fit)'), ('intercept', 'fixed s (fit)')):
    table.append([label, '', ''] + [f'{fits[c][name]:.3f}' if c in fits else ''
                                     for c in columns[:-1]] + ['',
                 f'{fits["epoch"][name]:.3f}' if 'epoch' in fits else ''])
  common.print_table(headers, table)
  if args.json:
    figures = {'benchmark': 'scaling', 'effect': args.effect, 'rows': rows, 'fits': fits,
               'cpus': os.cpu_count(), 'load_average': os.getloadavg()[0]}
    for r in rows:
      for key in [k for k in r if k.endswith('_seconds') and k != 'audio_seconds']:
        figures[f'{key[:-len("_seconds")]}_rtf_{r["factor"]}x'] = r['audio_seconds'] / r[key]
    common.emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
