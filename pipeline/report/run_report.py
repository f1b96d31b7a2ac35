"""The run report: one self-contained HTML page per pipeline run (``fxemu report``).

    fxemu report [RUN] [--output-dir work] [--effect overdrive] [--out FILE]

Read from the run's ML Metadata store and artifacts, it shows
  * the stages, the blessing and the push;
  * the Evaluator's metrics (overall, per file, per file and channel) next to output = input,
    a least-squares FIR fitted on the training recordings and the last blessed model;
  * the Trainer's curves (train/eval loss and ESR per epoch, ``fxemu_training.json``);
  * for each test recording: spectrograms of dry, wet, predicted and error, ESR over time and
    short audio players (dry / wet / predicted);
  * the data: files, durations, windows per split, levels, clipping, schema anomalies and
    the capture check's figures and findings.
Plots are PNG and audio 16-bit mono WAV, inlined as base64 data URIs: the page needs no
network and no other file. It is written atomically to ``<pipeline root>/report.html``.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import glob
import html
import json
import os
import sys
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from components.anomalies_gate import read_anomalies
from components.audio import atomic_file
from components.audio import dsp
from components.audio import pairs as pairs_lib
from components.audio import wav
from pipeline import results
from pipeline.configs import DEFAULT_OUTPUT_DIR
from pipeline.configs import PipelineConfig
from pipeline.inference import apply
from pipeline.report import plots
from schema import contract

REPORT_FILE = 'report.html'
CLIP_SECONDS = 8.0          # audio players: the first seconds of each test part
SEGMENT_SECONDS = 0.5       # ESR over time: one point per segment
FIR_TAPS, FIR_LOOKAHEAD = 512, 64
MAX_TEST_RECORDINGS = 4     # keeps the page a few MB


# --- Which run ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RunLocation:
  """Where one pipeline's metadata and artifacts are."""
  metadata_path: str
  pipeline_name: str
  pipeline_root: str

  @property
  def report_path(self) -> str:
    return os.path.join(self.pipeline_root, REPORT_FILE)


def locate_run(run: str = '', output_dir: str = DEFAULT_OUTPUT_DIR,
               effect: str = '') -> RunLocation:
  """The pipeline to report on.

  ``run`` may be an ML Metadata file (``OUTPUT_DIR/metadata/NAME.sqlite``), a pipeline
  root (``OUTPUT_DIR/pipelines/NAME``) or an output directory (as ``--output-dir``).
  In an output directory, ``effect`` picks the pipeline; without it, the one whose
  metadata changed last (the latest run).
  """
  if run and os.path.isfile(run):
    name = os.path.splitext(os.path.basename(run))[0]
    output_dir = os.path.dirname(os.path.dirname(os.path.abspath(run)))
    return RunLocation(run, name, os.path.join(output_dir, 'pipelines', name))
  if run and os.path.basename(os.path.dirname(os.path.abspath(run))) == 'pipelines':
    name = os.path.basename(os.path.abspath(run))
    output_dir = os.path.dirname(os.path.dirname(os.path.abspath(run)))
    return RunLocation(os.path.join(output_dir, 'metadata', f'{name}.sqlite'), name, run)
  output_dir = run or output_dir
  if effect:
    config = PipelineConfig(output_dir=output_dir, effect=effect)
    return RunLocation(config.metadata_path, config.pipeline_name, config.pipeline_root)
  stores = glob.glob(os.path.join(output_dir, 'metadata', '*.sqlite'))
  if not stores:
    raise FileNotFoundError(f'{output_dir}: no pipeline runs (no metadata/*.sqlite); '
                            'run `fxemu run` first or name the run')
  return locate_run(max(stores, key=os.path.getmtime))


def location_of(config: PipelineConfig) -> RunLocation:
  return RunLocation(config.metadata_path, config.pipeline_name, config.pipeline_root)


# --- What the run produced ---------------------------------------------------------------

def _read_json(path: str) -> Dict[str, Any]:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  if not path or not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def parse_slice(name: str) -> Dict[str, str]:
  """``'channel=0, source=piano'`` -> {'channel': '0', 'source': 'piano'}; overall -> {}."""
  if name == 'overall':
    return {}
  return dict(part.split('=', 1) for part in name.split(', '))


