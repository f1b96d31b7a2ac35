"""fxemu against Neural Amp Modeler: same audio, same wall-clock budget, same scoring.

    benchmarks/peers.py [--case overdrive --case seed/pedals:B ...] [--budget-seconds 540]
                        [--models hybrid,conv] [--variant 'hybrid+agc={"agc_strength": 1}']
                        [--peers nam|none] [--seeds 1] [--json]

For each case (an effect of a data set, under a protocol) it measures on the test audio:
  identity   output = input (doing nothing)
  fir        least-squares FIR (512 taps, 64 look-ahead) fitted by fxemu on the training audio
  MODEL      each fxemu model of --models, trained by the real pipeline (AudioExampleGen ...
             Trainer) with ``train_seconds`` = the budget
  LABEL      each --variant LABEL=JSON: the same, with the JSON's TrainConfig values (the
             model is the JSON's "model", else the label up to its first "+"), e.g.
             ``hybrid+agc={"agc_strength": 1}`` is ``fxemu run --agc-strength 1``, or
             PipelineConfig values (``{"capture_settings": false}`` is
             ``--no-capture-settings``); ``settings`` in --json: what the capture check's
             CaptureSettings step (or a Tuner) gave the Trainer
  nam        Neural Amp Modeler 0.13, its default model and loss, on the CPU, trained on the
             same training audio (the same train/eval blocks as fxemu's) for the same
             wall-clock budget (``benchmarks/nam_peer.py``, in its own environment
             ``.venv-peers``, made by ``scripts/setup_peers.sh`` on first use); its default
             model is a packed WaveNet of two submodels, and the row shows the better of them
             on the test audio (``nam_SUBMODEL`` rows show each)
With ``--seeds N`` every trained row is trained N times (seeds S ... S + N - 1, S the row's
``seed``, default 0; rows ``NAME#0`` ... ``NAME#N-1``) and ``NAME`` is their mean ESR in dB
(``esr_db_min`` and ``esr_db_max`` beside it in --json): on the hardware pedals one setting
varies by about 2 dB from run to run.
Every row is scored by the same code (``pipeline.report.evaluation``): ESR in dB over all test
channels, the RMSE, and a phase-invariant multi-resolution STFT distance (``mrstft``,
:func:`components.audio.dsp.mrstft_from_sums`). ``vs nam dB`` is a row's ESR minus NAM's, measured
in the same run (negative = better than NAM).

Cases: ``EFFECT`` (the default data set of ``fxemu synth``: overdrive, compressor, lowpass,
fuzz, tube_cab, comp_drive) or ``seed/EFFECT`` (``../shared/seed-audio``: lowpass, pedals),
with ``:A`` (default: train on the synthetic signals, test on the whole piano) or ``:B``
(train also on the first 60 % of the piano, test on the last 40 %).

With --json the last stdout line is one JSON object
``{case: {row: {esr_db, rmse, mrstft, fit_seconds, steps, params, ...}}}`` (fxemu rows also
carry ``train_seconds``, the whole Trainer stage, and ``evaluator_esr_db``).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Mapping, Sequence

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import emit_json, print_table, quiet_tensorflow  # noqa: E402
from schema import contract  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_VENV = os.path.join(REPO, '.venv-peers')
PEER_SETUP = os.path.join(REPO, 'scripts', 'setup_peers.sh')
NAM_DRIVER = os.path.join(REPO, 'benchmarks', 'nam_peer.py')
PRESET_CASES = ('overdrive', 'compressor', 'lowpass', 'fuzz', 'tube_cab', 'comp_drive')
SEED_CASES = ('seed/lowpass', 'seed/pedals', 'seed/pedals:B')
DEFAULT_BUDGET_SECONDS = 540.0     # 9 minutes
PROTOCOL_TEST_TAIL = {'A': 1.0, 'B': 0.4}
HEADERS = ['case', 'row', 'ESR dB', 'vs nam dB', 'MRSTFT', 'RMSE', 'fit s', 'steps', 'params']


def parse_case(text: str):
  """``[seed/]EFFECT[:A|B]`` -> (data set 'presets' or 'seed', effect, protocol)."""
  name, _, protocol = text.partition(':')
  protocol = protocol or 'A'
  if protocol not in PROTOCOL_TEST_TAIL:
    raise ValueError(f'case {text!r}: protocol must be A or B')
  source, _, effect = name.rpartition('/')
  source = source or 'presets'
  if source not in ('presets', 'seed'):
    raise ValueError(f'case {text!r}: data set must be empty (the presets) or seed/')
  return source, effect, protocol


def case_data(source: str, effect: str, scratch: str, data_dir: str) -> str:
  from benchmarks.common import default_data, seed_audio_dir
  if source == 'seed':
    seed = seed_audio_dir()
    if not seed:
      raise SystemExit('peers: ../shared/seed-audio is missing (needed for seed/ cases)')
    return seed
  return default_data(effect, scratch, data_dir)


def pipeline_config(data: str, effect: str, protocol: str, out: str):
  from pipeline.configs import PipelineConfig
  return PipelineConfig(data_dir=data, effect=effect, output_dir=out,
                        test_tail=PROTOCOL_TEST_TAIL[protocol], esr_threshold_db=100.0,
                        max_regression_db=100.0)


def load_case(config):
  """(training tracks, test tracks) exactly as the pipeline's report reads them."""
  from pipeline.report import evaluation
  return evaluation.load_pairs({'input_base': config.data_path, 'effect': config.effect,
                            'test_patterns': config.test_patterns,
                            'test_tail': config.test_tail})


