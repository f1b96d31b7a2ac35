"""AudioExampleGen: a TFX component that turns dry/wet WAV pairs into windowed tf.Examples.

For every ``EFFECT - pre|post - NAME.wav`` pair under ``input_base`` it decodes both
sides (tensorflow-io), converts PCM to float32 in [-1, 1], splits stereo into mono
tracks, checks the pair, runs the capture check (:mod:`components.audio.capture_check`: latency,
coherence, learnability, time variance, hygiene, repeatability; its findings and verdict
go into the summary, for ``AnomaliesGate`` to stop the run before training), optionally
aligns the wet side in time, cuts windows (see
:mod:`components.audio.split_plan`) and writes GZIP TFRecords of tf.Example into the standard
``Split-train``, ``Split-eval`` and ``Split-test`` folders of an ``Examples`` artifact,
so StatisticsGen, ExampleValidator, Trainer and Evaluator consume it unchanged.

Example features: ``dry`` (float, window + 2 * context samples), ``wet`` (float, window
samples, aligned with the centre of ``dry``), ``source`` (NAME), ``effect``, ``channel``,
``offset`` (sample index of ``wet[0]`` in its track) and ``sample_rate``.

The Beam job is one element per pair: :func:`write_pair` reads the pair once and writes
its windows straight into one file per split (``data_tfrecord-PAIR-of-PAIRS.gz``), so no
window travels through Beam as an element. The files are compressed at zlib level
:data:`components.audio.tfexample.DEFAULT_GZIP_LEVEL` (1): Beam's own WriteToTFRecord
compresses at level 6, which took ~90 % of an ingest (7x the time of level 1) for files
~10 % smaller (``benchmarks/ingest.py``).

Nothing is written until every pair has passed the header checks, and the splits are
written to a staging folder that is moved into place only when the whole Beam pipeline
has succeeded: a bad file never leaves a half-written artifact.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.options import pipeline_options
import numpy as np
import tensorflow as tf
from tfx import types
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_component
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter

from components.audio import capture_check
from components.audio import dsp
from components.audio import pairs as pairs_lib
from components.audio import split_plan
from components.audio import tfexample
from components.audio import wav
from components.audio.tfexample import encode_example
from schema import contract

EXAMPLES_KEY = 'examples'
SUMMARY_PROPERTY = 'fxemu_summary'
#: The capture check's verdict on the Examples artifact: 'ok', 'warning' or 'error'.
CHECK_PROPERTY = 'fxemu_check'


class AudioExampleGenSpec(types.ComponentSpec):
  """Parameters of :class:`AudioExampleGen` (lengths in samples)."""
  PARAMETERS = {
      'input_base': ExecutionParameter(type=str),
      'effect': ExecutionParameter(type=str, optional=True),
      'sample_rate': ExecutionParameter(type=int),
      'window_samples': ExecutionParameter(type=int),
      'hop_samples': ExecutionParameter(type=int),
      'context_samples': ExecutionParameter(type=int),
      'block_samples': ExecutionParameter(type=int),
      'eval_period': ExecutionParameter(type=int),
      'test_patterns': ExecutionParameter(type=str),
      'test_tail': ExecutionParameter(type=float),
      'align': ExecutionParameter(type=int, optional=True),
      'max_latency_samples': ExecutionParameter(type=int, optional=True),
      # Changes when the input files change, so that TFX's cache is not reused.
      'input_fingerprint': ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {}
  OUTPUTS = {EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples)}


class AudioDataError(ValueError):
  """The input directory cannot be turned into examples; the message says why and where."""


def input_fingerprint(input_base: str, effect: str = '') -> str:
  """Names, sizes and modification times of the WAV files of ``input_base`` (or '')."""
  try:
    entries = []
    for name in sorted(tf.io.gfile.listdir(input_base)):
      parsed = pairs_lib.parse_file_name(name)
      if parsed and (not effect or parsed[0] == effect):
        stat = tf.io.gfile.stat(os.path.join(input_base, name))
        entries.append(f'{name}:{stat.length}:{stat.mtime_nsec}')
    return _stable_hash('|'.join(entries))
  except tf.errors.OpError:
    return ''


def _stable_hash(text: str) -> str:
  return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


def _window_spec(props: Dict[str, Any]) -> split_plan.WindowSpec:
  return split_plan.WindowSpec(
      window=int(props['window_samples']), hop=int(props['hop_samples']),
      context=int(props['context_samples']), block=int(props['block_samples']),
      eval_period=int(props['eval_period']), test_tail=float(props['test_tail']))


def _test_patterns(props: Dict[str, Any]) -> List[str]:
  return [p.strip() for p in str(props['test_patterns']).split(',') if p.strip()]


def plan_pairs(props: Dict[str, Any]):
  """Finds and checks every pair from headers only; returns (jobs, summary).

  Raises:
    AudioDataError: listing every problem found (all files are checked first).
  """
  try:
    found = pairs_lib.find_pairs(props['input_base'], props.get('effect') or None)
  except pairs_lib.PairError as e:
    raise AudioDataError(str(e)) from e
  spec = _window_spec(props)
  patterns = _test_patterns(props)
  align = bool(props.get('align'))
  problems, jobs, files = [], [], []
  counts = {split: 0 for split in split_plan.SPLITS}
  for pair in found:
    try:
      pre, post = wav.read_info(pair.pre_path), wav.read_info(pair.post_path)
    except wav.AudioFileError as e:
      problems.append(str(e))
      continue
    pair_problems = pairs_lib.check_pair(pair, pre, post, int(props['sample_rate']),
                                         allow_length_mismatch=align)
    if pair_problems:
      problems.extend(pair_problems)
      continue
    is_test = pairs_lib.matches_any(pair.name, patterns)
    num_frames = min(pre.num_frames, post.num_frames)
    plan = split_plan.plan_track(num_frames, is_test, spec)
    for split in split_plan.SPLITS:
      counts[split] += len(plan[split]) * pre.channels
    jobs.append({'effect': pair.effect, 'name': pair.name, 'pre': pair.pre_path,
                 'post': pair.post_path, 'is_test': is_test})
    files.append({'effect': pair.effect, 'name': pair.name, 'test': is_test,
                  'channels': pre.channels, 'seconds': round(pre.duration, 3),
                  'pre_frames': pre.num_frames, 'post_frames': post.num_frames,
                  'windows': {s: int(len(plan[s])) * pre.channels for s in split_plan.SPLITS}})
  if problems:
    raise AudioDataError('cannot make examples from ' + props['input_base'] + ':\n  ' +
                         '\n  '.join(problems))
  if not any(j['is_test'] for j in jobs):
    raise AudioDataError(f'{props["input_base"]}: no test recording: no pair NAME matches '
                         f'{", ".join(patterns)} (set --test-pattern)')
  for split in split_plan.SPLITS:
    if counts[split] == 0:
      raise AudioDataError(
          f'{props["input_base"]}: the {split} split would be empty: the recordings are '
          f'too short for {spec.window}-sample windows in {spec.block}-sample blocks '
          '(use shorter --window-seconds / --block-seconds or longer recordings)')
  summary = {'input_base': props['input_base'], 'effect': props.get('effect') or '',
             'sample_rate': int(props['sample_rate']), 'window_samples': spec.window,
             'hop_samples': spec.hop, 'context_samples': spec.context,
             'block_samples': spec.block, 'eval_period': spec.eval_period,
             'test_tail': spec.test_tail, 'test_patterns': patterns,
             'windows': counts, 'files': files}
  return jobs, summary


FRAME_CHUNK = 64   # windows cut per NumPy gather
def job_pair(job: Dict[str, Any]) -> pairs_lib.Pair:
  """The pair a job of :func:`plan_pairs` names."""
  return pairs_lib.Pair(job['effect'], job['name'], job['pre'], job['post'])


def pair_examples(job: Dict[str, Any], dry: np.ndarray, wet: np.ndarray,
                  spec: split_plan.WindowSpec, sample_rate: int):
  """(split, serialized tf.Example) for every window of every channel of one decoded pair.

  Windows are cut ``FRAME_CHUNK`` at a time (:func:`components.audio.dsp.frame`, one NumPy
  gather per chunk, no per-sample Python), then serialized one by one
  (:func:`encode_example`).
  """
  plan = split_plan.plan_track(len(dry), job['is_test'], spec)
  for channel in range(dry.shape[1]):
    dry_track, wet_track = dry[:, channel], wet[:, channel]
    for split, starts in plan.items():
      if not len(starts):
        continue
      for chunk in range(0, len(starts), FRAME_CHUNK):   # bounded memory on long files
        chunk_starts = starts[chunk:chunk + FRAME_CHUNK]
        dry_windows = dsp.frame(dry_track, chunk_starts, spec.window, spec.context)
        wet_windows = dsp.frame(wet_track, chunk_starts, spec.window)
        for start, d, w in zip(chunk_starts, dry_windows, wet_windows):
          yield split, encode_example(
              floats={contract.DRY: d, contract.WET: w},
              ints={contract.CHANNEL: channel, contract.OFFSET: int(start),
                    contract.SAMPLE_RATE: sample_rate},
              strings={contract.SOURCE: job['name'], contract.EFFECT: job['effect']})


def shard_name(index: int, count: int) -> str:
  """File name of the ``index``-th pair's records within a split folder."""
  return f'data_tfrecord-{index:05d}-of-{count:05d}.gz'


