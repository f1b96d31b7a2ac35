"""The one flags/env codec (pipeline/flags.py), through the paths production code takes:
``fxemu run`` and ``fxemu kubeflow`` argument parsing, ``python -m kubeflow.train_job``
and the ``FXEMU_*`` variables of kubeflow/runner.py."""
import pytest

from kubeflow import runner
from kubeflow import train_job
from pipeline import flags
from pipeline.cli import main as cli
from pipeline.configs import PipelineConfig
from trainer.config import TrainConfig


def _run_configs(argv):
  args = cli.build_parser().parse_args(['run', *argv])
  return (flags.dataclass_from_flags(PipelineConfig, args),
          flags.dataclass_from_flags(TrainConfig, args))


def test_fxemu_run_flags_reach_both_configs():
  config, train = _run_configs(['--effect', 'lowpass', '--align', '--no-enable-cache',
                                '--latent-dilations', '1, 2,4', '--learning-rate', '1e-3',
                                '--no-causal', '--window-seconds', '0.3'])
  assert config.effect == 'lowpass' and config.align is True and config.enable_cache is False
  assert config.window_seconds == 0.3
  assert train.latent_dilations == (1, 2, 4) and train.learning_rate == 1e-3
  assert train.causal is False


def test_fxemu_run_defaults_are_the_dataclasses():
  config, train = _run_configs([])
  assert config == PipelineConfig() and train == TrainConfig()


def test_fxemu_run_has_no_flags_for_the_window_geometry_the_pipeline_sets():
  with pytest.raises(SystemExit):
    _run_configs(['--window-samples', '100'])


@pytest.mark.parametrize('argv', [['--window-seconds', 'long'], ['--epochs', '2.5']])
def test_fxemu_run_rejects_bad_text(argv, capsys):
  with pytest.raises(SystemExit):
    _run_configs(argv)
  assert 'invalid' in capsys.readouterr().err


def test_fxemu_kubeflow_compile_flags():
  args = cli.build_parser().parse_args(['kubeflow', 'compile', '--image', 'r/fxemu:1',
                                        '--trainer-gpus', '2', '--effect', 'reverb'])
  assert flags.dataclass_from_flags(runner.KubeflowSettings, args).trainer_gpus == 2
  assert flags.dataclass_from_flags(PipelineConfig, args).effect == 'reverb'


def test_train_job_flags():
  args = train_job.build_parser().parse_args(['--examples', 'gs://b/e', '--model-dir', 'gs://b/m',
                                              '--window-samples', '2048', '--no-causal'])
  train = flags.dataclass_from_flags(TrainConfig, args)
  assert train.window_samples == 2048 and train.causal is False


@pytest.mark.parametrize('text,value', [('1', True), ('TRUE', True), ('yes', True), ('on', True),
                                        ('0', False), ('false', False), ('No', False),
                                        ('off', False)])
def test_environment_booleans(text, value):
  config, _, _ = runner.settings_from_env({'FXEMU_ALIGN': text})
  assert config.align is value


@pytest.mark.parametrize('text', ['ture', '', 'enabled', '2'])
def test_environment_rejects_a_boolean_it_cannot_read(text):
  """A typo must not silently turn an option off."""
  with pytest.raises(ValueError, match='FXEMU_ALIGN'):
    runner.settings_from_env({'FXEMU_ALIGN': text})


def test_environment_numbers_and_tuples():
  config, train, settings = runner.settings_from_env({
      'FXEMU_WINDOW_SECONDS': '0.3', 'FXEMU_LATENT_DILATIONS': '1, 3', 'FXEMU_IMAGE': 'a/b:c'})
  assert config.window_seconds == 0.3 and train.latent_dilations == (1, 3)
  assert settings.image == 'a/b:c'
  with pytest.raises(ValueError, match='FXEMU_EPOCHS'):
    runner.settings_from_env({'FXEMU_EPOCHS': 'many'})
