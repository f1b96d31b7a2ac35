"""The ``fxemu`` command line.

    fxemu synth [--out DIR]          make the default data set (dry signals + effect presets)
    fxemu check DATA_DIR             check that recordings can teach a model, before training
    fxemu run [options]              run the whole pipeline locally and print the results
    fxemu report [RUN]               write the HTML report of the latest run
    fxemu apply MODEL in.wav out.wav run audio through a pushed model (or a serving URL)
    fxemu serve MODEL_BASE           serve a model directory with TF Serving's REST API
    fxemu stream MODEL < in > out    stream audio (WAV or raw PCM) through a model, stdin to stdout
    fxemu export --tflite MODEL [OUT] the model's stream signature as TFLite
    fxemu kubeflow compile|upload|run  the same pipeline on Kubeflow Pipelines 2.x

``fxemu COMMAND --help`` explains every option.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import List, Optional
import warnings

import absl.logging

from components import artifact_json
from components.audio import pairs as pairs_lib
from components.datagen import effects as effects_lib
from kubeflow.client import add_kubeflow_command
from pipeline.cli import check
from pipeline.cli.apply_command import add_apply_command
from pipeline.cli.check import add_check_command
from pipeline.cli.progress import bar_text, format_seconds
from pipeline.cli.progress import StatusLine
from pipeline.configs import PipelineConfig
from pipeline.flags import add_dataclass_flags
from pipeline.flags import dataclass_from_flags
from pipeline.flags import flag_text
from pipeline.flags import TRAIN_FIELDS_SET_BY_PIPELINE
from pipeline.cli.serve_command import add_serve_command
from pipeline.cli.stream_command import add_export_command
from pipeline.cli.stream_command import add_stream_command
from trainer.config import TrainConfig


def _quiet(verbose: bool) -> None:
  """TF/TFX/Beam logging: none (our own progress lines and error messages stay), or
  everything with -v. Not even their errors by default: a failing stage makes TFX log
  lines such as ``ERROR:absl:Execution 6 failed.`` before the exception reaches us, and
  fxemu prints the failure itself, with what to change."""
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  if not verbose:
    # 3: also the harmless 'Unable to register cuDNN/cuFFT factory' lines at import.
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    os.environ.setdefault('PYTHONWARNINGS', 'ignore')  # inherited by Beam worker processes
    warnings.filterwarnings('ignore')
  absl.logging.set_verbosity(absl.logging.INFO if verbose else absl.logging.FATAL)
  level = logging.INFO if verbose else logging.CRITICAL
  logging.getLogger().setLevel(level)
  for name in ('absl', 'apache_beam', 'tensorflow', 'tfx', 'ml_metadata',
               'apache_beam.runners.portability.local_job_service'):
    logging.getLogger(name).setLevel(level)
  if not verbose:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    tf.get_logger().setLevel(logging.CRITICAL)


# --- commands ----------------------------------------------------------------------------

def _synth(args) -> int:
  from components.datagen import synth  # start-up: pedalboard, pretty_midi
  effects = [e.strip() for e in args.effects.split(',') if e.strip()]
  paths = synth.synthesize(args.out, effects=effects, plugin=args.plugin,
                           seed=args.seed, progress=not args.quiet, dry_only=args.dry_only,
                           signal_set=args.signals,
                           **({'seconds_per_signal': args.seconds} if args.seconds else {}),
                           **({'piano_seconds': args.piano_seconds} if args.piano_seconds else {}))
  print(f'wrote {len(paths)} files to {args.out}')
  return 0


def ensure_default_data(config) -> None:
  """Makes the default data set in OUTPUT_DIR/data when no data directory was given."""
  if config.data_dir:
    return
  from components.datagen import synth  # start-up: pedalboard, pretty_midi
  try:
    pairs_lib.find_pairs(config.data_path, config.effect)
    return
  except pairs_lib.PairError:
    pass
  if config.effect not in synth.effects.PRESETS:
    raise SystemExit(f'fxemu: no data for effect {config.effect!r} in {config.data_path}, and '
                     f'it is not a built-in preset ({", ".join(sorted(synth.effects.PRESETS))}); '
                     'pass --data-dir')
  print(f'making the default data set of {config.effect} in {config.data_path} ...', flush=True)
  synth.synthesize(config.data_path, effects=(config.effect,))


def _format_db(value: Optional[float]) -> str:
  return '   n/a' if value is None else f'{value:+7.2f}'


def format_stage(stage) -> str:
  return f'  {stage.name:32s} {stage.state:9s} {stage.seconds:7.1f} s'


class StagePrinter:
  """Prints a line per stage as it finishes; on a terminal, the running stage's elapsed
  time on stderr, with a bar against the same stage's last complete run."""

  def __init__(self):
    self.status = StatusLine()
    self.printed = 0

  def on_stage(self, stage) -> None:
    self.status.clear()
    print(format_stage(stage), flush=True)
    self.printed += 1

  def on_running(self, name: str, elapsed: float, last: Optional[float]) -> None:
    estimate = ''
    if last and last > 1:
      estimate = (f' {bar_text(elapsed / last)} ~{min(99, int(100 * elapsed / last))} % of '
                  f'the last run\'s {format_seconds(last)}')
    self.status.show(f'  {name:32s} running   {format_seconds(elapsed):>7s}{estimate}')


