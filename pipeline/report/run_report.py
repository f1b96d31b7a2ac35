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
network and no other file. The scores come from :mod:`pipeline.report.evaluation`, the HTML
from the Jinja2 template ``templates/report.html``. It is written atomically to
``<pipeline root>/report.html``.
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import glob
import os
from typing import Any, Dict, List, Optional

import jinja2
import numpy as np

from components import artifact_json
from components.anomalies_gate import read_anomalies
from components.audio import atomic_file
from components.audio import dsp
from components.audio import pairs as pairs_lib
from components.audio import wav
from pipeline import results
from pipeline.configs import DEFAULT_OUTPUT_DIR
from pipeline.configs import PipelineConfig
from pipeline.flags import flag_text
from pipeline.report import evaluation
from pipeline.report import plots
from schema import contract

REPORT_FILE = 'report.html'
CLIP_SECONDS = 8.0          # audio players: the first seconds of each test part
SEGMENT_SECONDS = 0.5       # ESR over time: one point per segment
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

def parse_slice(name: str) -> Dict[str, str]:
  """``'channel=0, source=piano'`` -> {'channel': '0', 'source': 'piano'}; overall -> {}."""
  if name == 'overall':
    return {}
  return dict(part.split('=', 1) for part in name.split(', '))


# --- The page's pieces (plain data; templates/report.html makes the HTML) --------------

def _png(fig, alt: str) -> Dict[str, str]:
  return {'alt': alt, 'data': base64.b64encode(plots.png_bytes(fig)).decode('ascii')}


def _player(track: np.ndarray, sample_rate: int, label: str) -> Dict[str, str]:
  """A mono clip as an inline 16-bit WAV."""
  data = base64.b64encode(wav.encode_wav(np.clip(track, -1.0, 1.0), sample_rate,
                                        'PCM_16')).decode('ascii')
  return {'label': label, 'data': data}


def _num(value: Optional[float], digits: int = 2) -> str:
  if value is None or not np.isfinite(value):
    return '–'
  return f'{value:.{digits}f}' if abs(value) >= 1e-3 or value == 0 else f'{value:.2e}'


def _cell(text: Any, **style) -> Dict[str, Any]:
  """A table cell: its text, and optionally ``cls`` (of the cell), ``bold`` or ``mark``
  (a span class such as 'good' or 'bad')."""
  return {'text': '' if text is None else str(text), 'cls': '', 'bold': False, 'mark': '',
          **style}


def _row(values, cls: str = '') -> Dict[str, Any]:
  return {'cls': cls, 'cells': [v if isinstance(v, dict) else _cell(v) for v in values]}


def _run(location: RunLocation, result: results.RunResult) -> Dict[str, Any]:
  started = datetime.datetime.fromtimestamp(result.run_started).strftime('%Y-%m-%d %H:%M:%S') \
      if result.run_started else '?'
  return {'run_id': result.run_id, 'started': started, 'metadata_path': location.metadata_path,
          'blessed': result.blessed, 'pushed': result.pushed,
          'pushed_destination': result.pushed_destination,
          'stages': [_row([s.name, s.state, _num(s.seconds, 1)]) for s in result.stages]}


METRIC_COLUMNS = ['slice', 'examples', 'model ESR (dB)', 'model RMSE', 'identity ESR (dB)',
                  'identity RMSE', 'FIR ESR (dB)', 'FIR RMSE', 'last blessed ESR (dB)',
                  'vs last blessed (dB)']


def _metrics(metrics, baseline, fir, fir_note: str) -> Optional[Dict[str, Any]]:
  if not metrics:
    return None

  def order(name):
    parts = parse_slice(name)
    return (len(parts), parts.get(contract.SOURCE, ''), parts.get(contract.CHANNEL, ''))

  rows = []
  for name in sorted(metrics, key=order):
    parts = parse_slice(name)
    values, base = metrics[name], baseline.get(name, {})
    ref = fir.get((parts.get(contract.SOURCE, ''), parts.get(contract.CHANNEL, '')), {})
    label = 'all test files' if not parts else (
        f'channel {parts[contract.CHANNEL]}' if contract.CHANNEL in parts
        else parts.get(contract.SOURCE, name))
    delta = values.get('esr_db') - base['esr_db'] if 'esr_db' in base and 'esr_db' in values \
        else None
    cls = 'overall' if not parts else ('channel' if contract.CHANNEL in parts else 'file')
    rows.append(_row([label, _num(values.get('example_count'), 0),
                      _num(values.get('esr_db')), _num(values.get('rmse'), 5),
                      _num(values.get('identity_esr_db')), _num(values.get('identity_rmse'), 5),
                      _num(ref.get('esr_db')), _num(ref.get('rmse'), 5),
                      _num(base.get('esr_db')), _num(delta)], cls))
  return {'columns': METRIC_COLUMNS, 'rows': rows, 'fir_note': fir_note}


