"""``fxemu check DATA_DIR``: can these recordings teach a model? Answered before training.

    fxemu check DATA_DIR [--effect E] [--align] [--max-latency-seconds S] [--json]

Runs the capture check (:mod:`components.audio.capture_check`) on every pair of a data
directory, as the pipeline's AudioExampleGen does, and prints one line of figures per
pair, then the errors, warnings and notes, each naming the file and what to change.
Exits 1 if any pair has an error (the pipeline would stop before training on it), 0
otherwise. The options mean what they mean for ``fxemu run``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from typing import List, Sequence

from components.audio import capture_check
from components.audio import pairs as pairs_lib
from components.audio import split_plan
from pipeline.configs import PipelineConfig
from pipeline.flags import field_default


def _default(name: str):
  return field_default(next(f for f in dataclasses.fields(PipelineConfig) if f.name == name))


def settings_for(config: PipelineConfig) -> capture_check.CheckSettings:
  """The check's settings for a pipeline configuration (what ``fxemu run`` would do)."""
  return capture_check.CheckSettings(
      max_latency_samples=config.samples(config.max_latency_seconds), align=config.align,
      context_samples=config.samples(config.context_seconds), sample_rate=config.sample_rate)


def report_lines(checks: Sequence[capture_check.PairCheck]) -> List[str]:
  """The table and the findings, as ``fxemu check`` prints them."""
  lines = capture_check.format_table(checks)
  for severity, title in ((capture_check.ERROR, 'errors (the run stops before training)'),
                          (capture_check.WARNING, 'warnings'),
                          (capture_check.INFO, 'notes')):
    found = [f.message for c in checks for f in c.findings if f.severity == severity]
    if found:
      lines += ['', f'{title}:'] + [f'  {message}' for message in found]
  errors = sum(c.verdict == capture_check.ERROR for c in checks)
  warned = sum(c.verdict == capture_check.WARNING for c in checks)
  lines += ['', f'{len(checks)} pairs: {len(checks) - errors - warned} ok, {warned} with '
            f'warnings, {errors} with errors']
  return lines


def summary_lines(summary: dict, allowed: bool = False) -> List[str]:
  """The capture check's warnings (and errors let through by --allow-unlearnable) from an
  examples summary, for the end of ``fxemu run``; empty when there are none."""
  check = summary.get('check') or {}
  lines = [f'  {m}' for m in check.get('errors', [])] if allowed else []
  lines += [f'  {m}' for m in check.get('warnings', [])]
  return ['capture check:'] + lines if lines else []


def run_check_command(args) -> int:
  config = PipelineConfig(data_dir=args.data_dir, effect=args.effect or 'all',
                          align=args.align, max_latency_seconds=args.max_latency_seconds,
                          sample_rate=args.sample_rate, context_seconds=args.context_seconds,
                          test_pattern=args.test_pattern, test_tail=args.test_tail)
  try:
    split_plan.check_test_tail(config.test_tail)
    pairs = pairs_lib.find_pairs(args.data_dir, args.effect or None)
  except (pairs_lib.PairError, ValueError) as e:
    print(f'fxemu check: error: {e}', file=sys.stderr)
    return 2
  settings = settings_for(config)
  checks = []
  for pair in pairs:
    checks.append(capture_check.check_pair(pair, settings))
  patterns = config.test_patterns
  capture_check.add_level_coverage_findings(
      checks, lambda c: pairs_lib.matches_any(c.name, patterns), config.test_tail)
  if args.json:
    print(json.dumps(capture_check.summarize(checks), indent=1, sort_keys=True))
  else:
    which = f'effect {args.effect}' if args.effect else 'all effects'
    print(f'capture check of {args.data_dir} ({which}; latency searched over '
          f'+-{args.max_latency_seconds:g} s, {"--align" if args.align else "no --align"}):')
    print('\n'.join(report_lines(checks)))
  return 1 if any(c.verdict == capture_check.ERROR for c in checks) else 0


def add_check_command(subparsers) -> None:
  """Adds ``fxemu check DATA_DIR`` to an argparse subparsers object."""
  parser = subparsers.add_parser(
      'check', help='check that recordings can teach a model, before training',
      description='Check every dry/wet pair of a data directory, as the pipeline does '
      'before training: latency (GCC-PHAT: its sign, confidence, and whether it lies '
      'inside the search range), coherence per band, held-out ESR of output = input, of a '
      'least-squares FIR and of a tiny nonlinear fit, lag/gain/phase swings over time '
      '(modulated effects, drifting clocks), clipping, DC offset, noise floor, and the '
      'repeatability of a repeated segment, and whether the test recordings\' levels lie '
      'within the training recordings\'. Prints the figures and every finding with '
      'the file and what to change; exits 1 if a pair has an error.')
  parser.add_argument('data_dir', metavar='DATA_DIR',
                      help='directory of "EFFECT - pre|post - NAME.wav" pairs')
  parser.add_argument('--effect', default='', help='check only this EFFECT (default: all)')
  parser.add_argument('--align', action='store_true',
                      help='judge the pairs as `fxemu run --align` would use them (the '
                      'latency is trimmed, so only its range and confidence matter)')
  parser.add_argument('--max-latency-seconds', type=float,
                      default=_default('max_latency_seconds'), metavar='S',
                      help='latency search range, +-s (default: '
                      f'{_default("max_latency_seconds")})')
  parser.add_argument('--context-seconds', type=float, default=_default('context_seconds'),
                      metavar='S', help='dry context of each example, s: the latency a model '
                      f'can absorb without --align (default: {_default("context_seconds")})')
  parser.add_argument('--sample-rate', type=int, default=_default('sample_rate'),
                      metavar='HZ', help='sample rate every file must have (default: '
                      f'{_default("sample_rate")})')
  parser.add_argument('--test-pattern', default=_default('test_pattern'), metavar='GLOBS',
                      help='pairs whose NAME matches are the test set, as for `fxemu run`: '
                      'their levels are compared with the training pairs\' (default: '
                      f'{_default("test_pattern")})')
  parser.add_argument('--test-tail', type=float, default=_default('test_tail'),
                      metavar='FRACTION', help='fraction at the end of each test recording '
                      'that is test, as for `fxemu run`: below 1 the rest trains, so the test '
                      f'recordings\' levels are covered (default: {_default("test_tail")})')
  parser.add_argument('--json', action='store_true',
                      help='print the figures and findings as JSON instead')
  parser.set_defaults(func=run_check_command)

