"""The CaptureSettings step: the capture check's level-coverage warning gives the hybrid the
settings for a narrow capture, through TFX's hyperparameters channel into run_fn, and the
real pipeline wires it (locally and for Kubeflow)."""
import json
import os

import numpy as np
import pytest
from tfx.utils import io_utils

from components import capture_settings
from components import artifact_json
from components.audio import wav
from components.datagen import effects
from components.datagen import synth
from kubeflow import runner
from kubeflow.settings import KubeflowSettings
from pipeline import local_runner
from pipeline import results
from pipeline.cli import main
from pipeline.configs import PipelineConfig
from pipeline.pipeline import create_pipeline
from schema import contract
from tests.conftest import tiny_config
from trainer import export
from trainer.config import narrow_capture_settings
from trainer.config import NARROW_CAPTURE_SETTINGS
from trainer.config import TrainConfig

RATE = 44100


def _summary(severity='warning', check='level_coverage'):
  """An examples summary whose piano pair has one finding."""
  finding = {'severity': severity, 'check': check, 'message': 'piano.wav: half of it ...'}
  return {'check': {'pairs': {'fx - sweep': {'findings': []},
                              'fx - piano': {'findings': [finding]}}}}


def test_a_level_coverage_warning_gives_the_narrow_capture_settings():
  settings = narrow_capture_settings(TrainConfig())
  assert settings == NARROW_CAPTURE_SETTINGS
  assert capture_settings.settings_for(_summary(), settings) == settings
  assert TrainConfig().with_tuned(settings) != TrainConfig()


@pytest.mark.parametrize('summary', [
    _summary(severity='info'),      # a linear effect: only a note
    _summary(check='clipping'),     # another warning
    {},                             # examples without a check
])
def test_no_settings_without_the_warning(summary):
  assert capture_settings.settings_for(summary, NARROW_CAPTURE_SETTINGS) == {}


def test_a_setting_the_user_gave_is_kept_and_only_the_hybrid_gets_them():
  train = TrainConfig(weight_decay=0.3, wavenet_channels=(16, 8))   # the second not one
  assert narrow_capture_settings(train) == {
      'condition_latent_channels': NARROW_CAPTURE_SETTINGS['condition_latent_channels']}
  assert narrow_capture_settings(TrainConfig(model='conv')) == {}


def test_the_trainer_reads_the_written_settings_as_tfx_does(tmp_path):
  """The one file of the artifact (TFX's Trainer executor takes the only file in the
  directory), JSON that TrainConfig.with_tuned reads back to the same settings."""
  examples = tmp_path / 'examples'
  examples.mkdir()
  (examples / contract.EXAMPLES_SUMMARY_FILE).write_text(json.dumps(_summary()))
  output = tmp_path / 'hyperparameters'
  train = TrainConfig(weight_decay=0.05)
  settings = narrow_capture_settings(train)
  assert capture_settings.write_settings(str(examples), json.dumps(settings),
                                         str(output)) == settings
  with open(io_utils.get_only_uri_in_dir(str(output))) as f:
    tuned = train.with_tuned(json.load(f))
  assert tuned.condition_latent_channels == NARROW_CAPTURE_SETTINGS['condition_latent_channels']
  assert tuned.weight_decay == 0.05
  # No summary (or no warning): an empty set, which leaves the config as it is.
  empty = capture_settings.write_settings(str(tmp_path / 'none'), json.dumps(settings),
                                          str(tmp_path / 'empty'))
  with open(io_utils.get_only_uri_in_dir(str(tmp_path / 'empty'))) as f:
    assert empty == {} and train.with_tuned(json.load(f)) == train


def test_the_step_feeds_the_trainer_unless_tuning_or_turned_off():
  components = {c.id: c for c in create_pipeline(PipelineConfig(), TrainConfig(),
                                                 check_inputs=False).components}
  assert components['Trainer'].inputs['hyperparameters'].producer_component_id == \
      'CaptureSettings'
  assert json.loads(components['CaptureSettings'].exec_properties['settings']) == \
      NARROW_CAPTURE_SETTINGS
  for config in (PipelineConfig(capture_settings=False), PipelineConfig(tune=True)):
    ids = {c.id for c in create_pipeline(config, TrainConfig(), check_inputs=False).components}
    assert 'CaptureSettings' not in ids


def test_the_kubeflow_spec_feeds_the_trainer_from_the_step(tmp_path):
  settings = KubeflowSettings(image='registry.example/fxemu:1.2',
                              pipeline_root='gs://bucket/fxemu/pipelines',
                              output_file=str(tmp_path / 'spec.json'))
  with open(runner.compile_pipeline(PipelineConfig(), TrainConfig(), settings)) as f:
    tasks = json.load(f)['pipelineSpec']['root']['dag']['tasks']
  hyperparameters = tasks['Trainer']['inputs']['artifacts']['hyperparameters']
  assert hyperparameters['taskOutputArtifact']['producerTask'] == 'CaptureSettings'


def test_a_run_on_a_quiet_test_recording_trains_with_the_settings(tmp_path, capsys):
  """The real pipeline: an overdrive capture (the classic sweeps, at one level) and a
  piano 30 dB under it. The capture check
  warns, the CaptureSettings step passes the settings, the Trainer trains with them except
  the weight decay given here; the report of `fxemu run` names them."""
  data = tmp_path / 'data'
  synth.synthesize(str(data), effects=('overdrive',), seconds_per_signal=2.0,
                   piano_seconds=3.0, progress=False, signal_set='classic')
  pre = str(data / 'overdrive - pre - piano.wav')
  dry, _ = wav.read_wav(pre)
  quiet = (0.03 * dry).astype(np.float32)
  wav.write_wav(pre, quiet, RATE)
  wav.write_wav(str(data / 'overdrive - post - piano.wav'),
                effects.apply_effect(effects.preset('overdrive'), quiet, RATE), RATE)
  config = tiny_config(str(tmp_path / 'out'), str(data), effect='overdrive')
  train = TrainConfig(model='hybrid', train_seconds=0, epochs=1, weight_decay=0.05,
                      wavenet_dilations=(1, 2, 4, 8), condition_dilations=(1, 2),
                      batch_size=8, early_stopping_patience=0)
  local_runner.run(config, train)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  assert {s.name: s.state for s in result.stages}['CaptureSettings'] == 'complete'
  [warning] = capture_settings.level_warnings(artifact_json.examples_summary(result.examples_uri))
  assert warning.startswith(pre + ': half of this test recording is at or below')
  with open(os.path.join(result.model_run_uri, contract.TRAINING_SUMMARY_FILE)) as f:
    summary = json.load(f)
  assert summary['hyperparameters'] == {'condition_latent_channels': 16}
  assert summary['weight_decay'] == 0.05
  trained = TrainConfig.from_custom_config(export.read_metadata(
      os.path.join(result.model_uri, 'Format-Serving'))['train_config'])
  assert (trained.condition_latent_channels, trained.weight_decay) == (16, 0.05)
  main.print_run_summary(config, result)
  assert ("the Trainer took the capture check's settings: --condition-latent-channels 16 "
          '(the test audio plays at levels the capture did not; --no-capture-settings: '
          'not)') in capsys.readouterr().out
