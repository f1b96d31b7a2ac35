"""Ingest throughput: the AudioExampleGen on Beam against the floor and the I/O limit.

    python benchmarks/ingest.py [--data DIR] [--effect lowpass] [--repeats 1] [--json]

Rows (seconds of stereo audio turned into examples per wall second, "x real time"):

* ``file copy``: copies the input WAVs and the examples' TFRecord files (the bytes an
  ingest reads and writes): the I/O limit of this disk (mostly the page cache).
* ``plain loop``: one process, no Beam: for every pair, the component's own
  :func:`components.audio_example_gen.write_pair` (same decode, same windows, same
  Example bytes, same GZIP level, same files) after the same header checks
  (``plan_pairs``). The floor of the work.
* ``plain loop, GZIP 6``: the same at zlib level 6, the level Beam's WriteToTFRecord
  uses (what the component did before it wrote its own files): what compression costs.
* ``plain loop without the capture check``: the same with ``write_pair(check=False)``;
  its files must be the same bytes (the check only reads the audio). ``capture check
  alone``: :func:`components.audio.capture_check.check_audio` on the decoded pairs (decoding
  not timed), the check's own cost; ``check_fraction`` is it over the plain loop's time
  (goal: < 10 %).
* ``beam in_memory`` / ``multi_threading`` / ``multi_processing`` with 1 or 2 workers:
  the component's executor (``Executor.Do``, pipeline construction to published
  splits) on the DirectRunner. ``multi_processing`` with 2 workers is the pipeline's
  default here (``--direct_num_workers=0`` = one per core).

The Beam rows are checked to write byte-identical files to the plain loop. ``vs plain``
is wall time / plain-loop wall time in the same run (goal: <= 2 at 1 worker, < 1 at 2).
The default data set is ``work/data`` (``fxemu synth``) if present, else it is made in a
temporary folder. With ``--json`` the last line of stdout is one JSON object of the same
figures (``*_rtf`` = seconds of audio per wall second).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import sys
import tempfile
import time
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

#: name -> (Beam args, workers)
BEAM_MODES = {
    'in_memory': (['--direct_running_mode=in_memory'], 1),
    'multi_threading_2': (['--direct_running_mode=multi_threading',
                           '--direct_num_workers=2'], 2),
    'multi_processing_1': (['--direct_running_mode=multi_processing',
                            '--direct_num_workers=1'], 1),
    'multi_processing_2': (['--direct_running_mode=multi_processing',
                            '--direct_num_workers=2'], 2),
}


def plain_loop(props: Dict, out_dir: str, compression_level: int, check: bool = True) -> Dict:
  """The component's work in one process, pair after pair (no Beam); ``check=False``
  leaves out the capture check."""
  from components import audio_example_gen  # pylint: disable=import-outside-toplevel
  from components.audio import split_plan  # pylint: disable=import-outside-toplevel
  jobs, summary = audio_example_gen.plan_pairs(props)
  spec = audio_example_gen._window_spec(props)  # pylint: disable=protected-access
  align = bool(props.get('align'))
  max_latency = int(props.get('max_latency_samples') or 0) or spec.window // 2
  for split in split_plan.SPLITS:
    os.makedirs(os.path.join(out_dir, f'Split-{split}'), exist_ok=True)
  stats = {}
  for index, job in enumerate(jobs):
    job = dict(job, index=index, count=len(jobs))
    key, stats[key] = audio_example_gen.write_pair(
        job, spec, int(props['sample_rate']), align, max_latency, out_dir, compression_level,
        check=check)
  return summary


def check_only(props: Dict, repeats: int) -> float:
  """Best-of-``repeats`` seconds the capture check takes over every pair, audio decoded
  beforehand (as the AudioExampleGen has it when it runs the check)."""
  from components import audio_example_gen  # pylint: disable=import-outside-toplevel
  from components.audio import capture_check  # pylint: disable=import-outside-toplevel
  from components.audio import pairs as pairs_lib  # pylint: disable=import-outside-toplevel
  jobs, _ = audio_example_gen.plan_pairs(props)
  spec = audio_example_gen._window_spec(props)  # pylint: disable=protected-access
  settings = capture_check.CheckSettings(
      max_latency_samples=int(props.get('max_latency_samples') or 0) or spec.window // 2,
      align=bool(props.get('align')), context_samples=spec.context,
      sample_rate=int(props['sample_rate']))
  decoded = [(pair, *pairs_lib.read_pair(pair)[:2])
             for pair in map(audio_example_gen.job_pair, jobs)]

  def run():
    for pair, dry, wet in decoded:
      capture_check.check_audio(pair, dry, wet, settings.sample_rate, settings)
  return timed(run, repeats)[0]


def file_copy(sources: List[str], out_dir: str) -> int:
  """Copies every file of ``sources`` into ``out_dir``; returns the bytes copied."""
  total = 0
  for index, path in enumerate(sources):
    target = os.path.join(out_dir, f'{index:05d}')
    shutil.copyfile(path, target)
    total += os.path.getsize(target)
  return total


def digests(root: str) -> Dict[str, str]:
  """relative path -> sha256 of every Split-* file under ``root``."""
  out = {}
  for split_dir in sorted(d for d in os.listdir(root) if d.startswith('Split-')):
    for name in sorted(os.listdir(os.path.join(root, split_dir))):
      with open(os.path.join(root, split_dir, name), 'rb') as f:
        out[f'{split_dir}/{name}'] = hashlib.sha256(f.read()).hexdigest()
  return out


def _gunzipped_size(path: str) -> int:
  with gzip.open(path, 'rb') as f:
    return sum(len(chunk) for chunk in iter(lambda: f.read(1 << 24), b''))


def timed(fn, repeats: int):
  """(best wall time, last result) of ``repeats`` calls of ``fn()``."""
  best, result = float('inf'), None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return best, result


def measure(data_dir: str, effect: str, scratch: str, modes: List[str], repeats: int,
            level6: bool) -> Dict:
  """Every row of the table for ``effect`` in ``data_dir``; figures in a flat dict."""
  from components.audio import tfexample  # pylint: disable=import-outside-toplevel
  from components.audio import pairs as pairs_lib  # pylint: disable=import-outside-toplevel
  props = common.example_gen_props(data_dir, effect)
  seconds = common.audio_seconds(data_dir, effect)
  pairs = pairs_lib.find_pairs(data_dir, effect)
  wav_files = [p for pair in pairs for p in (pair.pre_path, pair.post_path)]
  input_bytes = sum(os.path.getsize(p) for p in wav_files)

  def fresh(name):
    path = os.path.join(scratch, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path

  # Warm-up (imports, decoder start-up, page cache), not timed.
  plain_loop(props, fresh('warm'), tfexample.DEFAULT_GZIP_LEVEL)

  rows, figures = [], {'audio_seconds': seconds, 'input_mb': input_bytes / 1e6,
                       'gzip_level': tfexample.DEFAULT_GZIP_LEVEL}
  plain_dir = os.path.join(scratch, 'plain')
  plain_seconds, summary = timed(lambda: plain_loop(props, fresh('plain'),
                                                    tfexample.DEFAULT_GZIP_LEVEL), repeats)
  output_bytes = common.dir_bytes(plain_dir)
  reference = digests(plain_dir)
  figures.update(output_mb=output_bytes / 1e6, examples=sum(summary['windows'].values()))
  outputs = [os.path.join(root, n) for root, _, names in os.walk(plain_dir) for n in names]
  figures['uncompressed_mb'] = sum(_gunzipped_size(path) for path in outputs) / 1e6
  copy_seconds, copied = timed(lambda: file_copy(wav_files + outputs, fresh('copy')), repeats)
  rows.append(('file copy (WAVs + TFRecords)', 1, copy_seconds, copied, None))
  rows.append((f'plain loop (GZIP {tfexample.DEFAULT_GZIP_LEVEL})', 1, plain_seconds,
               output_bytes, True))
  nocheck_seconds, _ = timed(lambda: plain_loop(props, fresh('nocheck'),
                                                tfexample.DEFAULT_GZIP_LEVEL, check=False),
                             repeats)
  same_without_check = digests(os.path.join(scratch, 'nocheck')) == reference
  rows.append(('plain loop without the capture check', 1, nocheck_seconds,
               common.dir_bytes(os.path.join(scratch, 'nocheck')), same_without_check))
  check_seconds = check_only(props, repeats)
  rows.append(('capture check alone (decoded audio)', 1, check_seconds, 0, None))
  figures.update(plain_nocheck_seconds=nocheck_seconds, check_seconds=check_seconds,
                 check_fraction=check_seconds / plain_seconds,
                 check_fraction_by_difference=(plain_seconds - nocheck_seconds) / plain_seconds,
                 nocheck_identical_files=same_without_check)
  if level6:
    level6_seconds, _ = timed(lambda: plain_loop(props, fresh('plain6'), 6), repeats)
    rows.append(('plain loop (GZIP 6, as Beam\'s WriteToTFRecord)', 1, level6_seconds,
                 common.dir_bytes(os.path.join(scratch, 'plain6')), None))
    figures['plain_gzip6_seconds'] = level6_seconds
  for mode in modes:
    args, workers = BEAM_MODES[mode]
    out = os.path.join(scratch, f'beam_{mode}')
    def run(out=out, args=args):
      shutil.rmtree(out, ignore_errors=True)
      return common.run_example_gen(props, out, args)
    beam_seconds, _ = timed(run, repeats)
    same = digests(out) == reference
    rows.append((f'beam {mode.rstrip("_12")}', workers, beam_seconds, common.dir_bytes(out), same))
    figures[f'beam_{mode}_seconds'] = beam_seconds
    figures[f'beam_{mode}_rtf'] = seconds / beam_seconds
    figures[f'beam_{mode}_vs_plain'] = beam_seconds / plain_seconds
    figures[f'beam_{mode}_identical_files'] = same
  figures.update(plain_seconds=plain_seconds, plain_rtf=seconds / plain_seconds,
                 copy_seconds=copy_seconds, copy_rtf=seconds / copy_seconds)
  if level6:
    figures['plain_gzip6_rtf'] = seconds / figures['plain_gzip6_seconds']
  figures['rows'] = [{'what': r[0], 'workers': r[1], 'seconds': r[2], 'rtf': seconds / r[2],
                      'vs_plain': r[2] / plain_seconds, 'mb_written': r[3] / 1e6,
                      'identical_to_plain': r[4]} for r in rows]
  return figures


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--data', default='', help='directory of pairs (default: the default '
                      'data set: work/data, or synthesized into a temporary folder)')
  parser.add_argument('--effect', default='lowpass', help='effect to ingest (default: lowpass)')
  parser.add_argument('--modes', default=','.join(BEAM_MODES),
                      help=f'Beam rows, comma-separated: {", ".join(BEAM_MODES)}')
  parser.add_argument('--repeats', type=int, default=1, help='runs per row (best is kept)')
  parser.add_argument('--no-level6', action='store_true',
                      help='skip the plain loop at GZIP level 6')
  parser.add_argument('--scratch', default='', help='working folder (default: a temporary one)')
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  common.quiet_tensorflow()
  modes = [m for m in args.modes.split(',') if m]
  unknown = [m for m in modes if m not in BEAM_MODES]
  if unknown:
    parser.error(f'unknown modes {unknown}; choose from {list(BEAM_MODES)}')
  with tempfile.TemporaryDirectory(prefix='fxemu-ingest-', dir=args.scratch or None) as scratch:
    data_dir = common.default_data(args.effect, scratch, args.data)
    figures = measure(data_dir, args.effect, scratch, modes, args.repeats, not args.no_level6)
  seconds = figures['audio_seconds']
  print(f'\ningest of {seconds:.1f} s of stereo audio ({args.effect}, {figures["input_mb"]:.1f} MB '
        f'of WAV) -> {figures["examples"]} examples, {figures["uncompressed_mb"]:.0f} MB of '
        f'TFRecords before GZIP, {figures["output_mb"]:.0f} MB after '
        f'(level {figures["gzip_level"]}); {os.cpu_count()} CPUs, load average '
        f'{os.getloadavg()[0]:.1f}')
  print(f'capture check: {figures["check_seconds"]:.3f} s, '
        f'{100 * figures["check_fraction"]:.1f} % of the plain loop '
        f'({100 * figures["check_fraction_by_difference"]:.1f} % by the difference of the two '
        'plain loops)')
  common.print_table(
      ['what', 'workers', 'wall s', 'audio s / wall s', 'vs plain', 'MB written',
       'same files'],
      [[r['what'], r['workers'], r['seconds'], f'{r["rtf"]:.1f}x', f'{r["vs_plain"]:.2f}',
        f'{r["mb_written"]:.0f}',
        '' if r['identical_to_plain'] is None else ('yes' if r['identical_to_plain'] else 'NO')]
       for r in figures['rows']])
  if args.json:
    figures.update(benchmark='ingest', effect=args.effect, cpus=os.cpu_count(),
                   load_average=os.getloadavg()[0])
    common.emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