def fresh_tests(config):
  return load_case(config)[1]


def linear_rows(config):
  from pipeline.report import evaluation
  training, tests = load_case(config)
  start = time.time()
  fir = evaluation.fir_references(training, tests)[('', '')]
  fir.update(train_seconds=time.time() - start, params=evaluation.FIR_TAPS)
  identity = evaluation.identity_references(tests)[('', '')]
  identity.update(train_seconds=0.0, params=0)
  return {'identity': identity, 'fir': fir}


def parse_variant(text: str):
  """``LABEL=JSON`` -> (label, TrainConfig overrides with a 'model')."""
  label, sep, values = text.partition('=')
  try:
    overrides = json.loads(values) if sep else None
  except json.JSONDecodeError as e:
    raise ValueError(f'--variant {text!r}: the values after "=" are not JSON ({e})') from e
  if not label or not isinstance(overrides, dict):
    raise ValueError(f'--variant {text!r}: expected LABEL={{"name": value, ...}}')
  return label, {'model': label.split('+')[0], **overrides}


def split_overrides(overrides):
  """A row's values -> (PipelineConfig values, TrainConfig values): a name only the
  pipeline has (``capture_settings``) goes to the pipeline, every other to the Trainer."""
  import dataclasses
  from pipeline.configs import PipelineConfig
  from trainer.config import TrainConfig
  pipeline_only = ({f.name for f in dataclasses.fields(PipelineConfig)}
                   - {f.name for f in dataclasses.fields(TrainConfig)})
  return ({k: v for k, v in overrides.items() if k in pipeline_only},
          {k: v for k, v in overrides.items() if k not in pipeline_only})


def row_configs(config, model: str, budget: float, overrides, label: str = ''):
  """(PipelineConfig, TrainConfig) of one fxemu row: ``config`` with the row's pipeline
  values and its run directory ``fxemu/LABEL`` (default: the model), and the Trainer's
  config with the budget. ValueError names a bad value or an unknown name."""
  import dataclasses
  from trainer.config import TrainConfig
  pipeline_values, train_values = split_overrides(overrides)
  run_config = dataclasses.replace(
      config, output_dir=os.path.join(config.output_dir, 'fxemu', label or model),
      **pipeline_values)
  try:
    train = TrainConfig(**{**train_values, 'model': model, 'train_seconds': budget})
  except TypeError as e:   # a name TrainConfig does not have
    raise ValueError(f'TrainConfig: {e}') from e
  return run_config, train


