"""``fxemu report [RUN]``: the HTML report of a pipeline run (:mod:`pipeline.report.run_report`)."""
from __future__ import annotations

import sys

from pipeline.configs import DEFAULT_OUTPUT_DIR
from pipeline.report import run_report

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
    path = run_report.write_report(run_report.locate_run(args.run, args.output_dir, args.effect), args.out)
  except (FileNotFoundError, OSError) as e:
    print(f'fxemu report: error: {e}', file=sys.stderr)
    return 1
  print(f'report: {path}')
  return 0