@dataclasses.dataclass
class TestTrack:
  """One test recording, all channels: ``[frames, channels]`` float32 (the whole recording,
  then only its test part once :func:`predict` has run)."""
  name: str
  sample_rate: int
  start: int                  # first test sample in dry/wet (0 once they hold only the test part)
  dry: np.ndarray
  wet: np.ndarray
  predicted: Optional[np.ndarray] = None


def load_pairs(summary: Dict[str, Any]):
  """(training tracks, test tracks) from the recordings named in the examples summary.

  Training tracks are ``(dry, wet)`` mono pairs (every channel of the training files and
  the part of test files before ``test_tail``); latency found by ``--align`` is trimmed.
  """
  latency = summary.get('latency_samples', {})
  training, tests = [], []
  for pair in pairs_lib.find_pairs(summary['input_base'], summary.get('effect') or None):
    is_test = pairs_lib.matches_any(pair.name, summary.get('test_patterns', []))
    dry, wet, info = pairs_lib.read_pair(pair, int(latency.get(pair.key, 0)))
    n = len(dry)
    cut = int(round(n * (1.0 - float(summary.get('test_tail', 1.0))))) if is_test else n
    training += [(dry[:cut, c], wet[:cut, c]) for c in range(dry.shape[1]) if cut > 0]
    if is_test:
      tests.append(TestTrack(pair.name, info.sample_rate, cut, dry[:n], wet[:n]))
  return training, tests


def predict(model_dir: str, tests: List[TestTrack]) -> None:
  """Fills ``predicted`` (test part only) with the model's output on each whole recording."""
  model = apply.LocalModel(model_dir)

  def whole(track: TestTrack) -> np.ndarray:
    block = apply.block_samples_for(model, apply.DEFAULT_BLOCK_SECONDS, track.dry.shape[1])
    return apply.process(model, track.dry, block)
  fill_predictions(tests, whole)


def fill_predictions(tests: List[TestTrack], predict_whole) -> None:
  """Sets each track's ``predicted`` to the test part of ``predict_whole(track)`` (the
  output, ``[frames, channels]``, for the whole recording ``track.dry``), and trims dry and
  wet to the test part, so that every predictor is scored on exactly the same samples."""
  for track in tests:
    predicted = np.asarray(predict_whole(track), np.float32)
    if predicted.shape != track.dry.shape:
      raise ValueError(f'{track.name}: prediction has shape {predicted.shape}, '
                       f'the recording {track.dry.shape}')
    track.predicted = predicted[track.start:]
    track.dry, track.wet = track.dry[track.start:], track.wet[track.start:]
    track.start = 0   # dry/wet now hold the test part only


Figures = Dict[Tuple[str, str], Dict[str, float]]


def _scored(tests: List[TestTrack], prediction_of) -> Figures:
  """ESR dB / RMSE / MRSTFT distance of ``prediction_of(track, channel)`` (the test part, ``[samples]``)
  against the wet test part, keyed like the Evaluator's slices: ('', '') overall,
  (source, '') per file, (source, channel) per file and channel."""
  sums: Dict[Tuple[str, str], dsp.ErrorSums] = {}
  for track in tests:
    for c in range(track.dry.shape[1]):
      predicted = prediction_of(track, c)
      for key in (('', ''), (track.name, ''), (track.name, str(c))):
        sums.setdefault(key, dsp.ErrorSums()).add(track.wet[track.start:, c], predicted)
  return {key: s.figures() for key, s in sums.items()}


def fir_references(training, tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`_scored`) of a least-squares FIR (``FIR_TAPS`` taps,
  ``FIR_LOOKAHEAD`` ahead) fitted on the training tracks, on the test parts."""
  fir = dsp.fit_fir([d for d, _ in training], [w for _, w in training], FIR_TAPS,
                    FIR_LOOKAHEAD)
  # Filtered whole (the test part's start sees its past), scored on the test part.
  return _scored(tests, lambda track, c: dsp.apply_fir(track.dry[:, c], fir,
                                                       FIR_LOOKAHEAD)[track.start:])


def identity_references(tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`_scored`) of output = input on the test parts."""
  return _scored(tests, lambda track, c: track.dry[track.start:, c])


def model_figures(tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`_scored`) of the model's output filled in by :func:`predict`."""
  return _scored(tests, lambda track, c: track.predicted[:, c])


# --- HTML pieces -------------------------------------------------------------------------

def _e(value: Any) -> str:
  return html.escape(str(value))


