"""The Kubeflow Pipelines v2 spec: compiled from the same DAG, checked for what a cluster needs."""
import json

import pytest

from kubeflow import runner
from kubeflow.settings import KubeflowSettings
from pipeline.configs import PipelineConfig
from trainer.config import TrainConfig

STEPS = {'AudioExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator',
         'AnomaliesGate', 'Trainer', 'Evaluator', 'ServingCheck', 'AtomicPusher'}


@pytest.fixture(scope='module')
def spec(tmp_path_factory):
  out = tmp_path_factory.mktemp('kfp') / 'spec.json'
  settings = KubeflowSettings(
      image='registry.example/fxemu:1.2', pipeline_root='gs://bucket/fxemu/pipelines',
      data_root='gs://bucket/fxemu/data', serving_root='gs://bucket/fxemu/serving',
      beam_args='--runner=DataflowRunner --region=europe-west4 --setup_file=/fxemu/setup.py',
      trainer_gpus=2, gpu_type='nvidia.com/gpu', output_file=str(out))
  path = runner.compile_pipeline(PipelineConfig(effect='compressor'), TrainConfig(), settings)
  with open(path) as f:
    return json.load(f)


def _executors(spec):
  return spec['pipelineSpec']['deploymentSpec']['executors']


def _container(spec, step):
  return _executors(spec)[f'{step}_executor']['container']


def test_every_step_is_present_and_runs_the_image(spec):
  tasks = spec['pipelineSpec']['root']['dag']['tasks']
  assert STEPS <= set(tasks)
  for step in STEPS:
    assert _container(spec, step)['image'] == 'registry.example/fxemu:1.2'
  assert spec['runtimeConfig']['gcsOutputDirectory'] == 'gs://bucket/fxemu/pipelines'


def test_trainer_asks_for_gpus_and_beam_steps_for_cpu(spec):
  resources = _container(spec, 'Trainer')['resources']
  assert resources['accelerator'] == {'type': 'nvidia.com/gpu', 'count': '2'}
  assert resources['cpuLimit'] == 8.0 and resources['memoryLimit'] == 32.0
  for step in runner.BEAM_STEPS:
    assert _container(spec, step)['resources'] == {'cpuLimit': 4.0, 'memoryLimit': 16.0}
    assert '--runner=DataflowRunner' in _container(spec, step)['args']
    assert '--setup_file=/fxemu/setup.py' in _container(spec, step)['args']


def test_components_are_referenced_by_dotted_paths_inside_the_image(spec):
  tasks = spec['pipelineSpec']['root']['dag']['tasks']
  trainer_params = tasks['Trainer']['inputs']['parameters']
  assert trainer_params['run_fn']['runtimeValue']['constantValue']['stringValue'] == \
      'trainer.model.run_fn'
  assert 'module_file' not in trainer_params and 'module_path' not in trainer_params
  assert 'components.audio_example_gen.Executor' in _container(spec, 'AudioExampleGen')['args']
  schema = tasks['ImportSchemaGen']['inputs']['parameters']['schema_file']
  assert schema['runtimeValue']['constantValue']['stringValue'] == '/fxemu/schema/schema.pbtxt'
  example_gen = tasks['AudioExampleGen']['inputs']['parameters']
  assert example_gen['input_base']['runtimeValue']['constantValue']['stringValue'] == \
      'gs://bucket/fxemu/data'
  push = json.loads(tasks['AtomicPusher']['inputs']['parameters']['push_destination']
                    ['runtimeValue']['constantValue']['stringValue'])
  assert push['filesystem']['base_directory'] == 'gs://bucket/fxemu/serving/compressor'
  assert 'wheel' not in json.dumps(spec).lower()


def test_settings_from_environment():
  config, train, settings = runner.settings_from_env({
      'FXEMU_IMAGE': 'x/y:z', 'FXEMU_EFFECT': 'lowpass', 'FXEMU_TRAINER_GPUS': '4',
      'FXEMU_EPOCHS': '7', 'FXEMU_ALIGN': 'true', 'FXEMU_LATENT_DILATIONS': '1,2,4'})
  assert settings.image == 'x/y:z' and settings.trainer_gpus == 4
  assert config.effect == 'lowpass' and config.align is True
  assert train.epochs == 7 and train.latent_dilations == (1, 2, 4)
