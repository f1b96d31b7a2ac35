"""The Kubeflow Pipelines v2 spec: compiled from the same DAG, checked for what a cluster needs."""
import json
import os
import re

import pytest

from kubeflow import runner
from kubeflow.settings import KubeflowSettings
from pipeline.configs import PipelineConfig
from tests.conftest import REPO
from trainer.config import TrainConfig

STEPS = {'AudioExampleGen', 'StatisticsGen', 'ImportSchemaGen', 'ExampleValidator',
         'AnomaliesGate', 'CaptureSettings', 'Trainer', 'Evaluator', 'ServingCheck',
         'AtomicPusher'}
LOCAL_TRAINER_EXECUTOR = 'tfx.components.trainer.executor.GenericExecutor'
VERTEX_TRAINER_EXECUTOR = 'tfx.extensions.google_cloud_ai_platform.trainer.executor.GenericExecutor'
VERTEX = dict(trainer_workers=3, trainer_gpus=2, gpu_type='NVIDIA_TESLA_T4',
              trainer_machine_type='n1-standard-16', vertex_project='my-project',
              vertex_region='europe-west4')


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


@pytest.fixture(scope='module')
def vertex_spec(tmp_path_factory):
  out = tmp_path_factory.mktemp('kfp') / 'spec.json'
  settings = KubeflowSettings(
      image='registry.example/fxemu:1.2', pipeline_root='gs://bucket/fxemu/pipelines',
      output_file=str(out), **VERTEX)
  path = runner.compile_pipeline(PipelineConfig(effect='compressor'),
                                 TrainConfig(epochs=7, mixed_precision='mixed_float16'), settings)
  with open(path) as f:
    return json.load(f)


def _trainer_custom_config(spec):
  params = spec['pipelineSpec']['root']['dag']['tasks']['Trainer']['inputs']['parameters']
  return json.loads(params['custom_config']['runtimeValue']['constantValue']['stringValue'])


def _executor_class(spec, step):
  args = _container(spec, step)['args']
  return args[args.index('--executor_class_path') + 1]


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


def test_single_worker_trainer_trains_in_its_step(spec):
  assert _executor_class(spec, 'Trainer') == LOCAL_TRAINER_EXECUTOR
  custom_config = _trainer_custom_config(spec)
  assert not [k for k in custom_config if k.startswith('ai_platform')]
  assert TrainConfig.from_custom_config(custom_config).mixed_precision == 'off'


def test_several_workers_run_the_trainer_as_a_vertex_training_job(vertex_spec):
  from tfx.v1.extensions import google_cloud_ai_platform as vertex
  assert _executor_class(vertex_spec, 'Trainer') == VERTEX_TRAINER_EXECUTOR
  trainer = _container(vertex_spec, 'Trainer')
  assert trainer['image'] == 'registry.example/fxemu:1.2'
  # The step only submits and watches the job: no GPU, little CPU.
  assert trainer['resources'] == {'cpuLimit': runner.LAUNCHER_CPU,
                                  'memoryLimit': runner.LAUNCHER_MEMORY_GB}
  custom_config = _trainer_custom_config(vertex_spec)
  assert custom_config[vertex.ENABLE_VERTEX_KEY] is True
  assert custom_config[vertex.VERTEX_REGION_KEY] == 'europe-west4'
  job = custom_config[vertex.TRAINING_ARGS_KEY]
  assert job['project'] == 'my-project'
  assert job['display_name'] == 'fxemu-compressor-trainer'
  chief, workers = job['job_spec']['worker_pool_specs']
  assert (chief['replica_count'], workers['replica_count']) == (1, 2)
  for pool in (chief, workers):
    assert pool['container_spec'] == {'image_uri': 'registry.example/fxemu:1.2'}
    assert pool['machine_spec'] == {'machine_type': 'n1-standard-16',
                                    'accelerator_type': 'NVIDIA_TESLA_T4',
                                    'accelerator_count': 2}
  # run_fn reads the same dict: the extension's keys are let through, fxemu's are intact.
  train = TrainConfig.from_custom_config(custom_config)
  assert train.epochs == 7 and train.mixed_precision == 'mixed_float16'
  # Only the Trainer changes.
  for step in runner.BEAM_STEPS:
    assert _container(vertex_spec, step)['resources'] == {'cpuLimit': 4.0, 'memoryLimit': 16.0}
  tasks = vertex_spec['pipelineSpec']['root']['dag']['tasks']
  assert STEPS <= set(tasks)
  assert 'Trainer' in tasks['Evaluator']['dependentTasks']


