"""The real TFX pipeline end to end (LocalDagRunner, Beam DirectRunner) on a tiny data set.

One run (``first_run``, shared by the session: tests/conftest.py) is checked for its
artifacts; each test that runs the pipeline again (the cache, the release gate: a model is
pushed only when blessed) does so on its own copy of that run (``own_run``), so the tests
pass in any order and leave the shared run as it was. The anomaly stop has its own data.
"""
import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from components.audio import wav
from pipeline import local_runner
from pipeline import results
from pipeline.configs import PipelineConfig
from tests.conftest import TINY_TRAIN
from tests.conftest import tiny_config
from trainer.config import TrainConfig



@pytest.fixture
def own_run(first_run, tmp_path):
  """(config, RunResult) of a copy of the shared first run: output directory, metadata
  store and serving directory (the artifacts the store points at are the shared run's,
  only read)."""
  config, result = first_run
  output = str(tmp_path / 'run')
  shutil.copytree(config.output_dir, output, symlinks=True)
  return dataclasses.replace(config, output_dir=output), result


def _versions(serving_path):
  return sorted(v for v in os.listdir(serving_path) if v.isdigit()) \
      if os.path.isdir(serving_path) else []


def test_run_produces_splits_metrics_and_a_pushed_model(first_run):
  config, result = first_run
  assert {s.state for s in result.stages} == {'complete'}, result.stages
  for split in ('train', 'eval', 'test'):
    assert tf.io.gfile.glob(os.path.join(result.examples_uri, f'Split-{split}', '*.gz'))
  overall = result.metrics['overall']
  assert overall['esr_db'] < overall['identity_esr_db'] < 0
  assert overall['rmse'] < overall['identity_rmse']
  assert 'source=piano' in result.metrics
  assert result.blessed and result.pushed
  versions = _versions(config.serving_path)
  assert len(versions) == 1
  pushed = os.path.join(config.serving_path, versions[0])
  assert os.path.isfile(os.path.join(pushed, 'saved_model.pb'))
  # pushed from the serving check's copy, with TF Serving's warm-up requests
  assert os.path.isfile(os.path.join(pushed, 'assets.extra', 'tf_serving_warmup_requests'))
  loaded = tf.saved_model.load(pushed)
  audio = np.random.default_rng(0).uniform(-0.5, 0.5, [2, 3000]).astype(np.float32)
  out = loaded.signatures['serving_default'](audio=tf.constant(audio))
  assert list(out.values())[0].shape == (2, 3000)


def test_rerun_is_served_from_the_cache(own_run):
  config, first = own_run
  local_runner.run(config, TrainConfig(**TINY_TRAIN))
  again = results.read_run(config.metadata_path, config.pipeline_name)
  states = {s.name: s.state for s in again.stages}
  assert states['AudioExampleGen'] == 'cached' and states['Trainer'] == 'cached', states
  assert again.model_uri == first.model_uri
  assert len(_versions(config.serving_path)) == 1


def test_a_model_that_fails_the_gate_is_not_pushed(own_run):
  config, _ = own_run
  before = _versions(config.serving_path)
  strict = dataclasses.replace(config, esr_threshold_db=-300.0)
  local_runner.run(strict, TrainConfig(**TINY_TRAIN))
  result = results.read_run(strict.metadata_path, strict.pipeline_name)
  states = {s.name: s.state for s in result.stages}
  assert states['Trainer'] == 'cached' and states['Evaluator'] == 'complete'
  assert result.blessed is False and not result.pushed
  assert _versions(config.serving_path) == before and len(before) == 1


def test_a_model_worse_than_the_last_blessed_one_is_not_pushed(own_run):
  """A weaker model (an 8-tap linear branch started by least squares, one epoch) that still
  beats output = input (the tiny data's effect is not linear, so --fir-init auto would
  start the branch at zeros)."""
  import tensorflow_model_analysis as tfma
  config, first = own_run
  before = _versions(config.serving_path)
  weaker = TrainConfig(**dict(TINY_TRAIN, epochs=1, fir_taps=8, fir_lookahead=2,
                              fir_init='least_squares'))
  local_runner.run(config, weaker)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  overall = result.metrics['overall']
  assert overall['esr_db'] > first.metrics['overall']['esr_db']
  assert overall['esr_db'] < overall['identity_esr_db']  # only the regression check fails
  assert result.blessed is False and not result.pushed
  assert _versions(config.serving_path) == before
  validation = tfma.load_validation_result(result.evaluation_uri)
  failures = [f for s in validation.metric_validations_per_slice for f in s.failures]
  assert failures and all(f.metric_threshold.HasField('change_threshold') or
                          f.metric_key.is_diff for f in failures), failures