def fxemu_row(config, model: str, budget: float, overrides, label: str = ''):
  """Trains ``model`` through the pipeline with the budget, in the run directory
  ``fxemu/LABEL`` (default: the model); scores it like every row."""
  from pipeline import local_runner
  from pipeline.report import evaluation
  from pipeline import results
  run_config, train = row_configs(config, model, budget, overrides, label)
  local_runner.run(run_config, train)
  result = results.read_run(run_config.metadata_path, run_config.pipeline_name)
  model_dir = os.path.join(result.model_uri, 'Format-Serving')
  tests = fresh_tests(config)
  evaluation.predict(model_dir, tests)
  row = evaluation.model_figures(tests)[('', '')]
  with open(os.path.join(model_dir, 'assets', contract.MODEL_INFO_FILE)) as f:
    row['params'] = int(json.load(f).get('parameter_count', 0))
  row['train_seconds'] = next((s.seconds for s in result.stages if s.name == 'Trainer'),
                              float('nan'))
  training = results.training_summary(result)
  row['fit_seconds'] = training.get('fit_seconds')   # what the budget governs
  row['steps'] = training.get('steps_run')
  row['settings'] = training.get('hyperparameters') or {}   # the capture check's, or none
  row['evaluator_esr_db'] = result.metrics['overall']['esr_db']
  return row


def ensure_peer_env() -> str:
  """The peer environment's python (made by scripts/setup_peers.sh on first use)."""
  subprocess.run(['bash', PEER_SETUP], check=True)
  return os.path.join(PEER_VENV, 'bin', 'python')


def nam_job(config, training, tests, budget: float, workdir: str):
  """Writes NAM's inputs: the training tracks cut into the pipeline's train/eval blocks
  (contiguous mono stretches, so no window spans a cut) and the test tracks, as 16-bit
  PCM (the recordings' own format, so no value changes). Returns the job dict."""
  from components.audio import split_plan
  from components.audio import wav
  from pipeline.pipeline import example_gen_properties
  props = example_gen_properties(config)
  spec = split_plan.WindowSpec(window=props['window_samples'], hop=props['hop_samples'],
                               context=props['context_samples'],
                               block=props['block_samples'], eval_period=props['eval_period'])
  os.makedirs(workdir, exist_ok=True)
  job = {'train': [], 'validation': [], 'test': [], 'seconds': budget,
         'outdir': os.path.join(workdir, 'nam'), 'seed': 0}
  rate = config.sample_rate
  for index, (dry, wet) in enumerate(training):
    labels = split_plan.block_splits(len(dry), spec)
    run = 0
    for b in range(1, len(labels) + 1):
      if b == len(labels) or labels[b] != labels[run]:
        lo, hi = run * spec.block, min(b * spec.block, len(dry))
        stem = os.path.join(workdir, f'track{index}-{lo}')
        wav.write_wav(stem + '-x.wav', dry[lo:hi, None], rate)
        wav.write_wav(stem + '-y.wav', wet[lo:hi, None], rate)
        job['validation' if labels[run] else 'train'].append(
            {'x': stem + '-x.wav', 'y': stem + '-y.wav'})
        run = b
  for track in tests:
    for c in range(track.dry.shape[1]):
      stem = os.path.join(workdir, f'test-{track.name}-{c}')
      wav.write_wav(stem + '-x.wav', track.dry[:, c:c + 1], rate)
      job['test'].append({'x': stem + '-x.wav', 'out': stem + '-nam.wav',
                          'track': track.name, 'channel': c})
  return job