def test_vertex_worker_pools_without_gpus():
  pools = runner.worker_pool_specs(KubeflowSettings(**dict(VERTEX, trainer_gpus=0,
                                                           trainer_workers=2)))
  assert [p['replica_count'] for p in pools] == [1, 1]
  assert all(p['machine_spec'] == {'machine_type': 'n1-standard-16'} for p in pools)


@pytest.mark.parametrize('change, message', [
    ({'vertex_project': ''}, '--vertex-project'),
    ({'vertex_region': '', 'vertex_project': ''}, '--vertex-project and --vertex-region'),
    ({'pipeline_root': '/mnt/pvc/pipelines'}, 'must be gs://'),
    ({'gpu_type': 'nvidia.com/gpu'}, 'not a Vertex AI accelerator type'),
    ({'trainer_workers': 0}, 'trainer_workers must be >= 1'),
])
def test_vertex_training_settings_are_checked(change, message):
  settings = KubeflowSettings(**{**VERTEX, 'pipeline_root': 'gs://b/p', **change})
  with pytest.raises(ValueError, match=re.escape(message)):
    runner.check_vertex_training(settings)


def test_train_config_lets_extension_keys_through_but_not_typos():
  from tfx.v1.extensions import google_cloud_ai_platform as vertex
  keys = [getattr(vertex, name) for name in vertex.__all__ if name.endswith('_KEY')]
  extension = {k: {'x': 1} for k in keys}
  assert TrainConfig.from_custom_config(dict(extension, epochs=3)).epochs == 3
  with pytest.raises(ValueError, match='unknown options'):
    TrainConfig.from_custom_config(dict(extension, epocs=3))


def test_compile_help_documents_the_cluster_and_precision_options(capsys):
  from pipeline.cli.main import build_parser
  with pytest.raises(SystemExit):
    build_parser().parse_args(['kubeflow', 'compile', '--help'])
  text = ' '.join(capsys.readouterr().out.split())
  for flag in ('--trainer-workers', '--trainer-machine-type', '--vertex-project',
               '--vertex-region', '--trainer-gpus', '--gpu-type', '--mixed-precision'):
    assert flag in text
  assert 'MultiWorkerMirroredStrategy' in text
  for choice in ('auto', 'off', 'mixed_float16', 'mixed_bfloat16'):
    assert choice in text
  with pytest.raises(SystemExit):   # argparse checks the choices
    build_parser().parse_args(['kubeflow', 'compile', '--mixed-precision', 'float8'])
  args = build_parser().parse_args(['kubeflow', 'compile', '--trainer-workers', '4',
                                    '--mixed-precision', 'mixed_bfloat16'])
  assert (args.trainer_workers, args.mixed_precision) == (4, 'mixed_bfloat16')


def test_tfjob_manifest_runs_the_trainer_entry_point_on_every_replica():
  import yaml
  from kubeflow import train_job
  from pipeline import pipeline as pipeline_lib
  with open(os.path.join(REPO, 'kubeflow', 'tfjob-trainer.yaml')) as f:
    job = yaml.safe_load(f)
  assert (job['apiVersion'], job['kind']) == ('kubeflow.org/v1', 'TFJob')
  replicas = job['spec']['tfReplicaSpecs']
  assert set(replicas) == {'Chief', 'Worker'} and replicas['Chief']['replicas'] == 1
  assert replicas['Worker']['replicas'] >= 1
  containers = [r['template']['spec']['containers'][0] for r in replicas.values()]
  assert all(c['name'] == 'tensorflow' for c in containers)   # the operator's container
  assert all(c['command'] == ['python', '-m', 'kubeflow.train_job'] for c in containers)
  assert containers[0]['args'] == containers[1]['args']
  args = train_job.build_parser().parse_args(containers[0]['args'])
  fn_args = train_job.fn_args(args)
  assert fn_args.train_files == ['EXAMPLES_URI/Split-train/*']
  assert fn_args.serving_model_dir == 'MODEL_DIR' and fn_args.model_run_dir == 'MODEL_DIR-run'
  # The manifest's window geometry is the one the pipeline's Trainer gets by default.
  expected = pipeline_lib.train_config_for(PipelineConfig(), TrainConfig())
  got = TrainConfig.from_custom_config(fn_args.custom_config)
  assert (got.window_samples, got.context_samples, got.sample_rate) == \
      (expected.window_samples, expected.context_samples, expected.sample_rate)