def _schedule(training: Dict[str, Any]) -> str:
  """'0.004, constant, weights averaged (0.995), weight decay 0.1' from the training
  summary ('?' if older)."""
  if 'lr_schedule' not in training:
    return '?'
  momentum = training.get('ema_momentum') or 0.0
  decay = training.get('weight_decay') or 0.0
  return (f'{training.get("learning_rate", 0.0):g}, {training["lr_schedule"]}'
          + (f', weights averaged ({momentum:g})' if momentum else '')
          + (f', weight decay {decay:g}' if decay else ''))


def _training(training: Dict[str, Any]) -> Optional[Dict[str, Any]]:
  if not training.get('history'):
    return None
  facts = [['model', training.get('model', '?')],
           ['parameters', f'{training.get("parameter_count", 0):,}'],
           ['receptive field (samples)', training.get('receptive_field_samples', '?')],
           ['epochs run', training.get('epochs_run', '?')],
           ['steps run', training.get('steps_run', '?')],
           ['learning rate', _schedule(training)],
           ['kept epoch (best eval ESR)', training.get('best_epoch', '?')],
           ['best eval ESR (dB)', _num(training.get('best_val_esr_db'))],
           ['eval ESR before training (dB)', _num(training.get('initial_val_esr_db'))]]
  if training.get('hyperparameters'):   # the Tuner's best, or the CaptureSettings step's
    facts.append(['settings from the Tuner or the capture check',
                  flag_text(dict(sorted(training['hyperparameters'].items())))])
  if training.get('fir_start'):   # the FIR branch's start (fir_init) and its fit's ESR
    fit = training.get('fir_fit_esr_db')
    facts.append(['FIR branch start', training['fir_start'] + (
        f' (least-squares fit: {_num(fit)} dB)' if fit is not None else '')])
  initial = {'val_esr_db': training['initial_val_esr_db']} \
      if training.get('initial_val_esr_db') is not None else None
  figure = plots.training_curves_figure(training['history'], training.get('best_epoch'),
                                        initial)
  return {'curves': _png(figure, 'training curves: loss and ESR per epoch'),
          'facts': [_row(fact) for fact in facts]}


def _test_track(track: evaluation.TestTrack, metrics: Dict[str, Dict[str, float]],
                fir) -> Dict[str, Any]:
  rate, start_s = track.sample_rate, track.start / track.sample_rate
  spectrograms = _png(plots.comparison_figure(
      track.dry[:, 0], track.wet[:, 0], track.predicted[:, 0], rate,
      title=f'{track.name}, channel 0', start_seconds=start_s),
      f'spectrograms of {track.name}: dry, wet, predicted, error')
  segment = max(1, int(SEGMENT_SECONDS * rate))
  curves, level = {}, None
  for c in range(track.wet.shape[1]):
    starts, esr_db, _, level_db = dsp.esr_by_segment(track.wet[:, c], track.predicted[:, c],
                                                     segment)
    curves[f'channel {c}'] = esr_db
    level = level_db if level is None else np.maximum(level, level_db)
  references = {}
  file_metrics = next((v for k, v in metrics.items()
                       if parse_slice(k) == {contract.SOURCE: track.name}), {})
  if 'identity_esr_db' in file_metrics:
    references['identity'] = file_metrics['identity_esr_db']
  if (track.name, '') in fir:
    references['FIR'] = fir[(track.name, '')]['esr_db']
  esr_over_time = _png(plots.esr_over_time_figure(
      start_s + starts / rate, curves, level, references=references,
      title=f'ESR over time ({SEGMENT_SECONDS:g} s segments)'),
      f'ESR over time of {track.name}')
  clip = slice(0, int(CLIP_SECONDS * rate))
  players = [_player(audio[clip, 0], rate,
                     f'{label} ({min(CLIP_SECONDS, len(audio) / rate):.1f} s '
                     f'from {start_s:.1f} s)')
             for label, audio in (('dry', track.dry), ('wet', track.wet),
                                  ('predicted', track.predicted))]
  return {'name': track.name, 'start': f'{start_s:.2f}', 'seconds': f'{len(track.wet) / rate:.2f}',
          'channels': track.wet.shape[1], 'spectrograms': spectrograms,
          'esr_over_time': esr_over_time, 'players': players}


def _data(summary: Dict[str, Any], anomalies: Dict[str, List[str]]) -> Optional[Dict[str, Any]]:
  if not summary:
    return None
  rate = summary.get('sample_rate') or 1
  levels = summary.get('levels', {})
  latency = summary.get('latency_samples', {})
  rows = []
  for f in summary.get('files', []):
    key = pairs_lib.pair_key(f.get('effect'), f.get('name'))
    level = levels.get(key, {})
    windows = f.get('windows', {})
    side = lambda s: (f'{_num(level[s]["peak_db"], 1)} / {_num(level[s]["rms_db"], 1)}'  # noqa: E731
                      if s in level else '–')
    rows.append(_row([f.get('name'), 'test' if f.get('test') else 'train/eval',
                      f.get('channels'), _num(f.get('seconds')),
                      windows.get('train', 0), windows.get('eval', 0), windows.get('test', 0),
                      side('pre'), side('post'), latency.get(key, '–')]))
  totals = summary.get('windows', {})
  rows.append(_row([_cell('total', bold=True), '', '',
                    _num(sum(f.get('seconds', 0) for f in summary.get('files', []))),
                    *(_cell(totals.get(s, 0), bold=True) for s in ('train', 'eval', 'test')),
                    '', '', '']))
  return {
      'input_base': summary.get('input_base'), 'effect': summary.get('effect'),
      'sample_rate': rate,
      'window': f'{summary.get("window_samples", 0) / rate:.3g}',
      'context': f'{summary.get("context_samples", 0) / rate:.3g}',
      'hop': f'{summary.get("hop_samples", 0) / rate:.3g}',
      'block': f'{summary.get("block_samples", 0) / rate:.3g}',
      'test_patterns': ', '.join(summary.get('test_patterns', [])),
      'test_tail': f'{100 * float(summary.get("test_tail", 1.0)):.0f}',
      'files': rows,
      'anomalies': [f'{split}: {text}' for split, items in sorted(anomalies.items())
                    for text in items],
      'anomalies_checked': bool(anomalies),
      'clipped': summary.get('clipped', []),
      'check': _check(summary.get('check'))}