def nam_rows(config, budget: float, workdir: str, seed: int = 0):
  """Trains NAM (torch seeded with ``seed``) on the case's training audio and scores each
  submodel on the test audio."""
  from pipeline.report import evaluation
  python = ensure_peer_env()
  training, _ = load_case(config)
  job = nam_job(config, training, fresh_tests(config), budget, workdir)
  job['seed'] = seed
  job_path = os.path.join(workdir, 'job.json')
  with open(job_path, 'w') as f:
    json.dump(job, f, indent=1)
  log_path = os.path.join(workdir, 'nam.log')
  with open(log_path, 'w') as log:
    done = subprocess.run([python, NAM_DRIVER, job_path], stdout=log, stderr=subprocess.STDOUT,
                          check=False)
  if done.returncode:
    raise SystemExit(f'peers: NAM failed (exit {done.returncode}); see {log_path}')
  rows = {}
  result = read_nam_result(job)
  for name, tests in nam_predictions(config, job, result).items():
    row = evaluation.model_figures(tests)[('', '')]
    row.update(fit_seconds=result['train_seconds'], params=result['parameters'][name],
               steps=result['steps'], epochs=result['epochs'])
    rows[f'nam_{name}'] = row
  best = min(rows, key=lambda name: rows[name]['esr_db'])
  rows['nam'] = {**rows[best], 'submodel': best}
  return rows


def read_nam_result(job):
  """NAM's ``nam_result.json`` of a job (see benchmarks/nam_peer.py), with
  ``parameters``: {submodel: parameter count}."""
  with open(os.path.join(job['outdir'], 'nam_result.json')) as f:
    result = json.load(f)
  result['parameters'] = {sub['name']: sub['parameters'] for sub in result['submodels']}
  return result


def nam_predictions(config, job, result=None):
  """{submodel: the case's test tracks with ``predicted`` filled by that NAM submodel}
  (test parts only, as :func:`pipeline.report.evaluation.fill_predictions` leaves them),
  read from a finished NAM job (``job.json`` in a NAM run directory of this benchmark)."""
  import numpy as np
  from components.audio import wav
  from pipeline.report import evaluation
  result = result or read_nam_result(job)
  out = {}
  for sub in result['submodels']:
    by_track = {}
    for test, path in zip(job['test'], sub['predictions']):
      by_track.setdefault(test['track'], {})[test['channel']] = wav.read_wav(path)[0][:, 0]
    tests = fresh_tests(config)

    def whole(track, by_track=by_track):
      return np.stack([by_track[track.name][c] for c in range(track.dry.shape[1])], axis=1)
    evaluation.fill_predictions(tests, whole)
    out[sub['name']] = tests
  return out


def seed_label(name: str, seed: int, seeds: int, mark: str = '#') -> str:
  """What seed ``seed``'s run of ``name`` is called among ``seeds`` runs: ``name`` when it
  is the only one, else ``name + mark + seed`` (rows ``NAME#S``, run directories
  ``NAME-seedS`` with ``mark='-seed'``)."""
  return name if seeds == 1 else f'{name}{mark}{seed}'


