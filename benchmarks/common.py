"""Helpers shared by the benchmark scripts: table printing and the --json convention."""
from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Sequence


def quiet_tensorflow() -> None:
  """Quiet TensorFlow's logs, and TensorFlow configured as fxemu's entry points configure
  it (importing :mod:`trainer` turns on the oneDNN CPU kernels before TensorFlow loads)."""
  import trainer  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('PYTHONWARNINGS', 'ignore')
  import warnings
  warnings.filterwarnings('ignore')
  import logging
  import absl.logging
  absl.logging.set_verbosity(absl.logging.ERROR)
  logging.getLogger().setLevel(logging.ERROR)


def print_table(headers: Sequence[str], rows: List[Sequence], out=None) -> None:
  """A plain aligned text table (on ``out``, default: the current sys.stdout)."""
  out = out or sys.stdout
  cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
  widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
  for index, row in enumerate(cells):
    print('  '.join(c.rjust(w) if index else c.ljust(w) for c, w in zip(row, widths)), file=out)
    if index == 0:
      print('  '.join('-' * w for w in widths), file=out)


def _cell(value) -> str:
  if isinstance(value, float):
    return f'{value:.4g}' if abs(value) < 1e-3 and value else f'{value:.3f}'
  return str(value)


def emit_json(figures: Dict) -> None:
  """The last line of stdout: one JSON object of the same figures as the table."""
  sys.stdout.flush()
  print(json.dumps(figures, sort_keys=True))


def add_runtime_flags(parser) -> None:
  """The flags every benchmark shares: TensorFlow threads and --json."""
  parser.add_argument('--intra-op-threads', type=int, default=0, metavar='N',
                      help='TensorFlow threads per operation (sets TF_NUM_INTRAOP_THREADS, '
                      'also for the server subprocess; 0 = TensorFlow\'s default)')
  parser.add_argument('--json', action='store_true',
                      help='end with one line of JSON holding every figure')


def apply_runtime_flags(args) -> None:
  """Sets the thread count before TensorFlow starts (it is imported lazily)."""
  if args.intra_op_threads:
    os.environ['TF_NUM_INTRAOP_THREADS'] = str(args.intra_op_threads)


def example_gen_props(data_dir: str, effect: str, **overrides) -> Dict:
  """AudioExampleGen execution properties as the pipeline sets them (PipelineConfig
  defaults: 0.5 s windows, 0.25 s hop and context, 2 s blocks), for ``effect`` in
  ``data_dir``; ``overrides`` are PipelineConfig fields."""
  from pipeline.configs import PipelineConfig  # pylint: disable=import-outside-toplevel
  from pipeline.pipeline import example_gen_properties  # pylint: disable=import-outside-toplevel
  props = example_gen_properties(PipelineConfig(data_dir=data_dir, effect=effect, **overrides))
  props['align'] = int(props['align'])   # the executor reads integer properties
  return props


def run_example_gen(props: Dict, out_dir: str, beam_args: Sequence[str]):
  """Runs the AudioExampleGen executor on Beam; returns the Examples artifact."""
  from tfx.dsl.components.base import base_beam_executor  # pylint: disable=import-outside-toplevel
  from tfx.types import standard_artifacts  # pylint: disable=import-outside-toplevel
  from components import audio_example_gen  # pylint: disable=import-outside-toplevel
  examples = standard_artifacts.Examples()
  examples.uri = out_dir
  context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))
  audio_example_gen.Executor(context).Do({}, {'examples': [examples]}, props)
  return examples


def default_data(effect: str, scratch: str, data_dir: str = '') -> str:
  """A directory holding the default data set's pairs of ``effect``.

  ``data_dir`` if given; else ``work/data`` of the repository if it holds the effect
  (what ``fxemu synth`` / ``make run`` made); else the default data of ``effect`` is
  synthesized into ``scratch/data`` (needs libfluidsynth for the piano).
  """
  from components.audio import pairs as pairs_lib  # pylint: disable=import-outside-toplevel
  if data_dir:
    return data_dir
  repo_data = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'work', 'data')
  try:
    if pairs_lib.find_pairs(repo_data, effect):
      return repo_data
  except Exception:  # pylint: disable=broad-except  (missing folder, no pairs)
    pass
  from components.datagen import synth  # pylint: disable=import-outside-toplevel
  out = os.path.join(scratch, 'data')
  print(f'synthesizing the default {effect} data into {out} ...', file=sys.stderr, flush=True)
  synth.synthesize(out, effects=(effect,), progress=False)
  return out


def audio_seconds(data_dir: str, effect: str) -> float:
  """Seconds of (stereo) audio in the pre sides of ``effect``'s pairs."""
  from components.audio import pairs as pairs_lib  # pylint: disable=import-outside-toplevel
  from components.audio import wav  # pylint: disable=import-outside-toplevel
  return sum(wav.read_info(p.pre_path).duration for p in pairs_lib.find_pairs(data_dir, effect))


def dir_bytes(path: str) -> int:
  """Total size of the files under ``path``."""
  return sum(os.path.getsize(os.path.join(root, name))
             for root, _, names in os.walk(path) for name in names)


def seed_audio_dir() -> str:
  """``../shared/seed-audio`` next to the repository (the original recordings), or ''."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), 'shared', 'seed-audio')
  return path if os.path.isdir(path) else ''