def print_run_summary(config, result, stages: bool = True) -> None:
  """The stages with durations (unless already printed live), test metrics next to
  output = input, and where the model went."""
  if stages:
    print('\nstages:')
    for stage in result.stages:
      print(format_stage(stage))
  findings = check.summary_lines(artifact_json.examples_summary(result.examples_uri),
                                 allowed=config.allow_unlearnable)
  if findings:
    print('\n' + '\n'.join(findings))
  from pipeline import results  # pylint: disable=import-outside-toplevel  (start-up: TFX)
  settings = results.training_summary(result).get('hyperparameters')
  if settings:
    print(f'\nthe Trainer took {"the Tuner" if config.tune else "the capture check"}\'s '
          f'settings: {flag_text(settings)}' + ('' if config.tune else
          ' (the test audio plays at levels the capture did not; --no-capture-settings: not)'))
  overall = result.metrics.get('overall', {})
  if overall:
    print(f'\ntest metrics ({config.effect}, test split, all files):')
    print(f'  {"":22s} {"ESR (dB)":>9s} {"RMSE":>9s} {"MRSTFT":>8s}')
    print(f'  {"model":22s} {_format_db(overall.get("esr_db")):>9s} '
          f'{overall.get("rmse", float("nan")):9.5f} {overall.get("mrstft", float("nan")):8.3f}')
    print(f'  {"identity (out = in)":22s} {_format_db(overall.get("identity_esr_db")):>9s} '
          f'{overall.get("identity_rmse", float("nan")):9.5f}')
    per_file = {k: v for k, v in result.metrics.items()
                if k.startswith('source=') and ',' not in k}
    for name, values in sorted(per_file.items()):
      print(f'    {name:20s} {_format_db(values.get("esr_db")):>9s} '
            f'{values.get("rmse", float("nan")):9.5f}   '
            f'(identity {_format_db(values.get("identity_esr_db")).strip()} dB)')
  print(f'\nmodel blessed: {result.blessed}')
  if result.pushed:
    print(f'model pushed to: {result.pushed_destination}')
  else:
    print(f'model NOT pushed (serving directory unchanged: {config.serving_path})')