def write_pair(job: Dict[str, Any], spec: split_plan.WindowSpec, sample_rate: int,
               align: bool, max_latency: int, out_dir: str,
               compression_level: int = tfexample.DEFAULT_GZIP_LEVEL,
               check: bool = True):
  """All the work for one pair: decode, check, window, serialize, compress and write.

  The pair is read once; with ``check`` the capture check
  (:func:`components.audio.capture_check.check_audio`) runs on the decoded audio, sharing the
  latency estimate with ``align`` and the level figures with the summary; it reads the
  audio only, so the examples are the same bytes with and without it. The examples go
  to ``out_dir/Split-SPLIT/`` + :func:`shard_name` (one GZIP TFRecord file per split
  that has windows of this pair), each written under a temporary name and renamed into
  place, so running a pair again (a retried bundle) rewrites the same files. Both the
  Beam executor and a plain loop (the ingest benchmark's reference) call this function,
  so they do exactly the same work.

  Returns:
    (pair key, stats): levels (as recorded), latency trimmed, the number of windows
    written per split, and the check (``PairCheck.to_dict()``, or None without it).
  """
  pair = job_pair(job)
  dry, wet, _ = pairs_lib.read_pair(pair)
  levels = capture_check.side_levels(dry), capture_check.side_levels(wet)
  estimate = capture_check.measure_latency(dry, wet, max_latency) if (align or check) else None
  pair_check = None
  if check:
    settings = capture_check.CheckSettings(
        max_latency_samples=max_latency, align=align, context_samples=spec.context,
        sample_rate=sample_rate)
    pair_check = capture_check.check_audio(pair, dry, wet, sample_rate, settings, estimate,
                                           levels)
  latency = estimate.samples if align else 0
  dry, wet = dsp.trim_latency(dry, wet, latency)
  stats = {'latency_samples': latency, 'pre': dataclasses.asdict(levels[0]),
           'post': dataclasses.asdict(levels[1]),
           'windows': {split: 0 for split in split_plan.SPLITS},
           'check': pair_check.to_dict() if pair_check else None}
  with contextlib.ExitStack() as files:
    open_files = {}
    for split, record in pair_examples(job, dry, wet, spec, sample_rate):
      if split not in open_files:
        path = os.path.join(out_dir, f'Split-{split}', shard_name(job['index'], job['count']))
        open_files[split] = files.enter_context(
            tfexample.TFRecordFile(path, compression_level))
      open_files[split].write(record)
      stats['windows'][split] += 1
  return pair.key, stats