def _png(fig, alt: str) -> str:
  data = base64.b64encode(plots.png_bytes(fig)).decode('ascii')
  return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _audio(track: np.ndarray, sample_rate: int, label: str) -> str:
  """A player of a mono clip as an inline 16-bit WAV."""
  data = base64.b64encode(wav.encode_wav(np.clip(track, -1.0, 1.0), sample_rate,
                                        'PCM_16')).decode('ascii')
  return (f'<figure class="player"><figcaption>{_e(label)}</figcaption>'
          f'<audio controls preload="metadata" title="{_e(label)}" '
          f'src="data:audio/wav;base64,{data}"></audio></figure>')


def _num(value: Optional[float], digits: int = 2) -> str:
  if value is None or not np.isfinite(value):
    return '–'
  return f'{value:.{digits}f}' if abs(value) >= 1e-3 or value == 0 else f'{value:.2e}'


def _table(headers: List[str], rows: List[List[Any]], classes: str = '') -> str:
  head = ''.join(f'<th>{_e(h)}</th>' for h in headers)
  body = ''.join('<tr>' + ''.join(f'<td>{c}</td>' for c in row) + '</tr>' for row in rows)
  return f'<table class="{classes}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.overall td { font-weight: 600; } tr.channel td:first-child { padding-left: 2em; }
