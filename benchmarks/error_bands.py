"""Where a model's error is: ESR by the dry input's level and by frequency band.

    benchmarks/error_bands.py --case seed/pedals --model DIR [--model DIR ...]
                              [--nam RUN_DIR ...] [--json]

For each predictor on a case's test audio (the test part of every test recording, every
channel, exactly the samples :mod:`benchmarks.peers` scores):
  MODEL      a pushed fxemu model (a serving directory; ``fxemu apply``'s code)
  nam_SUB    each submodel of a finished NAM run of ``benchmarks/peers.py`` (its
             ``RUN_DIR``, e.g. ``work/benchmarks/peers/seed-pedals/nam``, holding
             ``job.json``; run from the directory the benchmark ran in, as the job's paths
             are relative to it)
it prints, per band, the band's share of the wet energy and each predictor's ESR in the band
(its error energy over the wet energy there, dB):
  level      whole blocks of ``--block`` samples (default 4,096, 93 ms at 44.1 kHz) by the
             dry block's RMS level (dBFS), edges :data:`LEVEL_EDGES_DB`
             (:func:`components.audio.dsp.level_band_energies`): does a model extrapolate to
             playing quieter or louder than its training audio?
  frequency  each track's energy spectrum (one FFT, Parseval) summed over bands with edges
             :data:`FREQUENCY_EDGES_HZ` (:func:`components.audio.dsp.band_energies`): the
             bass, the fundamentals, or a drive's harmonics?
The frequency bands add up exactly to the predictor's overall ESR; the level bands leave out
each track's last partial block.

With --json the last stdout line is one JSON object
``{"overall": {predictor: {"esr_db"}}, "level": [{"low_dbfs", "high_dbfs", "wet_share",
"esr_db": {predictor: dB}}, ...], "frequency": [{"low_hz", "high_hz", ...}, ...]}`` (null
for the open edges of the first and last level bands).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from benchmarks import peers  # noqa: E402
from benchmarks.common import emit_json, print_table, quiet_tensorflow  # noqa: E402
from components.audio import dsp  # noqa: E402

#: Lower edges of the level bands (dBFS RMS of a dry block); the first band is open below,
#: the last above.
LEVEL_EDGES_DB = (-np.inf, -60.0, -50.0, -40.0, -35.0, -30.0, -25.0)
#: Lower edges of the frequency bands (Hz); the last band ends at Nyquist.
FREQUENCY_EDGES_HZ = (0.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0, 6400.0)


def _db(ratio: float):
  """dB of an energy ratio; None for no error at all (JSON has no -inf)."""
  return float(10.0 * np.log10(ratio)) if ratio > 0 else None


def breakdown(tests, predictions: Dict[str, List[np.ndarray]], block: int):
  """Figures of every predictor: ``tests`` are the case's test tracks (test parts only),
  ``predictions[name][i]`` the prediction ``[frames, channels]`` for ``tests[i]``. Sums
  over every track and channel, then the ratios (see the module docstring)."""
  names = list(predictions)
  level_wet, freq_wet = np.zeros(len(LEVEL_EDGES_DB)), np.zeros(len(FREQUENCY_EDGES_HZ))
  level_err = {n: np.zeros_like(level_wet) for n in names}
  freq_err = {n: np.zeros_like(freq_wet) for n in names}
  for i, track in enumerate(tests):
    for c in range(track.dry.shape[1]):
      dry, wet = track.dry[:, c], track.wet[:, c].astype(np.float64)
      level_wet += dsp.level_band_energies(wet, dry, block, LEVEL_EDGES_DB)
      freq_wet += dsp.band_energies(wet, track.sample_rate, FREQUENCY_EDGES_HZ)
      for n in names:
        error = predictions[n][i][:, c] - wet
        level_err[n] += dsp.level_band_energies(error, dry, block, LEVEL_EDGES_DB)
        freq_err[n] += dsp.band_energies(error, track.sample_rate, FREQUENCY_EDGES_HZ)

  def rows(wet, err, edges, low_key, high_key, last):
    bounds = [None if np.isinf(e) else e for e in edges] + [last]
    return [{low_key: bounds[k], high_key: bounds[k + 1],
             'wet_share': float(wet[k] / wet.sum()) if wet.sum() else 0.0,
             'esr_db': {n: _db(err[n][k] / wet[k]) if wet[k] else None for n in names}}
            for k in range(len(wet))]
  rate = tests[0].sample_rate
  from pipeline.report import evaluation   # TensorFlow: after quiet_tensorflow()
  index = {id(track): i for i, track in enumerate(tests)}
  overall = {n: evaluation.score(tests, lambda track, c, n=n: predictions[n][index[id(track)]][:, c])
             [('', '')]['esr_db'] for n in names}   # the benchmarks' one scoring code
  return {'overall': {n: {'esr_db': overall[n]} for n in names},
          'level': rows(level_wet, level_err, LEVEL_EDGES_DB, 'low_dbfs', 'high_dbfs', None),
          'frequency': rows(freq_wet, freq_err, FREQUENCY_EDGES_HZ, 'low_hz', 'high_hz',
                            rate / 2.0)}


def model_predictions(config, model_dir: str) -> List[np.ndarray]:
  from pipeline.report import evaluation
  tests = peers.fresh_tests(config)
  evaluation.predict(model_dir, tests)
  return [t.predicted for t in tests]


def _label(path: str, taken) -> str:
  """A short unique name for a model directory: the run directory's name (the part
  before ``serving``, as the benchmarks lay runs out), else the path."""
  parts = os.path.normpath(path).split(os.sep)
  name = parts[parts.index('serving') - 1] if 'serving' in parts[1:] else path
  return name if name not in taken else path


def _table(figures, kind: str, low: str, high: str, unit: str):
  names = list(figures['overall'])
  rows = []
  for band in figures[kind]:
    if band[low] is None:
      span = f'below {band[high]:g} {unit}'
    elif band[high] is None:
      span = f'{band[low]:g} {unit} and up'
    else:
      span = f'{band[low]:g} to {band[high]:g} {unit}'
    rows.append([span, f'{100 * band["wet_share"]:.1f} %']
                + [band['esr_db'][n] if band['esr_db'][n] is not None else '' for n in names])
  print_table([kind, 'wet energy'] + [f'{n} ESR dB' for n in names], rows)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--case', required=True, help='[seed/]EFFECT[:A|B], as in peers.py')
  parser.add_argument('--model', action='append', default=[],
                      help='a pushed fxemu model directory; repeatable')
  parser.add_argument('--nam', action='append', default=[],
                      help='a NAM run directory of peers.py (holding job.json); repeatable')
  parser.add_argument('--data', default='', help='directory of the preset data (as peers.py)')
  parser.add_argument('--block', type=int, default=4096,
                      help='samples per level block (default 4096)')
  parser.add_argument('--json', action='store_true', help='last line: JSON of the figures')
  args = parser.parse_args(argv)
  if not args.model and not args.nam:
    parser.error('give at least one --model or --nam')
  if args.block < 16:
    parser.error(f'--block {args.block}: must be at least 16 samples')
  quiet_tensorflow()
  try:
    source, effect, protocol = peers.parse_case(args.case)
  except ValueError as e:
    parser.error(str(e))
  data = peers.case_data(source, effect, os.path.join('work', 'benchmarks', 'scratch'),
                         args.data)
  config = peers.pipeline_config(data, effect, protocol, '')
  predictions = {}
  for path in args.model:
    if not os.path.isfile(os.path.join(path, 'saved_model.pb')):
      parser.error(f'--model {path}: no saved_model.pb there (give a pushed model version '
                   'directory)')
    predictions[_label(path, predictions)] = model_predictions(config, path)
  for run_dir in args.nam:
    job_path = os.path.join(run_dir, 'job.json')
    if not os.path.isfile(job_path):
      parser.error(f'--nam {run_dir}: no job.json there (give a NAM run directory of peers.py)')
    with open(job_path) as f:
      job = json.load(f)
    for name, tests in peers.nam_predictions(config, job).items():
      predictions[f'nam_{name}' if len(args.nam) == 1 else f'{run_dir}:nam_{name}'] = [
          t.predicted for t in tests]
  tests = peers.fresh_tests(config)
  from pipeline.report import evaluation
  evaluation.fill_predictions(tests, lambda track: track.dry)   # trims to the test parts
  figures = breakdown(tests, predictions, args.block)
  print('ESR dB over all test audio: ' + ', '.join(
      f'{n} {"no error" if v["esr_db"] is None else format(v["esr_db"], ".2f")}' for n, v in figures['overall'].items()))
  _table(figures, 'level', 'low_dbfs', 'high_dbfs', 'dBFS')
  _table(figures, 'frequency', 'low_hz', 'high_hz', 'Hz')
  if args.json:
    emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
