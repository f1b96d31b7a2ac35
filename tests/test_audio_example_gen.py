"""The audio ExampleGen on real Beam (DirectRunner): splits, shapes, provenance, errors."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import audio_example_gen
from tests.audio_fixtures import make_pair

RATE = 8000


def _props(input_base, **overrides):
  props = dict(input_base=input_base, effect='toy', sample_rate=RATE, window_samples=800,
               hop_samples=400, context_samples=200, block_samples=1600, eval_period=3,
               test_patterns='*piano*', test_tail=1.0, align=0, max_latency_samples=400)
  props.update(overrides)
  return props


def _run(tmp_path, props, beam_args=('--direct_running_mode=in_memory',)):
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'examples')
  context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))
  audio_example_gen.Executor(context).Do({}, {'examples': [examples]}, props)
  return examples


def _read(examples, split):
  files = tf.io.gfile.glob(os.path.join(examples.uri, f'Split-{split}', '*.gz'))
  rows = []
  for record in tf.data.TFRecordDataset(files, compression_type='GZIP'):
    f = tf.train.Example.FromString(record.numpy()).features.feature
    rows.append({'dry': np.array(f['dry'].float_list.value, np.float32),
                 'wet': np.array(f['wet'].float_list.value, np.float32),
                 'source': f['source'].bytes_list.value[0].decode(),
                 'effect': f['effect'].bytes_list.value[0].decode(),
                 'channel': f['channel'].int64_list.value[0],
                 'offset': f['offset'].int64_list.value[0],
                 'sample_rate': f['sample_rate'].int64_list.value[0]})
  return rows


@pytest.fixture
def data_dir(tmp_path):
  directory = tmp_path / 'data'
  directory.mkdir()
  tracks = {}
  for seed, name in enumerate(['sine sweep', 'squäre', 'piano']):
    _, _, dry, wet = make_pair(str(directory), name, 3.0, sample_rate=RATE, seed=seed)
    tracks[name] = (dry, wet)
  return str(directory), tracks


def test_splits_shapes_and_provenance(tmp_path, data_dir):
  directory, tracks = data_dir
  examples = _run(tmp_path, _props(directory))
  assert artifact_utils.decode_split_names(examples.split_names) == ['train', 'eval', 'test']
  assert examples.get_string_custom_property('payload_format') == 'FORMAT_TF_EXAMPLE'
  summary = json.loads(examples.get_string_custom_property('fxemu_summary'))
  rows = {split: _read(examples, split) for split in ('train', 'eval', 'test')}
  for split, split_rows in rows.items():
    assert split_rows, f'{split} is empty'
    assert summary['windows'][split] == len(split_rows)
    for row in split_rows:
      assert row['dry'].shape == (1200,) and row['wet'].shape == (800,)
      assert row['effect'] == 'toy' and row['sample_rate'] == RATE
      dry, wet = tracks[row['source']]
      start, channel = row['offset'], row['channel']
      # wet is the recording's wet side, aligned with the centre of dry
      expected_wet = np.zeros(800, np.float32)
      piece = wet[start:start + 800, channel]
      expected_wet[:len(piece)] = piece
      np.testing.assert_allclose(row['wet'], expected_wet, atol=1 / 32767 + 1e-6)
      padded = np.concatenate([np.zeros(200), dry[:, channel], np.zeros(1200)])
      np.testing.assert_allclose(row['dry'], padded[start:start + 1200], atol=1 / 32767 + 1e-6)
  assert {r['source'] for r in rows['test']} == {'piano'}
  assert 'piano' not in {r['source'] for r in rows['train'] + rows['eval']}
  assert {r['channel'] for r in rows['train']} == {0, 1}


def test_train_and_eval_targets_never_overlap(tmp_path, data_dir):
  directory, _ = data_dir
  examples = _run(tmp_path, _props(directory))
  covered = {}
  for split in ('train', 'eval'):
    for row in _read(examples, split):
      key = (row['source'], row['channel'])
      mask = covered.setdefault(key, np.zeros([RATE * 4], np.int8))
      mark = 1 if split == 'train' else 2
      region = mask[row['offset']:row['offset'] + 800]
      assert not np.any((region != 0) & (region != mark)), f'{split} window overlaps'
      region[:] = mark


def test_test_split_tiles_the_whole_test_file(tmp_path, data_dir):
  directory, tracks = data_dir
  examples = _run(tmp_path, _props(directory))
  wet = tracks['piano'][1]
  for channel in (0, 1):
    rows = [r for r in _read(examples, 'test') if r['channel'] == channel]
    covered = np.zeros(len(wet), bool)
    for row in rows:  # every window is the recording itself, none runs past its end
      assert row['offset'] + 800 <= len(wet)
      np.testing.assert_allclose(row['wet'], wet[row['offset']:row['offset'] + 800, channel],
                                 atol=1 / 32767 + 1e-6)
      covered[row['offset']:row['offset'] + 800] = True
    assert covered.all()


def test_test_tail_puts_the_head_of_the_test_file_in_training(tmp_path, data_dir):
  directory, _ = data_dir
  examples = _run(tmp_path, _props(directory, test_tail=0.4))
  test_offsets = [r['offset'] for r in _read(examples, 'test')]
  head = [r for r in _read(examples, 'train') if r['source'] == 'piano']
  assert min(test_offsets) == int(round(3.0 * RATE * 0.6))
  assert head and max(r['offset'] + 800 for r in head) <= min(test_offsets)


@pytest.mark.parametrize('beam_args', [
    ['--direct_running_mode=multi_threading', '--direct_num_workers=2'],   # the default
    ['--direct_running_mode=multi_processing', '--direct_num_workers=2'],
    # The portable runner API, the one Flink and Spark runners use, with an embedded job
    # server.
    ['--runner=PortableRunner', '--job_endpoint=embed', '--environment_type=LOOPBACK'],
], ids=['direct-multi-threading', 'direct-multi-processing', 'portable'])
def test_other_runners_make_the_same_examples(tmp_path, data_dir, beam_args):
  directory, _ = data_dir
  single = _run(tmp_path / 'a', _props(directory))
  multi = _run(tmp_path / 'b', _props(directory), beam_args=beam_args)
  for split in ('train', 'eval', 'test'):
    key = lambda r: (r['source'], r['channel'], r['offset'])
    a, b = sorted(_read(single, split), key=key), sorted(_read(multi, split), key=key)
    assert [key(r) for r in a] == [key(r) for r in b]
    assert all(np.array_equal(x['dry'], y['dry']) for x, y in zip(a, b))


def test_align_estimates_and_removes_latency(tmp_path):
  directory = tmp_path / 'data'
  directory.mkdir()
  from components.audio import wav
  for name in ('sweep', 'piano'):
    pre, post, dry, _ = make_pair(str(directory), name, 3.0, sample_rate=RATE)
    late = np.concatenate([np.zeros([37, 2], np.float32), dry])[:len(dry) - 11]
    wav.write_wav(post, late, RATE)  # wet = dry delayed by 37 samples, 11 samples shorter
  with pytest.raises(audio_example_gen.AudioDataError, match='lengths differ'):
    _run(tmp_path / 'x', _props(str(directory)))
  examples = _run(tmp_path / 'y', _props(str(directory), align=1))
  summary = json.loads(examples.get_string_custom_property('fxemu_summary'))
  assert summary['latency_samples'] == {'toy - piano': 37, 'toy - sweep': 37}
  for row in _read(examples, 'train'):
    centre = row['dry'][200:1000]
    n = min(len(centre), len(row['wet']))
    np.testing.assert_allclose(row['wet'][:n], centre[:n], atol=2 / 32767)


@pytest.mark.parametrize('breakage,message', [
    ('orphan', 'without its wet partner'),
    ('orphan_post', 'without its dry partner'),
    ('rate', 'sample rate 16000 Hz'),
    ('channels', 'channel counts differ'),
    ('garbage', 'not a WAV file'),
    ('no_test', 'no test recording'),
    ('short', 'split would be empty'),
])
def test_bad_input_fails_cleanly_and_writes_nothing(tmp_path, data_dir, breakage, message):
  directory, _ = data_dir
  from components.audio import wav
  if breakage == 'orphan':
    make_pair(directory, 'lonely', 1.0, sample_rate=RATE)
    os.remove(os.path.join(directory, 'toy - post - lonely.wav'))
  elif breakage == 'orphan_post':
    make_pair(directory, 'lonely', 1.0, sample_rate=RATE)
    os.remove(os.path.join(directory, 'toy - pre - lonely.wav'))
  elif breakage == 'rate':
    make_pair(directory, 'fast', 1.0, sample_rate=16000)
  elif breakage == 'channels':
    _, post, _, wet = make_pair(directory, 'mono', 1.0, sample_rate=RATE)
    wav.write_wav(post, wet[:, 0], RATE)
  elif breakage == 'garbage':
    open(os.path.join(directory, 'toy - post - piano.wav'), 'wb').write(b'not audio')
  elif breakage == 'no_test':
    os.remove(os.path.join(directory, 'toy - pre - piano.wav'))
    os.remove(os.path.join(directory, 'toy - post - piano.wav'))
  props = _props(directory, window_samples=8000 * 4) if breakage == 'short' else _props(directory)
  with pytest.raises(audio_example_gen.AudioDataError) as error:
    _run(tmp_path, props)
  assert message in str(error.value)
  if breakage not in ('no_test', 'short'):
    assert directory in str(error.value)
  assert not os.path.exists(tmp_path / 'examples') or \
      not [p for p in os.listdir(tmp_path / 'examples') if p.startswith('Split-')]


def test_corrupt_samples_found_during_decoding_leave_no_split(tmp_path, data_dir):
  directory, _ = data_dir
  from components.audio import wav
  audio = np.zeros([3 * RATE, 2], np.float32)
  audio[100, 1] = np.inf
  wav.write_wav(os.path.join(directory, 'toy - post - squäre.wav'), audio, RATE, 'FLOAT')
  wav.write_wav(os.path.join(directory, 'toy - pre - squäre.wav'), np.zeros_like(audio), RATE,
                'FLOAT')
  with pytest.raises(Exception, match='NaN or infinite'):
    _run(tmp_path, _props(directory))
  assert not [p for p in os.listdir(tmp_path / 'examples') if not p.startswith('.')]


def test_silent_recording_is_an_error_naming_the_file(tmp_path, data_dir):
  directory, _ = data_dir
  from components.audio import wav
  _, post, _, _ = make_pair(directory, 'quiet', 3.0, sample_rate=RATE)
  wav.write_wav(post, np.zeros([3 * RATE, 2], np.float32), RATE)
  with pytest.raises(Exception, match='toy - post - quiet.wav: every sample is zero'):
    _run(tmp_path, _props(directory))
  assert not [p for p in os.listdir(tmp_path / 'examples') if not p.startswith('.')]


def test_clipped_recordings_are_reported_and_kept(tmp_path, data_dir):
  directory, _ = data_dir
  from components.audio import wav
  pre, post, dry, wet = make_pair(directory, 'hot', 3.0, sample_rate=RATE)
  wav.write_wav(post, np.clip(wet * 8, -1, 1), RATE)  # the wet side clips hard
  examples = _run(tmp_path, _props(directory))
  summary = json.loads(examples.get_string_custom_property('fxemu_summary'))
  assert summary['clipped'] == ['toy - hot']
  assert summary['levels']['toy - hot']['post']['clipped_fraction'] > 0.1
  assert summary['levels']['toy - piano']['post']['peak_db'] < 0
  assert any(r['source'] == 'hot' for r in _read(examples, 'train'))


def test_directory_without_pairs(tmp_path):
  empty = tmp_path / 'nothing'
  empty.mkdir()
  (empty / 'notes.txt').write_text('no audio here')
  with pytest.raises(audio_example_gen.AudioDataError, match='no pre/post pairs'):
    _run(tmp_path, _props(str(empty)))


def test_tfrecord_writer_writes_what_tensorflow_writes(tmp_path):
  import gzip
  from components.audio import tfexample
  records = [b'', b'x', os.urandom(1000), os.urandom(300000), b'tail']
  reference = str(tmp_path / 'reference.tfrecord')
  with tf.io.TFRecordWriter(reference) as writer:
    for record in records:
      writer.write(record)
  ours = str(tmp_path / 'ours.gz')
  tfexample.write_tfrecord_file(ours, iter(records), compression_level=1)
  with open(reference, 'rb') as f, gzip.open(ours, 'rb') as g:
    assert g.read() == f.read()    # same framing and checksums, one gzip member
  read = [r.numpy() for r in tf.data.TFRecordDataset([ours], compression_type='GZIP')]
  assert read == records
  assert [os.path.basename(p) for p in tf.io.gfile.glob(str(tmp_path / '*'))] == [
      'ours.gz', 'reference.tfrecord']   # no partial file left behind


def test_tfrecord_file_is_not_published_when_writing_fails(tmp_path):
  from components.audio import tfexample
  path = str(tmp_path / 'data.gz')
  with pytest.raises(RuntimeError):
    with tfexample.TFRecordFile(path) as f:
      f.write(b'record')
      raise RuntimeError('boom')
  assert os.listdir(tmp_path) == []


def test_one_file_per_pair_and_split_and_rerunning_a_pair_rewrites_it(tmp_path, data_dir):
  directory, _ = data_dir
  examples = _run(tmp_path, _props(directory))
  props = _props(directory)
  jobs, _ = audio_example_gen.plan_pairs(props)
  assert [j['name'] for j in jobs] == ['piano', 'sine sweep', 'squäre']
  names = lambda split: sorted(os.listdir(os.path.join(examples.uri, f'Split-{split}')))
  assert names('train') == names('eval') == [
      'data_tfrecord-00001-of-00003.gz', 'data_tfrecord-00002-of-00003.gz']
  assert names('test') == ['data_tfrecord-00000-of-00003.gz']   # the piano, test only
  path = os.path.join(examples.uri, 'Split-train', 'data_tfrecord-00001-of-00003.gz')
  with open(path, 'rb') as f:
    before = f.read()
  key, stats = audio_example_gen.write_pair(dict(jobs[1], index=1, count=3),
                                            audio_example_gen._window_spec(props), RATE,
                                            False, 0, examples.uri)
  with open(path, 'rb') as f:
    assert f.read() == before
  assert key == 'toy - sine sweep' and stats['windows']['train'] == len(
      [r for r in _read(examples, 'train') if r['source'] == 'sine sweep'])


def test_direct_runner_skips_tfx_dependency_packaging(monkeypatch):
  from tfx.utils import dependency_utils
  calls = []
  monkeypatch.setattr(dependency_utils, 'make_beam_dependency_flags',
                      lambda args: calls.append(args) or list(args))
  direct = ['--direct_running_mode=multi_processing', '--direct_num_workers=2']
  executor = audio_example_gen.Executor(
      base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=direct))
  assert executor._beam_pipeline_args == direct and not calls
  portable = ['--runner=PortableRunner', '--job_endpoint=embed']
  audio_example_gen.Executor(
      base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=portable))
  assert calls == [portable]


def test_the_capture_check_reads_the_audio_and_leaves_the_examples_as_they_are(tmp_path,
                                                                                data_dir):
  directory, _ = data_dir
  props = _props(directory)
  jobs, _ = audio_example_gen.plan_pairs(props)
  spec = audio_example_gen._window_spec(props)
  written = {}
  for check in (True, False):
    out = tmp_path / str(check)
    for split in ('train', 'eval', 'test'):
      (out / f'Split-{split}').mkdir(parents=True)
    for index, job in enumerate(jobs):
      _, stats = audio_example_gen.write_pair(dict(job, index=index, count=len(jobs)), spec,
                                              RATE, False, 400, str(out), check=check)
      assert (stats['check'] is not None) == check
    written[check] = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob('*.gz')}
  assert written[True] == written[False] and len(written[True]) == 5


def test_the_summary_holds_the_capture_check(tmp_path, data_dir):
  directory, _ = data_dir
  examples = _run(tmp_path, _props(directory))
  summary = json.loads(examples.get_string_custom_property('fxemu_summary'))
  check = summary['check']
  assert set(check['pairs']) == {'toy - piano', 'toy - sine sweep', 'toy - squäre'}
  assert check['verdict'] == examples.get_string_custom_property('fxemu_check')
  for pair in check['pairs'].values():
    assert pair['coherence'] > 0.9 and pair['latency_samples'] == 0
    assert not [f for f in pair['findings'] if f['severity'] == 'error'], pair['findings']


def test_the_summary_names_a_test_recording_quieter_than_the_training_ones(tmp_path):
  """The piano 40 dB under the sweep: its pair carries the level-coverage note."""
  from components.audio import wav
  from tests.audio_fixtures import toy_effect
  directory = tmp_path / 'data'
  directory.mkdir()
  make_pair(str(directory), 'sweep', 3.0, sample_rate=RATE)
  pre, post, dry, _ = make_pair(str(directory), 'piano', 3.0, sample_rate=RATE)
  wav.write_wav(pre, 0.01 * dry, RATE)
  wav.write_wav(post, toy_effect(0.01 * dry), RATE)
  examples = _run(tmp_path / 'x', _props(str(directory)))
  pairs = json.loads(examples.get_string_custom_property('fxemu_summary'))['check']['pairs']
  coverage = {key: [f for f in pair['findings'] if f['check'] == 'level_coverage']
              for key, pair in pairs.items()}
  assert not coverage['toy - sweep']
  [finding] = coverage['toy - piano']
  assert finding['severity'] == 'info'      # the toy effect is a linear filter
  assert finding['message'].startswith(pre + ': half of this test recording is at or below')


def test_align_trims_a_wet_side_that_leads(tmp_path):
  """The wet file was cut 0.25 s later than the dry one: --align trims the dry's start."""
  directory = tmp_path / 'data'
  directory.mkdir()
  from components.audio import wav
  lead = RATE // 4
  for name in ('sweep', 'piano'):
    pre, post, dry, wet = make_pair(str(directory), name, 3.0, sample_rate=RATE)
    wav.write_wav(post, wet[lead:], RATE)                       # 0.25 s shorter, leading
  examples = _run(tmp_path / 'y', _props(str(directory), align=1, max_latency_samples=RATE))
  summary = json.loads(examples.get_string_custom_property('fxemu_summary'))
  assert summary['latency_samples'] == {'toy - piano': -lead, 'toy - sweep': -lead}
  for pair in summary['check']['pairs'].values():
    assert [f['check'] for f in pair['findings'] if f['severity'] == 'warning'] == ['latency']
  rows = [r for r in _read(examples, 'train') if r['offset'] > 0]  # (the first has no past)
  assert rows
  for row in rows:                              # wet = the toy effect of the window's dry
    dry = row['dry'][198:1000]                  # (two samples of context before it)
    np.testing.assert_allclose(row['wet'], np.convolve(dry, [0.3, 0.3, 0.2])[2:802],
                               atol=3 / 32767)