def seeded_rows(name: str, runs: Sequence[Mapping[str, Any]]):
  """The rows of one setting trained once per seed: ``NAME#S`` for seed S's run and
  ``NAME``, their mean (ESR, RMSE and MRSTFT averaged in the units shown, dB for ESR; fit
  seconds and steps averaged), with ``esr_db_min``, ``esr_db_max`` and ``seeds``. One run
  is returned as ``NAME`` alone."""
  if len(runs) == 1:
    return {name: dict(runs[0])}
  rows = {seed_label(name, seed, len(runs)): dict(run) for seed, run in enumerate(runs)}
  esr = [run['esr_db'] for run in runs]
  mean = {key: statistics.fmean(run.get(key) or 0.0 for run in runs)
          for key in ('esr_db', 'rmse', 'mrstft', 'fit_seconds', 'steps')}
  mean.update(esr_db_min=min(esr), esr_db_max=max(esr), seeds=len(runs),
              params=runs[0].get('params', 0))
  rows[name] = mean
  return rows


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--case', action='append',
                      help='[seed/]EFFECT[:A|B], repeatable (default: every preset and seed case)')
  parser.add_argument('--budget-seconds', type=float, default=DEFAULT_BUDGET_SECONDS,
                      help='wall-clock training budget of every trained row, s (default 540)')
  parser.add_argument('--models', default='hybrid,conv',
                      help='comma-separated fxemu models (TrainConfig.model), trained in turn')
  parser.add_argument('--variant', action='append', default=[], metavar='LABEL=JSON',
                      help='one more fxemu row, LABEL, with these TrainConfig values over '
                      '--train (model: the JSON\'s, else LABEL up to its first "+"); '
                      'repeatable')
  parser.add_argument('--train', default='{}', help='JSON of extra TrainConfig overrides')
  parser.add_argument('--peers', default='nam', choices=('nam', 'none'))
  parser.add_argument('--seeds', type=int, default=1,
                      help='train every trained row (fxemu and NAM) this many times, with '
                      'seeds S, S + 1, ... (S: the row\'s "seed", default 0): rows NAME#0, '
                      'NAME#1, ..., and NAME = their mean ESR (dB), with its min and max in '
                      '--json; one setting varies by ~2 dB between runs on seed/pedals')
  parser.add_argument('--data', default='', help='directory of the preset data (default: '
                      'work/data if it holds the effect, else synthesized)')
  parser.add_argument('--out', default='work/benchmarks/peers', help='runs and NAM work files')
  parser.add_argument('--json', action='store_true', help='last line: JSON of the figures')
  args = parser.parse_args(argv)
  quiet_tensorflow()
  cases = args.case or list(PRESET_CASES + SEED_CASES)
  models = [m for m in args.models.split(',') if m]
  overrides = json.loads(args.train)
  try:
    variants = [parse_variant(v) for v in args.variant]
  except ValueError as e:
    parser.error(str(e))
  if args.seeds < 1:
    parser.error(f'--seeds {args.seeds}: must be at least 1')
  seeds = range(args.seeds)
  settings = [(model, model, overrides) for model in models]
  settings += [(label, values['model'], {**overrides, **values}) for label, values in variants]
  from pipeline.configs import PipelineConfig
  for label, model, values in settings:   # before any training: a typo costs nothing
    try:
      row_configs(PipelineConfig(), model, args.budget_seconds, values)
    except ValueError as e:
      parser.error(f'row {label}: {e}')
  figures, rows = {}, []
  for case in cases:
    source, effect, protocol = parse_case(case)
    out = os.path.join(args.out, case.replace('/', '-').replace(':', '-'))
    data = case_data(source, effect, os.path.join(args.out, 'scratch'), args.data)
    config = pipeline_config(data, effect, protocol, out)
    per_row = linear_rows(config)
    for label, model, values in settings:
      per_row.update(seeded_rows(label, [
          fxemu_row(config, model, args.budget_seconds,
                    {**values, 'seed': int(values.get('seed', 0)) + seed},
                    seed_label(label, seed, args.seeds, '-seed'))
          for seed in seeds]))
    if args.peers == 'nam':
      runs = [nam_rows(config, args.budget_seconds,
                       os.path.join(out, seed_label('nam', seed, args.seeds, '-seed')),
                       int(overrides.get('seed', 0)) + seed)
              for seed in seeds]
      for seed, run in enumerate(runs):   # each submodel's rows, then NAM's best
        per_row.update({seed_label(name, seed, args.seeds): row
                        for name, row in run.items() if name != 'nam'})
      per_row.update(seeded_rows('nam', [run['nam'] for run in runs]))
    figures[case] = per_row
    reference = per_row.get('nam', {}).get('esr_db')
    for name, row in per_row.items():
      rows.append([case, name, row['esr_db'],
                   '' if reference is None else row['esr_db'] - reference,
                   row['mrstft'], row['rmse'], row.get('fit_seconds') or 0.0,
                   row.get('steps') or 0, row.get('params', 0)])
    print_table(HEADERS, [r for r in rows if r[0] == case])
    print(flush=True)
  print('all cases (fit s: wall-clock training time, the budgeted part; fxemu\'s Trainer also '
        'reads, initialises and exports):')
  print_table(HEADERS, rows)
  if args.json:
    emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