img { max-width: 100%; display: block; margin: .5em 0; }
.players { display: flex; gap: 1em; flex-wrap: wrap; }
figure.player { margin: 0; } .note { color: #666; } .bad { color: #b00; } .good { color: #070; }
"""


def _section_run(location: RunLocation, result: results.RunResult) -> str:
  started = datetime.datetime.fromtimestamp(result.run_started).strftime('%Y-%m-%d %H:%M:%S') \
      if result.run_started else '?'
  blessed = {True: '<span class="good">yes</span>', False: '<span class="bad">no</span>',
             None: 'not evaluated'}[result.blessed]
  pushed = (f'<span class="good">pushed to {_e(result.pushed_destination)}</span>'
            if result.pushed else 'not pushed')
  rows = [[_e(s.name), _e(s.state), _num(s.seconds, 1)] for s in result.stages]
  return (f'<p>Run <code>{_e(result.run_id)}</code>, started {_e(started)}; metadata '
          f'<code>{_e(location.metadata_path)}</code>. Model blessed: {blessed}; {pushed}.</p>'
          + _table(['stage', 'state', 'seconds'], rows))


METRIC_COLUMNS = ['slice', 'examples', 'model ESR (dB)', 'model RMSE', 'identity ESR (dB)',
                  'identity RMSE', 'FIR ESR (dB)', 'FIR RMSE', 'last blessed ESR (dB)',
                  'vs last blessed (dB)']


def _section_metrics(metrics, baseline, fir, fir_note: str) -> str:
  if not metrics:
    return '<p class="note">No evaluation in this run.</p>'

  def order(name):
    parts = parse_slice(name)
    return (len(parts), parts.get('source', ''), parts.get('channel', ''))

  rows = []
  for name in sorted(metrics, key=order):
    parts = parse_slice(name)
    values, base = metrics[name], baseline.get(name, {})
    ref = fir.get((parts.get('source', ''), parts.get('channel', '')), {})
    label = 'all test files' if not parts else (
        f'channel {parts["channel"]}' if 'channel' in parts else parts.get('source', name))
    delta = values.get('esr_db') - base['esr_db'] if 'esr_db' in base and 'esr_db' in values \
        else None
    cls = 'overall' if not parts else ('channel' if 'channel' in parts else 'file')
    rows.append((cls, [_e(label), _num(values.get('example_count'), 0),
                       _num(values.get('esr_db')), _num(values.get('rmse'), 5),
                       _num(values.get('identity_esr_db')), _num(values.get('identity_rmse'), 5),
                       _num(ref.get('esr_db')), _num(ref.get('rmse'), 5),
                       _num(base.get('esr_db')), _num(delta)]))
  head = ''.join(f'<th>{_e(h)}</th>' for h in METRIC_COLUMNS)
  body = ''.join(f'<tr class="{cls}">' + ''.join(f'<td>{c}</td>' for c in row) + '</tr>'
                 for cls, row in rows)
  return (f'<table class="metrics"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
          '<p class="note">ESR = Σ(wet − predicted)² / Σwet², in dB (lower is better), on the '
          'test split as scored by the Evaluator (TFMA). Identity: output = input. FIR: '
          f'{_e(fir_note)} Last blessed: the model the previous push released (the '
          'Evaluator\'s baseline), on the same examples.</p>')


def _section_training(training: Dict[str, Any]) -> str:
  if not training.get('history'):
    return (f'<p class="note">No training log ({contract.TRAINING_SUMMARY_FILE}) in this '
            'run.</p>')
  facts = [['model', _e(training.get('model', '?'))],
           ['parameters', _e(f'{training.get("parameter_count", 0):,}')],
           ['receptive field (samples)', _e(training.get('receptive_field_samples', '?'))],
           ['epochs run', _e(training.get('epochs_run', '?'))],
           ['steps run', _e(training.get('steps_run', '?'))],
           ['kept epoch (best eval ESR)', _e(training.get('best_epoch', '?'))],
           ['best eval ESR (dB)', _num(training.get('best_val_esr_db'))],
           ['eval ESR before training (dB)', _num(training.get('initial_val_esr_db'))]]
  initial = {'val_esr_db': training['initial_val_esr_db']} \
      if training.get('initial_val_esr_db') is not None else None
  figure = plots.training_curves_figure(training['history'], training.get('best_epoch'),
                                        initial)
  return _png(figure, 'training curves: loss and ESR per epoch') + _table(['', ''], facts)


def _section_test(track: TestTrack, metrics: Dict[str, Dict[str, float]], fir) -> str:
  rate, start_s = track.sample_rate, track.start / track.sample_rate
  parts = [f'<h3>{_e(track.name)}</h3>',
           f'<p class="note">Test part: {start_s:.2f} s to the end '
           f'({len(track.wet) / rate:.2f} s, {track.wet.shape[1]} channel(s)); '
           'spectrograms and players show channel 0.</p>']
  parts.append(_png(plots.comparison_figure(
      track.dry[:, 0], track.wet[:, 0], track.predicted[:, 0], rate,
      title=f'{track.name}, channel 0', start_seconds=start_s),
      f'spectrograms of {track.name}: dry, wet, predicted, error'))
  segment = max(1, int(SEGMENT_SECONDS * rate))
  curves, level = {}, None
  for c in range(track.wet.shape[1]):
    starts, esr_db, _, level_db = dsp.esr_by_segment(track.wet[:, c], track.predicted[:, c],
                                                     segment)
    curves[f'channel {c}'] = esr_db
    level = level_db if level is None else np.maximum(level, level_db)
  references = {}
  file_metrics = next((v for k, v in metrics.items() if parse_slice(k) == {'source': track.name}),
                      {})
  if 'identity_esr_db' in file_metrics:
    references['identity'] = file_metrics['identity_esr_db']
  if (track.name, '') in fir:
    references['FIR'] = fir[(track.name, '')]['esr_db']
  parts.append(_png(plots.esr_over_time_figure(
      start_s + starts / rate, curves, level, references=references,
      title=f'ESR over time ({SEGMENT_SECONDS:g} s segments)'),
      f'ESR over time of {track.name}'))
  clip = slice(0, int(CLIP_SECONDS * rate))
  parts.append('<div class="players">' + ''.join(
      _audio(audio[clip, 0], rate, f'{label} ({min(CLIP_SECONDS, len(audio) / rate):.1f} s '
             f'from {start_s:.1f} s)')
      for label, audio in (('dry', track.dry), ('wet', track.wet),
                           ('predicted', track.predicted))) + '</div>')
  return ''.join(parts)


def _section_data(summary: Dict[str, Any], anomalies: Dict[str, List[str]]) -> str:
  if not summary:
    return '<p class="note">No examples summary in this run.</p>'
  rate = summary.get('sample_rate') or 1
  levels = summary.get('levels', {})
  latency = summary.get('latency_samples', {})
  rows = []
  for f in summary.get('files', []):
    key = f'{f.get("effect")} - {f.get("name")}'
    level = levels.get(key, {})
    windows = f.get('windows', {})
    side = lambda s: (f'{_num(level[s]["peak_db"], 1)} / {_num(level[s]["rms_db"], 1)}'  # noqa: E731
                      if s in level else '–')
    rows.append([_e(f.get('name')), 'test' if f.get('test') else 'train/eval',
                 _e(f.get('channels')), _num(f.get('seconds')),
                 _e(windows.get('train', 0)), _e(windows.get('eval', 0)),
                 _e(windows.get('test', 0)), side('pre'), side('post'),
                 _e(latency.get(key, '–'))])
  totals = summary.get('windows', {})
  rows.append(['<b>total</b>', '', '', _num(sum(f.get('seconds', 0)
                                              for f in summary.get('files', []))),
               *(f'<b>{_e(totals.get(s, 0))}</b>' for s in ('train', 'eval', 'test')),
               '', '', ''])
  settings = (f'{_e(summary.get("input_base"))}, effect <b>{_e(summary.get("effect"))}</b>, '
              f'{_e(rate)} Hz; windows of {summary.get("window_samples", 0) / rate:.3g} s '
              f'(+ {summary.get("context_samples", 0) / rate:.3g} s context each side), hop '
              f'{summary.get("hop_samples", 0) / rate:.3g} s, train/eval blocks of '
              f'{summary.get("block_samples", 0) / rate:.3g} s; test files: '
              f'{_e(", ".join(summary.get("test_patterns", [])))} (last '
              f'{100 * float(summary.get("test_tail", 1.0)):.0f} % of each)')
  found = [f'{_e(split)}: {_e(text)}' for split, items in sorted(anomalies.items())
           for text in items]
  clipped = summary.get('clipped', [])
  checks = ('<li>schema anomalies (ExampleValidator): ' +
            (('<span class="bad">' + '; '.join(found) + '</span>') if found else
             ('none' if anomalies else 'not checked in this run')) + '</li>' +
            '<li>clipped recordings (more than 0.1 % of samples at full scale): ' +
            (('<span class="bad">' + _e(', '.join(clipped)) + '</span>') if clipped else 'none')
            + '</li>')
  return (f'<p>{settings}.</p>' + _table(
      ['file', 'role', 'channels', 'seconds', 'train windows', 'eval windows', 'test windows',
       'dry peak / RMS (dB FS)', 'wet peak / RMS (dB FS)', 'latency (samples)'], rows)
      + f'<ul>{checks}</ul>' + _section_check(summary.get('check')))


CHECK_COLUMNS = ['file', 'latency (samples)', 'confidence', 'coherence',
                 'ESR identity (dB)', 'ESR FIR (dB)', 'ESR nonlinear (dB)', 'lag swing (samples)',
                 'gain swing (dB)', 'phase swing (°)', 'noise floor (dB FS)', 'repeat ESR (dB)',
                 'verdict']


def _section_check(check: Optional[Dict[str, Any]]) -> str:
  """The capture check's figures per pair and its findings (AudioExampleGen's summary)."""
  if not check:
    return '<h3>Capture check</h3><p class="note">Not run (examples made before it existed).</p>'
  rows = []
  for key, pair in sorted(check.get('pairs', {}).items()):
    verdict = pair.get('verdict', '')
    mark = {'error': 'bad', 'warning': 'bad'}.get(verdict, 'good')
    rows.append([_e(pair.get('name', key)), _e(pair.get('latency_samples', '–')),
                 _num(pair.get('latency_confidence')), _num(pair.get('coherence')),
                 _num(pair.get('identity_esr_db'), 1), _num(pair.get('linear_esr_db'), 1),
                 _num(pair.get('nonlinear_esr_db'), 1), _num(pair.get('lag_swing_samples'), 1),
                 _num(pair.get('gain_swing_db'), 1), _num(pair.get('phase_swing_degrees'), 0),
                 _num(pair.get('noise_floor_db'), 0), _num(pair.get('repeat_esr_db'), 1),
                 f'<span class="{mark}">{_e(verdict)}</span>'])
  findings = []
  for pair in check.get('pairs', {}).values():
    for finding in pair.get('findings', []):
      cls = 'bad' if finding.get('severity') in ('error', 'warning') else 'note'
      findings.append(f'<li class="{cls}">{_e(finding.get("severity"))}: '
                      f'{_e(finding.get("message"))}</li>')
  return ('<h3>Capture check</h3><p class="note">Run by the AudioExampleGen on every pair '
          '(<code>fxemu check DATA_DIR</code> prints the same): latency by GCC-PHAT and its '
          'confidence, coherence of the aligned pair, held-out ESR of output = input, of a '
          'least-squares FIR and of a tiny nonlinear fit, swings of lag, gain and phase over '
          'time, the noise floor where the dry is silent, and the ESR between the two passes '
          'of a repeated segment. Errors stop the run before training (unless '
          f'<code>--allow-unlearnable</code>). Verdict: <b>{_e(check.get("verdict", "?"))}</b>.'
          '</p>' + _table(CHECK_COLUMNS, rows) +
          (f'<ul>{"".join(findings)}</ul>' if findings else '<p>No findings.</p>'))


# --- The page ----------------------------------------------------------------------------

def build_report(location: RunLocation) -> str:
  """The report of the newest run of ``location`` as one HTML document."""
  result = results.read_run(location.metadata_path, location.pipeline_name)
  summary = _read_json(os.path.join(result.examples_uri, contract.EXAMPLES_SUMMARY_FILE)) \
      if result.examples_uri else {}
  training = _read_json(os.path.join(result.model_run_uri, contract.TRAINING_SUMMARY_FILE)) \
      if result.model_run_uri else {}
  anomalies = read_anomalies(result.anomalies_uri) if result.anomalies_uri else {}
  baseline = {}
  if result.evaluation_uri:
    try:
      baseline = results.load_metrics(result.evaluation_uri, 'baseline')
    except Exception:  # pylint: disable=broad-except
      baseline = {}    # the first blessed model has no baseline
  fir, tests, audio_note = {}, [], ''
  try:
    training_tracks, tests = load_pairs(summary) if summary else ([], [])
    if training_tracks and tests:
      fir = fir_references(training_tracks, tests)
    tests = tests[:MAX_TEST_RECORDINGS]
    if result.model_uri and tests:
      predict(os.path.join(result.model_uri, 'Format-Serving'), tests)
  except Exception as e:  # pylint: disable=broad-except
    audio_note = f'The recordings could not be read or the model not run here: {e}'
    tests = []
  fir_note = (f'least-squares FIR ({FIR_TAPS} taps, {FIR_LOOKAHEAD} of them look-ahead) '
              'fitted on the training recordings: the best linear model, on the same '
              'test audio (whole test parts).')
  test_sections = ''.join(_section_test(t, result.metrics, fir) for t in tests
                          if t.predicted is not None) or \
      f'<p class="note">{_e(audio_note or "No model or test recording in this run.")}</p>'
  title = f'fxemu run report: {location.pipeline_name}'
  return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{STYLE}</style></head>
<body>
<h1>{_e(title)}</h1>
<section id="run"><h2>Run</h2>{_section_run(location, result)}</section>
<section id="metrics"><h2>Test metrics</h2>{_section_metrics(result.metrics, baseline, fir, fir_note)}</section>
<section id="training"><h2>Training</h2>{_section_training(training)}</section>
<section id="test-audio"><h2>Test recordings</h2>{test_sections}</section>
<section id="data"><h2>Data</h2>{_section_data(summary, anomalies)}</section>
<p class="note">Written by <code>fxemu report</code> on
{datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')}.</p>
</body></html>
"""


