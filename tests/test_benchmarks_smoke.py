"""Every benchmark runs on tiny data and ends with one line of valid JSON (``--json``)."""
import json
import math

import pytest

from tests.audio_fixtures import make_pair

RATE = 44100   # the benchmarks use the pipeline's defaults (0.5 s windows, 2 s blocks)


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
  directory = tmp_path_factory.mktemp('data')
  make_pair(str(directory), 'sweep', 5.0, sample_rate=RATE, seed=0)
  make_pair(str(directory), 'piano', 1.0, sample_rate=RATE, seed=1)
  return str(directory)


def _run(main, argv, capsys):
  assert main(argv + ['--json']) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  figures = json.loads(lines[-1])
  assert isinstance(figures, dict) and len(lines) > 2   # a table came first
  return figures


def test_ingest(tiny_data, capsys, tmp_path):
  from benchmarks import ingest
  f = _run(ingest.main, ['--data', tiny_data, '--effect', 'toy', '--modes', 'in_memory',
                         '--no-level6', '--scratch', str(tmp_path)], capsys)
  assert f['audio_seconds'] == pytest.approx(6.0)
  assert f['beam_in_memory_identical_files'] is True
  assert f['plain_rtf'] > 0 and f['beam_in_memory_rtf'] > 0 and f['copy_rtf'] > 0
  # the capture check leaves the examples as they are, and is timed on its own
  assert f['nocheck_identical_files'] is True
  assert 0 < f['check_seconds'] < f['plain_seconds'] and 0 < f['check_fraction'] < 1


def test_scaling(tiny_data, capsys, tmp_path):
  from benchmarks import scaling
  f = _run(scaling.main, ['--data', tiny_data, '--effect', 'toy', '--factors', '1,2',
                          '--train-factors', '', '--modes', 'in_memory',
                          '--scratch', str(tmp_path)], capsys)
  assert [r['factor'] for r in f['rows']] == [1, 2]
  assert f['rows'][1]['examples'] > f['rows'][0]['examples']
  assert 'plain_rtf_2x' in f and 'beam_in_memory_rtf_2x' in f   # (training: input_pipeline)


def test_input_pipeline(tiny_data, capsys):
  from benchmarks import input_pipeline
  f = _run(input_pipeline.main, ['--data', tiny_data, '--effect', 'toy', '--model', 'dense',
                                 '--run-epochs', '2'], capsys)
  assert f['memory_steps_per_s'] > 0 and f['tfdata_later_epochs_steps_per_s'] > 0
  assert f['parameters'] > 0 and f['flops_per_output_sample'] > 0


def test_train_to_quality(tiny_data, capsys):
  from benchmarks import train_to_quality
  f = _run(train_to_quality.main, ['--data', tiny_data, '--effect', 'toy', '--epochs', '1',
                                   '--threshold-db', '100', '--train', '{"model": "dense"}'],
           capsys)
  assert f['reached'] and f['epoch_at_threshold'] == 0
  assert [p['epoch'] for p in f['timeline']] == [0, 1]
  assert f['final_whole_file_esr_db'] == f['final_whole_file_esr_db']   # not NaN


def test_apply_speed(capsys):
  from benchmarks import apply_speed
  f = _run(apply_speed.main, ['--models', 'dense', '--seconds', '1', '--stream-seconds',
                              '0.05', '--repeats', '1'], capsys)
  assert f['dense_apply_rtf'] > 0 and f['dense_flops_per_sample'] > 0
  rtfs = {key: value for key, value in f.items() if key.endswith('_rtf')}
  assert rtfs and all(isinstance(v, (int, float)) and 0 < v < float('inf')
                      for v in rtfs.values()), rtfs
  # Two models of one architecture: each row keeps its own figures and its own goal.
  f = _run(apply_speed.main, ['--models', 'conv,conv', '--seconds', '0.5', '--stream-seconds',
                              '0.05', '--repeats', '1', '--stream-blocks', '64', '--no-tflite',
                              '--stream-signature-seconds', '0.05'], capsys)
  for i in (0, 1):
    assert f[f'model{i}_apply_rtf'] == f['models'][i]['apply_rtf'] > 0
    assert f[f'model{i}_apply_rtf_goal'] == 100.0
    assert f[f'model{i}_apply_rtf_goal_met'] == (f[f'model{i}_apply_rtf'] >= 100.0)
    assert f[f'model{i}_stream_savedmodel_64_rtf'] == f['stream_signature'][i]['rtf'] > 0
  assert not any(key.startswith('conv_') for key in f)


