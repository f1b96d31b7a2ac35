"""docs/configuration.md is generated from the option dataclasses and must stay in step."""
import dataclasses

from kubeflow.settings import KubeflowSettings
from pipeline.cli import config_reference
from pipeline.configs import PipelineConfig
from trainer.config import TrainConfig


def test_configuration_reference_is_up_to_date():
  assert config_reference.main(['--check']) == 0, (
      'docs/configuration.md is stale: run .venv/bin/python -m pipeline.cli.config_reference')


def test_every_option_has_a_row_with_help_text():
  text = config_reference.render()
  for cls in (PipelineConfig, TrainConfig, KubeflowSettings):
    for field in dataclasses.fields(cls):
      if field.name in config_reference.TRAIN_FIELDS_SET_BY_PIPELINE and cls is TrainConfig:
        continue
      flag = '--' + field.name.replace('_', '-')
      row = next((l for l in text.splitlines() if l.startswith(f'| `{flag}` |')), None)
      assert row is not None, f'{cls.__name__}.{field.name} has no row'
      assert row.rstrip('| ').split('|')[-1].strip(), f'{flag} has no help text'