def write_report(location: RunLocation, out_path: str = '') -> str:
  """Builds the report and writes it atomically (temporary file + rename); returns its path."""
  out_path = out_path or location.report_path
  page = build_report(location)
  atomic_file.write_atomically(out_path, [page.encode('utf-8')])
  return out_path


# --- Command line ------------------------------------------------------------------------

def add_report_command(subparsers) -> None:
  """Adds ``fxemu report [RUN]`` to an argparse subparsers object."""
  parser = subparsers.add_parser(
      'report', help='write the HTML report of a pipeline run',
      description='Write a self-contained HTML page (plots and audio inline, works offline) '
      'about the newest run of a pipeline: metrics against references, training curves, '
      'test spectrograms with players, and the data summary.')
  parser.add_argument('run', nargs='?', default='', metavar='RUN',
                      help='an output directory (as --output-dir), a pipeline root '
                      '(OUTPUT_DIR/pipelines/NAME) or its metadata file '
                      '(OUTPUT_DIR/metadata/NAME.sqlite); default: --output-dir')
  parser.add_argument('--output-dir', default=DEFAULT_OUTPUT_DIR,
                      help=f'the `fxemu run` output directory (default: {DEFAULT_OUTPUT_DIR})')
  parser.add_argument('--effect', default='',
                      help='which effect\'s pipeline (default: the one that ran last)')
  parser.add_argument('--out', default='', metavar='FILE',
                      help='where to write the page (default: PIPELINE_ROOT/report.html)')
  parser.set_defaults(func=run_report_command)


def run_report_command(args) -> int:
  try:
    path = write_report(locate_run(args.run, args.output_dir, args.effect), args.out)
  except (FileNotFoundError, OSError) as e:
    print(f'fxemu report: error: {e}', file=sys.stderr)
    return 1
  print(f'report: {path}')
  return 0