def test_layer_costs(capsys):
  from benchmarks import layer_costs
  f = _run(layer_costs.main, ['--seconds', '0.05', '--widths', '4', '--repeats', '1',
                              '--dilation', '4'], capsys)
  assert f['c4_copy_ratio'] == 1.0 and f['samples'] == 2205
  assert f['c4_wavenet_layer_ms'] > 0 and f['c4_conv_bias_add_ratio'] > 0


def test_apply_speed_stream_signature(capsys, tmp_path):
  """The stream-signature table (SavedModel and TFLite, one CPU) on a tiny hybrid model."""
  from benchmarks import apply_speed
  from tests.test_apply import export_tiny_model
  from tests.test_streaming import CONFIGS
  path = export_tiny_model(str(tmp_path / 'hybrid' / '1'), config=CONFIGS['hybrid'])
  f = _run(apply_speed.main, ['--model', path, '--seconds', '0.2', '--stream-seconds', '0.05',
                              '--repeats', '1', '--stream-blocks', '64',
                              '--stream-signature-seconds', '0.1'], capsys)
  for runtime in ('savedmodel', 'tflite'):
    assert f[f'hybrid_stream_{runtime}_64_rtf'] > 0
  assert f['hybrid_stream_latency_samples'] == 3
  assert [(r['runtime'], r['block']) for r in f['stream_signature']] == [
      ('savedmodel', 64), ('tflite', 64)]
  # Measured in a child process pinned to one CPU from its start.
  assert all(len(r['cpus_allowed']) == 1 for r in f['stream_signature'])


def test_peers_without_a_peer(tiny_data, capsys, tmp_path):
  """The peer table through the real pipeline, on a wall-clock budget (NAM itself needs
  its own environment, made by the benchmark on first use; not in the test suite).

  With --seeds 2 each trained row runs once per seed in its own run directory (seeds 0 and
  1 start from different weights, so their figures differ) and NAME is their mean. The FIR
  branch starts at zeros: a solved start on this nearly linear toy would leave the seeds
  nothing to change."""
  from benchmarks import peers
  small = '{"wavenet_channels": [4], "wavenet_dilations": [1, 2], "fir_init": "zeros"}'
  f = _run(peers.main, ['--case', 'toy', '--data', tiny_data, '--models', 'wavenet',
                        '--train', small, '--budget-seconds', '3', '--peers', 'none',
                        '--seeds', '2', '--out', str(tmp_path)], capsys)
  rows = f['toy']
  assert set(rows) == {'identity', 'fir', 'wavenet', 'wavenet#0', 'wavenet#1'}
  for row in rows.values():
    assert row['esr_db'] == row['esr_db'] and row['mrstft'] >= 0.0
  assert rows['fir']['esr_db'] < rows['identity']['esr_db']
  for run in ('wavenet#0', 'wavenet#1'):
    assert rows[run]['fit_seconds'] >= 3.0 and rows[run]['steps'] >= 1
    # Scored by the benchmark's own code and by the Evaluator: the same test audio.
    assert rows[run]['esr_db'] == pytest.approx(rows[run]['evaluator_esr_db'], abs=0.05)
  runs = [rows['wavenet#0']['esr_db'], rows['wavenet#1']['esr_db']]
  assert runs[0] != runs[1]
  mean = rows['wavenet']
  assert mean['esr_db'] == pytest.approx(sum(runs) / 2) and mean['seeds'] == 2
  assert (mean['esr_db_min'], mean['esr_db_max']) == (min(runs), max(runs))
  assert sorted(p.name for p in (tmp_path / 'toy' / 'fxemu').iterdir()) == [
      'wavenet-seed0', 'wavenet-seed1']
  with pytest.raises(SystemExit):
    peers.main(['--case', 'toy', '--seeds', '0'])