def test_schema_anomalies_stop_the_pipeline_before_training(tmp_path, tiny_data):
  data = tmp_path / 'data'
  data.mkdir()
  for name in os.listdir(tiny_data):
    os.symlink(os.path.join(tiny_data, name), data / name)
  # A float recording that goes past full scale breaks the schema's [-1, 1] range.
  loud = np.zeros([44100, 2], np.float32)
  loud[1000:2000] = 1.5
  wav.write_wav(str(data / 'lowpass - pre - loud.wav'), loud, 44100, 'FLOAT')
  wav.write_wav(str(data / 'lowpass - post - loud.wav'), loud * 0.5, 44100, 'FLOAT')
  config = tiny_config(str(tmp_path / 'out'), str(data))
  with pytest.raises(Exception) as error:
    local_runner.run(config, TrainConfig(**TINY_TRAIN))
  assert 'do not match schema' in str(error.value) and "'dry'" in str(error.value)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  assert 'Trainer' not in {s.name for s in result.stages}
  assert not _versions(config.serving_path)


def test_pipeline_on_the_original_recordings(tmp_path, seed_audio):
  """The seed recordings (lowpass): train on the sweeps, test on the piano piece."""
  config = PipelineConfig(data_dir=seed_audio, effect='lowpass', output_dir=str(tmp_path),
                          hop_seconds=0.5, beam_args='--direct_running_mode=in_memory')
  local_runner.run(config, TrainConfig(**dict(TINY_TRAIN, epochs=2)))
  result = results.read_run(config.metadata_path, config.pipeline_name)
  assert {k for k in result.metrics if k.startswith('source=')} == {'source=beethoven_opus10_1'}
  overall = result.metrics['overall']
  assert -13 < overall['identity_esr_db'] < -10  # the recordings' known identity ESR
  assert overall['esr_db'] < -30                   # a linear effect: far past identity
  assert result.blessed and result.pushed


def test_killed_during_training_resumes_from_the_cache(tmp_path, tiny_data, first_run):
  """SIGKILL while the Trainer runs; the re-run reuses finished steps and completes."""
  import json
  import signal
  import subprocess
  import sys
  import time
  from tests.conftest import REPO
  config = tiny_config(str(tmp_path / 'out'), tiny_data)
  train = TrainConfig(**dict(TINY_TRAIN, epochs=30, early_stopping_patience=0))
  args = json.dumps({'pipeline': dataclasses.asdict(config), 'train': train.to_custom_config()})
  process = subprocess.Popen([sys.executable, '-m', 'tests.pipeline_process', args], cwd=REPO,
                             env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
  trainer_dir = os.path.join(config.pipeline_root, 'Trainer', 'model_run')
  deadline = time.time() + 300
  while time.time() < deadline and process.poll() is None:
    if tf.io.gfile.glob(os.path.join(trainer_dir, '*', '*')):  # training has started
      break
    time.sleep(0.5)
  assert process.poll() is None, 'the pipeline ended before the Trainer was reached'
  time.sleep(3)
  os.killpg(process.pid, signal.SIGKILL)
  process.wait()
  assert not _versions(config.serving_path)

  local_runner.run(config, train)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  states = {s.name: s.state for s in result.stages}
  assert states['AudioExampleGen'] == 'cached' and states['StatisticsGen'] == 'cached'
  assert states['Trainer'] == 'complete' and result.pushed
  # the same data and settings as the uninterrupted run of the first test: same quality
  uninterrupted = first_run[1].metrics['overall']['esr_db']
  assert result.metrics['overall']['esr_db'] < uninterrupted + 3.0