CHECK_COLUMNS = ['file', 'latency (samples)', 'confidence', 'coherence',
                 'ESR identity (dB)', 'ESR FIR (dB)', 'ESR nonlinear (dB)', 'lag swing (samples)',
                 'gain swing (dB)', 'phase swing (°)', 'noise floor (dB FS)', 'repeat ESR (dB)',
                 'verdict']


def _check(check: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
  """The capture check's figures per pair and its findings (AudioExampleGen's summary)."""
  if not check:
    return None
  rows = []
  for key, pair in sorted(check.get('pairs', {}).items()):
    verdict = pair.get('verdict', '')
    mark = {'error': 'bad', 'warning': 'bad'}.get(verdict, 'good')
    rows.append(_row([pair.get('name', key), pair.get('latency_samples', '–'),
                      _num(pair.get('latency_confidence')), _num(pair.get('coherence')),
                      _num(pair.get('identity_esr_db'), 1), _num(pair.get('linear_esr_db'), 1),
                      _num(pair.get('nonlinear_esr_db'), 1),
                      _num(pair.get('lag_swing_samples'), 1),
                      _num(pair.get('gain_swing_db'), 1),
                      _num(pair.get('phase_swing_degrees'), 0),
                      _num(pair.get('noise_floor_db'), 0), _num(pair.get('repeat_esr_db'), 1),
                      _cell(verdict, mark=mark)]))
  findings = [{'cls': 'bad' if finding.get('severity') in ('error', 'warning') else 'note',
               'severity': finding.get('severity'), 'message': finding.get('message')}
              for pair in check.get('pairs', {}).values()
              for finding in pair.get('findings', [])]
  return {'verdict': check.get('verdict', '?'), 'columns': CHECK_COLUMNS, 'rows': rows,
          'findings': findings}


# --- The page ----------------------------------------------------------------------------

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                'templates')),
    autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def build_report(location: RunLocation) -> str:
  """The report of the newest run of ``location`` as one HTML document."""
  result = results.read_run(location.metadata_path, location.pipeline_name)
  summary = artifact_json.examples_summary(result.examples_uri)
  training = results.training_summary(result)
  anomalies = read_anomalies(result.anomalies_uri) if result.anomalies_uri else {}
  baseline = {}
  if result.evaluation_uri:
    try:
      baseline = results.load_metrics(result.evaluation_uri, 'baseline')
    except Exception:  # pylint: disable=broad-except
      baseline = {}    # the first blessed model has no baseline
  fir, tests, audio_note = {}, [], ''
  try:
    training_tracks, tests = evaluation.load_pairs(summary) if summary else ([], [])
    if training_tracks and tests:
      fir = evaluation.fir_references(training_tracks, tests)
    tests = tests[:MAX_TEST_RECORDINGS]
    if result.model_uri and tests:
      evaluation.predict(os.path.join(result.model_uri, 'Format-Serving'), tests)
  except Exception as e:  # pylint: disable=broad-except
    audio_note = f'The recordings could not be read or the model not run here: {e}'
    tests = []
  fir_note = (f'least-squares FIR ({evaluation.FIR_TAPS} taps, {evaluation.FIR_LOOKAHEAD} of '
              'them look-ahead) fitted on the training recordings: the best linear model, on '
              'the same test audio (whole test parts).')
  return _TEMPLATES.get_template('report.html').render(
      title=f'fxemu run report: {location.pipeline_name}',
      run=_run(location, result),
      metrics=_metrics(result.metrics, baseline, fir, fir_note),
      training=_training(training), training_file=contract.TRAINING_SUMMARY_FILE,
      tests=[_test_track(t, result.metrics, fir) for t in tests if t.predicted is not None],
      tests_note=audio_note or 'No model or test recording in this run.',
      data=_data(summary, anomalies),
      written=datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S'))


def write_report(location: RunLocation, out_path: str = '') -> str:
  """Builds the report and writes it atomically (temporary file + rename); returns its path."""
  out_path = out_path or location.report_path
  page = build_report(location)
  atomic_file.write_atomically(out_path, [page.encode('utf-8')])
  return out_path

