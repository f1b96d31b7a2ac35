"""Helpers shared by the benchmark scripts: table printing and the --json convention."""
from __future__ import annotations

import json
import os
import sys
from typing import Dict, List, Sequence


def quiet_tensorflow() -> None:
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('PYTHONWARNINGS', 'ignore')
  import warnings
  warnings.filterwarnings('ignore')
  import logging
  import absl.logging
  absl.logging.set_verbosity(absl.logging.ERROR)
  logging.getLogger().setLevel(logging.ERROR)


def print_table(headers: Sequence[str], rows: List[Sequence], out=sys.stdout) -> None:
  """A plain aligned text table."""
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
