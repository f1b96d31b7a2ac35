"""Training to quality: wall time for the default model to reach a test ESR threshold.

    python benchmarks/train_to_quality.py [--data ../shared/seed-audio] [--effect lowpass]
                                          [--threshold-db -40] [--epochs 5] [--json]

What runs (a direct ``trainer.model.run_fn`` call, not a pipeline run): the
AudioExampleGen (in-process Beam) makes the examples of ``--effect`` from ``--data``
(default: the original recordings in ``../shared/seed-audio``; windows, splits and test
pattern as the pipeline's defaults, so the piano piece is the test split), then
``run_fn`` trains the default model (TrainConfig defaults; ``--epochs`` caps the epochs,
0 = the default 50 with early stopping) and exports it.

Timeline: a Keras callback added to ``run_fn``'s ``model.fit`` scores the test split (the
whole piano piece, both channels: ESR = sum of squared error / sum of squared target)
when training starts (after the least-squares FIR initialisation) and after every epoch;
the time those probes take is taken out of the timeline. Time to threshold = ingest +
trainer time until the first probe at or below ``--threshold-db`` (goal: <= 5 minutes).
At the end the exported SavedModel is scored on the whole piano files as ``fxemu apply``
would process them. With ``--json`` the last line of stdout is one JSON object of the
figures.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from schema import contract  # noqa: E402


class TestProbe:
  """Scores the test split at train begin and every epoch end; pauses the clock meanwhile."""

  def __init__(self, test_files: str, config, start: float):
    self.test_files, self.config, self.start = test_files, config, start
    self.paused = 0.0
    self.points: List[Dict] = []
    self._dataset = None

  def elapsed(self) -> float:
    return time.perf_counter() - self.start - self.paused

  def score(self, model, epoch: int) -> None:
    from components.audio import dsp  # pylint: disable=import-outside-toplevel
    from trainer import data  # pylint: disable=import-outside-toplevel
    from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
    at = self.elapsed()
    begin = time.perf_counter()
    if self._dataset is None:
      self._dataset = data.make_dataset(self.test_files, self.config, 16, training=False,
                                        crop=model_lib.input_crop(self.config))
    sums = dsp.ErrorSums()
    for dry, wet in self._dataset:
      sums.add(wet.numpy(), model(dry, training=False).numpy(), stft=False)
    self.points.append({'epoch': epoch, 'seconds': at, 'test_esr_db': sums.esr_db()})
    self.paused += time.perf_counter() - begin

  def callback(self):
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    probe = self

    class _Probe(keras.callbacks.Callback):
      def on_train_begin(self, logs=None):
        probe.score(self.model, 0)

      def on_epoch_end(self, epoch, logs=None):
        probe.score(self.model, epoch + 1)
    return _Probe()


@contextlib.contextmanager
def extra_fit_callback(callback):
  """Adds ``callback`` to every ``tf_keras.Model.fit`` call inside the block."""
  import tf_keras as keras  # pylint: disable=import-outside-toplevel
  original = keras.Model.fit

  def fit(self, *args, callbacks=None, **kwargs):
    return original(self, *args, callbacks=list(callbacks or []) + [callback], **kwargs)
  keras.Model.fit = fit
  try:
    yield
  finally:
    keras.Model.fit = original


def whole_file_esr_db(model_dir: str, data_dir: str, effect: str) -> float:
  """ESR (dB) of the exported model over the whole test recordings, all channels."""
  from pipeline.report import evaluation  # pylint: disable=import-outside-toplevel
  from pipeline.configs import PipelineConfig  # pylint: disable=import-outside-toplevel
  _, tests = evaluation.load_pairs({'input_base': data_dir, 'effect': effect,
                                'test_patterns': PipelineConfig().test_patterns,
                                'test_tail': 1.0})
  evaluation.predict(model_dir, tests)
  return evaluation.model_figures(tests)[('', '')]['esr_db']


def measure(data_dir: str, effect: str, scratch: str, epochs: int, threshold_db: float,
            overrides: Dict) -> Dict:
  from tfx.components.trainer.fn_args_utils import FnArgs  # pylint: disable=import-outside-toplevel
  from benchmarks.input_pipeline import train_config  # pylint: disable=import-outside-toplevel
  from pipeline.configs import PipelineConfig  # pylint: disable=import-outside-toplevel
  from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
  examples = os.path.join(scratch, 'examples')
  start = time.perf_counter()
  common.run_example_gen(common.example_gen_props(data_dir, effect), examples,
                         ['--direct_running_mode=in_memory'])
  ingest_seconds = time.perf_counter() - start
  if epochs:
    overrides = dict(overrides, epochs=epochs)
  config = train_config(overrides.pop('model', 'conv'), **overrides)
  fn_args = FnArgs(
      custom_config=config.to_custom_config(),
      train_files=[os.path.join(examples, 'Split-train', '*')],
      eval_files=[os.path.join(examples, 'Split-eval', '*')],
      train_steps=PipelineConfig().train_steps, eval_steps=None,
      model_run_dir=os.path.join(scratch, 'model_run'),
      serving_model_dir=os.path.join(scratch, 'serving'))
  start = time.perf_counter()
  probe = TestProbe(os.path.join(examples, 'Split-test'), config, start)
  with extra_fit_callback(probe.callback()):
    model_lib.run_fn(fn_args)
  trainer_seconds = time.perf_counter() - start - probe.paused
  with open(os.path.join(fn_args.model_run_dir, contract.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  reached = next((p for p in probe.points if p['test_esr_db'] <= threshold_db), None)
  final_db = whole_file_esr_db(fn_args.serving_model_dir, data_dir, effect)
  return {
      'effect': effect, 'data': data_dir, 'model': config.model,
      'parameters': summary.get('parameter_count'),
      'threshold_db': threshold_db, 'epochs_run': summary.get('epochs_run'),
      'steps_run': summary.get('steps_run'),
      'ingest_seconds': ingest_seconds, 'trainer_seconds': trainer_seconds,
      'probe_seconds': probe.paused, 'total_seconds': ingest_seconds + trainer_seconds,
      'reached': reached is not None,
      'trainer_seconds_to_threshold': reached['seconds'] if reached else None,
      'seconds_to_threshold': ingest_seconds + reached['seconds'] if reached else None,
      'epoch_at_threshold': reached['epoch'] if reached else None,
      'best_test_esr_db': min(p['test_esr_db'] for p in probe.points),
      'final_whole_file_esr_db': final_db,
      'timeline': probe.points,
      'val_esr_db': summary.get('history', {}).get('val_esr_db', []),
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='', help='recordings (default: ../shared/seed-audio)')
  parser.add_argument('--effect', default='lowpass')
  parser.add_argument('--threshold-db', type=float, default=-40.0)
  parser.add_argument('--epochs', type=int, default=5,
                      help='epoch limit (default: 5; 0 = the TrainConfig default)')
  parser.add_argument('--train', default='{}', help='JSON of extra TrainConfig overrides')
  parser.add_argument('--goal-seconds', type=float, default=300.0)
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  common.quiet_tensorflow()
  data_dir = args.data or common.seed_audio_dir()
  if not data_dir:
    parser.error('no --data and ../shared/seed-audio is missing')
  with tempfile.TemporaryDirectory(prefix='fxemu-quality-') as scratch:
    f = measure(data_dir, args.effect, scratch, args.epochs, args.threshold_db,
                json.loads(args.train))
  print(f'\n{f["model"]} model ({f["parameters"]:,} parameters) on {args.effect} from '
        f'{data_dir}: {f["epochs_run"]} epochs, {f["steps_run"]} steps; test = the piano '
        f'piece, both channels; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
  common.print_table(['after', 'epoch', 'wall s (ingest + trainer)', 'test ESR dB'],
                     [['ingest (Beam in_memory)', '', f['ingest_seconds'], '']] +
                     [['FIR init' if p['epoch'] == 0 else f'epoch {p["epoch"]}', p['epoch'],
                       f['ingest_seconds'] + p['seconds'], p['test_esr_db']]
                      for p in f['timeline']])
  goal = args.goal_seconds
  reached = (f'{f["seconds_to_threshold"]:.1f} s (epoch {f["epoch_at_threshold"]}; goal '
             f'<= {goal:.0f} s: {"met" if f["seconds_to_threshold"] <= goal else "missed"})'
             if f['reached'] else 'not reached')
  print(f'\ntime to test ESR <= {args.threshold_db:g} dB: {reached}')
  print(f'total: {f["total_seconds"]:.1f} s (ingest {f["ingest_seconds"]:.1f} s + run_fn '
        f'{f["trainer_seconds"]:.1f} s incl. export; test probes took {f["probe_seconds"]:.1f} s '
        f'more, not counted)')
  print(f'exported model, whole piano files: ESR {f["final_whole_file_esr_db"]:.2f} dB')
  if args.json:
    f.update(benchmark='train_to_quality', goal_seconds=goal, cpus=os.cpu_count(),
             load_average=os.getloadavg()[0])
    common.emit_json(f)
  return 0


if __name__ == '__main__':
  sys.exit(main())