def _run(args) -> int:
  from pipeline import local_runner  # pylint: disable=import-outside-toplevel  (start-up: TFX)
  from pipeline import results  # pylint: disable=import-outside-toplevel  (start-up: TFX)
  config = dataclass_from_flags(PipelineConfig, args)
  train = dataclass_from_flags(TrainConfig, args)
  ensure_default_data(config)
  if not args.verbose:
    # Keras' per-epoch lines go to (silenced) logging instead of stdout: the run shows a
    # line per stage instead.
    import tf_keras  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    tf_keras.utils.disable_interactive_logging()
  print(f'running pipeline {config.pipeline_name} on {config.data_path} '
        f'(artifacts in {config.pipeline_root})', flush=True)
  start = time.time()
  failure = None
  printer = StagePrinter()
  print('\nstages:', flush=True)
  try:
    local_runner.run(config, train, on_stage=printer.on_stage, on_running=printer.on_running)
  except Exception as e:  # pylint: disable=broad-except
    failure = e
  printer.status.clear()
  try:
    result = results.read_run(config.metadata_path, config.pipeline_name)
    print_run_summary(config, result, stages=not printer.printed)
  except Exception as e:  # pylint: disable=broad-except
    if failure is None:
      raise
    print(f'(no results to show: {e})', file=sys.stderr)
  if failure is not None:
    print(f'\nfxemu: the pipeline failed: {failure}', file=sys.stderr)
    return 1
  print(f'\ndone in {time.time() - start:.0f} s', flush=True)
  if args.report is not False:
    from pipeline.report import run_report as report  # start-up: TFX
    path = report.write_report(report.location_of(config))
    print(f'report: {path}')
  return 0


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='fxemu', description='Learn an audio effect from dry/wet recordings and serve it.')
  parser.add_argument('-v', '--verbose', action='store_true',
                      help='show TensorFlow, TFX and Beam logging')
  commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')

  synth = commands.add_parser(
      'synth', help='make the default data set',
      description='Write dry training signals (the rich capture signal: noise bursts and '
      'sweeps from -60 to 0 dBFS, plucked and struck tones, level ramps and steps, a '
      'poly-saw sweep, a repeated segment; or the classic sine, square, saw, poly-saw and '
      'triangle sweeps), a piano test piece rendered from MIDI, and their wet versions '
      'through each effect, as "EFFECT - pre|post - NAME.wav" (16-bit stereo 44.1 kHz).',
      epilog='effect presets:\n' + '\n'.join(
          f'  {line}' for line in effects_lib.describe_presets().splitlines()),
      formatter_class=argparse.RawDescriptionHelpFormatter)
  synth.add_argument('--out', default=os.path.join('work', 'data'), help='output directory')
  synth.add_argument('--effects', default=','.join(effects_lib.PRESETS),
                     help='comma-separated effect presets to render (see below)')
  synth.add_argument('--signals', default='rich', choices=('rich', 'classic'),
                     help='the training signal set (default: rich)')
  synth.add_argument('--plugin', default=None,
                     help='path of a VST3/AU plugin to render as an extra effect')
  synth.add_argument('--seconds', type=float, default=None,
                     help='length of each synthetic training signal, s')
  synth.add_argument('--piano-seconds', type=float, default=None,
                     help='length of the piano test piece, s')
  synth.add_argument('--seed', type=int, default=0, help='random seed (same seed, same files)')
  synth.add_argument('--dry-only', metavar='EFFECT', default=None,
                     help='write only the dry files, as "EFFECT - pre - NAME.wav", to play '
                     'through a hardware effect and record its output as "EFFECT - post - '
                     'NAME.wav" (re-amping); --effects and --plugin are ignored')
  synth.add_argument('--quiet', action='store_true', help='no progress bar')
  synth.set_defaults(func=_synth)

  run = commands.add_parser(
      'run', help='run the pipeline locally',
      description='Run the whole TFX pipeline with LocalDagRunner and the Beam DirectRunner: '
      'make examples, check them, train, evaluate on the test recordings, push if blessed.')
  add_dataclass_flags(run, PipelineConfig, 'data and pipeline')
  # The window geometry comes from the data flags (seconds), not from samples.
  add_dataclass_flags(run, TrainConfig, 'model and training', skip=TRAIN_FIELDS_SET_BY_PIPELINE)
  # default None (= True): BooleanOptionalAction appends "(default: ...)" itself to the
  # help of a flag whose default is not None, which would print it twice.
  run.add_argument('--report', default=None, action=argparse.BooleanOptionalAction,
                   help='write the HTML report of the run at the end (default: True)')
  run.set_defaults(func=_run)

  from pipeline.cli.report_command import add_report_command  # start-up: TFX
  add_check_command(commands)
  add_report_command(commands)
  add_apply_command(commands)
  add_serve_command(commands)
  add_stream_command(commands)
  add_export_command(commands)
  add_kubeflow_command(commands)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  verbose = '-v' in (argv or sys.argv[1:]) or '--verbose' in (argv or sys.argv[1:])
  _quiet(verbose)
  args = build_parser().parse_args(argv)
  return args.func(args)


if __name__ == '__main__':
  sys.exit(main())