def test_peers_variant_rows_parse():
  """--variant LABEL=JSON: the label names the row, the model is the JSON's or the label's
  part before '+'; malformed values are a clear error."""
  from benchmarks import peers
  assert peers.parse_variant('hybrid+agc={"agc_strength": 1}') == (
      'hybrid+agc', {'model': 'hybrid', 'agc_strength': 1})
  assert peers.parse_variant('big={"model": "wavenet", "wavenet_channels": [16, 8]}') == (
      'big', {'model': 'wavenet', 'wavenet_channels': [16, 8]})
  for bad in ('hybrid+agc', 'x={"agc_strength": }', '={"a": 1}', 'x=[1]'):
    with pytest.raises(ValueError, match='--variant'):
      peers.parse_variant(bad)
  # A name only the pipeline has goes to its PipelineConfig, the rest to the TrainConfig.
  _, values = peers.parse_variant('hybrid+off={"capture_settings": false, "seed": 1}')
  assert peers.split_overrides(values) == ({'capture_settings': False},
                                           {'model': 'hybrid', 'seed': 1})
  from pipeline.configs import PipelineConfig
  run_config, train = peers.row_configs(PipelineConfig(output_dir='out'), 'hybrid', 3.0, values,
                                         'hybrid+off')
  assert (run_config.capture_settings, run_config.output_dir) == (False, 'out/fxemu/hybrid+off')
  assert (train.seed, train.train_seconds) == (1, 3.0)


@pytest.mark.parametrize('variant, problem', [
    ('hybrid16={"wavenet_channels": [16, 8]}', "model must be one of"),
    ('hybrid+x={"wavenet_chanels": [16, 8]}', 'wavenet_chanels'),
    ('hybrid+lr={"learning_rate": -1}', 'learning_rate'),
])
def test_peers_rejects_a_bad_row_before_training(variant, problem, tmp_path, capsys):
  """A row TrainConfig refuses stops the benchmark at the start, naming the row and the
  problem, not after the rows before it have trained (nothing is written)."""
  from benchmarks import peers
  with pytest.raises(SystemExit):
    peers.main(['--case', 'overdrive', '--models', 'hybrid', '--variant', variant,
                '--peers', 'none', '--out', str(tmp_path / 'out')])
  error = capsys.readouterr().err
  assert f'row {variant.split("=")[0]}' in error and problem in error
  assert not (tmp_path / 'out').exists()


def test_error_bands_on_a_pushed_model(tiny_data, capsys, tmp_path):
  """The whole script on a model pushed by the peer benchmark: its overall ESR is the
  benchmark's own figure for that model (the same test samples, the same sums), and the
  frequency bands add up to it."""
  from benchmarks import error_bands, peers
  small = '{"wavenet_channels": [4], "wavenet_dilations": [1, 2]}'
  f = _run(peers.main, ['--case', 'toy', '--data', tiny_data, '--models', 'wavenet',
                        '--train', small, '--budget-seconds', '2', '--peers', 'none',
                        '--out', str(tmp_path)], capsys)
  model = next((tmp_path / 'toy' / 'fxemu' / 'wavenet' / 'serving').glob('*/*/saved_model.pb'))
  bands = _run(error_bands.main, ['--case', 'toy', '--data', tiny_data, '--block', '1024',
                                  '--model', str(model.parent)], capsys)
  (name, overall), = bands['overall'].items()
  assert overall['esr_db'] == pytest.approx(f['toy']['wavenet']['esr_db'], abs=1e-3)
  assert sum(band['wet_share'] for band in bands['level']) == pytest.approx(1.0)
  assert sum(band['wet_share'] for band in bands['frequency']) == pytest.approx(1.0)
  from_bands = sum(band['wet_share'] * 10 ** (band['esr_db'][name] / 10)
                   for band in bands['frequency'] if band['wet_share'])
  assert 10 * math.log10(from_bands) == pytest.approx(overall['esr_db'], abs=1e-3)
  assert bands['level'][0]['low_dbfs'] is None and bands['level'][-1]['high_dbfs'] is None
  with pytest.raises(SystemExit):
    error_bands.main(['--case', 'toy', '--data', tiny_data, '--model', str(tmp_path)])