class _WritePair(beam.DoFn):
  """pair job -> its examples' files (see :func:`write_pair`); emits (pair key, stats)."""

  def __init__(self, spec: split_plan.WindowSpec, sample_rate: int, align: bool,
               max_latency: int, out_dir: str, compression_level: int):
    self._args = (spec, sample_rate, align, max_latency, out_dir, compression_level)
    self._windows = beam.metrics.Metrics.counter('fxemu', 'windows')

  def process(self, job):
    key, stats = write_pair(job, *self._args)
    self._windows.inc(sum(stats['windows'].values()))
    yield key, stats


def runs_in_process(beam_pipeline_args) -> bool:
  """True if the args select Beam's DirectRunner (the default runner)."""
  runner = pipeline_options.PipelineOptions(flags=list(beam_pipeline_args or [])).view_as(
      pipeline_options.StandardOptions).runner
  return (runner or 'DirectRunner').split('.')[-1] in (
      'DirectRunner', 'direct', 'SwitchingDirectRunner', 'BundleBasedDirectRunner')


class Executor(base_beam_executor.BaseBeamExecutor):
  """Runs :class:`_WritePair` on Beam and publishes the splits atomically.

  On the DirectRunner it skips TFX's Beam dependency inference, which builds an sdist of
  the installed TFX (copying its ~2,300 files and running setup.py: 2-4 s here, as long
  as the rest of a default ingest) to ship to remote workers; the DirectRunner's workers
  run in this Python environment and never use it. Other runners get TFX's behaviour.
  """

  def __init__(self, context: Optional[base_beam_executor.BaseBeamExecutor.Context] = None):
    if context is None or not context.beam_pipeline_args or not runs_in_process(
        context.beam_pipeline_args):
      super().__init__(context)
      return
    local = copy.copy(context)
    local.beam_pipeline_args = None   # BaseBeamExecutor infers dependencies only for args
    super().__init__(local)
    self._beam_pipeline_args = list(context.beam_pipeline_args)

  def Do(self, input_dict, output_dict, exec_properties):
    self._log_startup(input_dict, output_dict, exec_properties)
    examples = artifact_utils.get_single_instance(output_dict[EXAMPLES_KEY])
    jobs, summary = plan_pairs(exec_properties)
    spec = _window_spec(exec_properties)
    align = bool(exec_properties.get('align'))
    max_latency = int(exec_properties.get('max_latency_samples') or 0) or spec.window // 2
    staging = os.path.join(examples.uri, '.staging')
    if tf.io.gfile.exists(staging):
      tf.io.gfile.rmtree(staging)
    jobs = [dict(job, index=i, count=len(jobs)) for i, job in enumerate(jobs)]
    try:
      for split in split_plan.SPLITS:
        tf.io.gfile.makedirs(os.path.join(staging, f'Split-{split}'))
      with self._make_beam_pipeline() as pipeline:
        _ = (pipeline
             | 'Pairs' >> beam.Create(jobs)
             | 'Distribute' >> beam.Reshuffle()
             | 'WritePairs' >> beam.ParDo(_WritePair(
                 spec, int(exec_properties['sample_rate']), align, max_latency, staging,
                 tfexample.DEFAULT_GZIP_LEVEL))
             | 'Stats' >> beam.combiners.ToList()
             | 'WriteStats' >> beam.Map(_write_json, os.path.join(staging, 'stats.json')))
      with tf.io.gfile.GFile(os.path.join(staging, 'stats.json')) as f:
        stats = dict(json.load(f))
      tf.io.gfile.remove(os.path.join(staging, 'stats.json'))
      summary['levels'] = {pair: {side: s[side] for side in ('pre', 'post')}
                           for pair, s in sorted(stats.items())}
      summary['clipped'] = sorted(pair for pair, s in stats.items()
                                  if max(s['pre']['clipped_fraction'],
                                         s['post']['clipped_fraction']) > 1e-3)
      written = {split: sum(s['windows'][split] for s in stats.values())
                 for split in split_plan.SPLITS}
      if written != summary['windows']:
        raise RuntimeError(f'AudioExampleGen wrote {written} windows, planned '
                           f'{summary["windows"]}')
      if align:
        summary['latency_samples'] = {pair: s['latency_samples'] for pair, s in stats.items()}
      checks = [capture_check.PairCheck.from_dict(s['check']) for s in stats.values()]
      test_keys = {pairs_lib.pair_key(j['effect'], j['name']) for j in jobs if j['is_test']}
      capture_check.add_level_coverage_findings(checks, lambda c: c.key in test_keys,
                                                  float(exec_properties['test_tail']))
      summary['check'] = capture_check.summarize(checks)
      for split in split_plan.SPLITS:
        tf.io.gfile.rename(os.path.join(staging, f'Split-{split}'),
                           os.path.join(examples.uri, f'Split-{split}'), overwrite=True)
    finally:
      if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
    examples.split_names = artifact_utils.encode_split_names(list(split_plan.SPLITS))
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    text = json.dumps(summary, sort_keys=True)
    examples.set_string_custom_property(SUMMARY_PROPERTY, text)
    examples.set_string_custom_property(CHECK_PROPERTY, summary['check']['verdict'])
    with tf.io.gfile.GFile(os.path.join(examples.uri, contract.EXAMPLES_SUMMARY_FILE), 'w') as f:
      f.write(text)


def _write_json(value, path):
  with tf.io.gfile.GFile(path, 'w') as f:
    json.dump(value, f)


class AudioExampleGen(base_beam_component.BaseBeamComponent):
  """Dry/wet WAV pairs -> windowed tf.Examples in train/eval/test splits."""
  SPEC_CLASS = AudioExampleGenSpec
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

  def __init__(self, input_base: str, sample_rate: int, window_samples: int,
               hop_samples: int, context_samples: int, block_samples: int,
               eval_period: int, test_patterns: str, test_tail: float = 1.0,
               effect: str = '', align: bool = False, max_latency_samples: int = 0,
               input_fingerprint: str = ''):
    split_plan.check_test_tail(test_tail)
    spec = AudioExampleGenSpec(
        input_base=input_base, effect=effect, sample_rate=sample_rate,
        window_samples=window_samples, hop_samples=hop_samples,
        context_samples=context_samples, block_samples=block_samples,
        eval_period=eval_period, test_patterns=test_patterns, test_tail=test_tail,
        align=int(align), max_latency_samples=max_latency_samples,
        input_fingerprint=input_fingerprint,
        examples=types.Channel(type=standard_artifacts.Examples))
    super().__init__(spec=spec)
