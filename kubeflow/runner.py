"""Compiles the fxemu pipeline for Kubeflow Pipelines 2.x / Vertex AI Pipelines.

The DAG is the same ``pipeline.pipeline.create_pipeline`` the local runner uses;
``KubeflowV2DagRunner`` turns it into a KFP v2 pipeline spec (JSON) whose steps run the
image built from ``kubeflow/Dockerfile``. Components are referenced by importable dotted
paths inside that image (``trainer.model.run_fn``, ``components.audio_example_gen``), so
compiling uploads nothing.

As a script this file is what TFX's CLI expects for Vertex:
    tfx pipeline create --engine vertex --pipeline_path kubeflow/runner.py
Settings come from ``FXEMU_*`` environment variables (see :func:`settings_from_env`).

With ``trainer_workers > 1`` the Trainer step runs TFX's Vertex AI Training extension
executor (``tfx.extensions.google_cloud_ai_platform.Trainer``): it submits a CustomJob
whose worker pools (1 chief + N - 1 workers) run the same image and the same
``trainer.model.run_fn``, and waits for it (:func:`cluster_pipeline`).
"""
from __future__ import annotations

import dataclasses
import os
import re
import sys

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from kubeflow.settings import KubeflowSettings
from pipeline import pipeline as pipeline_lib
from pipeline.configs import PipelineConfig
from pipeline.flags import dataclass_from_env
from trainer.config import TrainConfig

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
BEAM_STEPS = ('AudioExampleGen', 'StatisticsGen', 'Evaluator')
TRAINER_STEP = 'Trainer'
# The Trainer step that only submits and watches a Vertex AI Training job.
LAUNCHER_CPU, LAUNCHER_MEMORY_GB = 1.0, 4.0
VERTEX_ACCELERATOR = re.compile(r'^[A-Z][A-Z0-9_]+$')   # NVIDIA_TESLA_T4, NVIDIA_L4, TPU_V3...


def trainer_resources(settings: KubeflowSettings) -> ResourceSpec:
  spec = ResourceSpec(cpu_limit=settings.trainer_cpu, memory_limit=settings.trainer_memory_gb)
  if settings.trainer_gpus > 0:
    spec.accelerator.type = settings.gpu_type
    spec.accelerator.count = settings.trainer_gpus
  return spec


def beam_resources(settings: KubeflowSettings) -> ResourceSpec:
  return ResourceSpec(cpu_limit=settings.beam_cpu, memory_limit=settings.beam_memory_gb)


def check_vertex_training(settings: KubeflowSettings) -> None:
  """Raises ValueError if the settings cannot run a multi-worker Vertex Training job."""
  if settings.trainer_workers < 1:
    raise ValueError(f'trainer_workers must be >= 1, got {settings.trainer_workers}')
  if settings.trainer_workers == 1:
    return
  missing = [f'--{name.replace("_", "-")}' for name in ('vertex_project', 'vertex_region')
             if not getattr(settings, name)]
  if missing:
    raise ValueError(f'--trainer-workers {settings.trainer_workers} runs the Trainer as a '
                     f'Vertex AI Training job: set {" and ".join(missing)}')
  if not settings.pipeline_root.startswith('gs://'):
    raise ValueError('--trainer-workers > 1: the Vertex AI Training replicas read the examples '
                     'and write the model under the pipeline root, which must be gs://..., '
                     f'got {settings.pipeline_root!r}')
  if settings.trainer_gpus > 0 and not VERTEX_ACCELERATOR.match(settings.gpu_type):
    raise ValueError(f'--gpu-type {settings.gpu_type!r} is not a Vertex AI accelerator type; '
                     'with --trainer-workers > 1 use one such as NVIDIA_TESLA_T4 or NVIDIA_L4')


def worker_pool_specs(settings: KubeflowSettings):
  """Vertex CustomJob worker pools: [chief (1 replica), workers (trainer_workers - 1)].

  Every replica runs the fxemu image; TFX's extension sets each pool's command to its
  executor entry point (``python -m tfx.scripts.run_executor ...``).
  """
  machine = {'machine_type': settings.trainer_machine_type}
  if settings.trainer_gpus > 0:
    machine.update(accelerator_type=settings.gpu_type, accelerator_count=settings.trainer_gpus)

  def pool(replicas):
    return {'machine_spec': dict(machine), 'replica_count': replicas,
            'container_spec': {'image_uri': settings.image}}
  return [pool(1), pool(settings.trainer_workers - 1)]


def vertex_custom_config(settings: KubeflowSettings, display_name: str):
  """The extension's keys of the Trainer's custom_config (next to the TrainConfig keys)."""
  vertex = tfx.extensions.google_cloud_ai_platform
  return {
      vertex.ENABLE_VERTEX_KEY: True,
      vertex.VERTEX_REGION_KEY: settings.vertex_region,
      vertex.TRAINING_ARGS_KEY: {
          'project': settings.vertex_project,
          'display_name': display_name,
          'job_spec': {'worker_pool_specs': worker_pool_specs(settings)},
      },
  }


def cluster_pipeline(config: PipelineConfig, train: TrainConfig,
                     settings: KubeflowSettings) -> tfx.dsl.Pipeline:
  """The DAG with cluster paths, Beam args and per-step resources (and, with
  ``trainer_workers > 1``, the Trainer as a Vertex AI Training job)."""
  check_vertex_training(settings)
  config = dataclasses.replace(
      config, data_dir=config.data_dir or settings.data_root,
      output_dir=settings.pipeline_root,
      serving_dir=config.serving_dir or f'{settings.serving_root.rstrip("/")}/{config.effect}',
      beam_args=settings.beam_args)
  vertex = settings.trainer_workers > 1
  # As TFX's templates do: with several workers the Trainer is the Vertex AI Training
  # extension's (the same component with another executor, which submits a CustomJob and
  # waits), and its custom_config carries the job next to the TrainConfig keys (run_fn
  # ignores the ai_platform_* keys).
  dag = pipeline_lib.create_pipeline(
      config, train, metadata_connection_config=None, check_inputs=False,
      schema_file=settings.schema_file,
      trainer_class=tfx.extensions.google_cloud_ai_platform.Trainer if vertex else None,
      trainer_custom_config=vertex_custom_config(settings, f'{config.pipeline_name}-trainer')
      if vertex else None)
  dag.pipeline_info.pipeline_root = settings.pipeline_root
  for component in dag.components:
    if component.id == TRAINER_STEP and vertex:
      component.with_platform_config(ResourceSpec(cpu_limit=LAUNCHER_CPU,
                                                  memory_limit=LAUNCHER_MEMORY_GB))
    elif component.id == TRAINER_STEP:
      component.with_platform_config(trainer_resources(settings))
    elif component.id in BEAM_STEPS:
      component.with_platform_config(beam_resources(settings))
  return dag


def compile_pipeline(config: PipelineConfig, train: TrainConfig,
                     settings: KubeflowSettings) -> str:
  """Writes the KFP v2 pipeline spec to ``settings.output_file``; returns its path."""
  dag = cluster_pipeline(config, train, settings)
  output_dir, output_file = os.path.split(os.path.abspath(settings.output_file))
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=settings.image),
      output_dir=output_dir, output_filename=output_file)
  runner.run(dag, write_out=True)
  return os.path.join(output_dir, output_file)


def settings_from_env(environ=os.environ):
  """(PipelineConfig, TrainConfig, KubeflowSettings) from FXEMU_<FIELD> variables.

  E.g. FXEMU_IMAGE, FXEMU_PIPELINE_ROOT, FXEMU_EFFECT, FXEMU_TRAINER_GPUS, FXEMU_EPOCHS.
  """
  return (dataclass_from_env(PipelineConfig, environ), dataclass_from_env(TrainConfig, environ),
          dataclass_from_env(KubeflowSettings, environ))


def main() -> int:
  config, train, settings = settings_from_env()
  path = compile_pipeline(config, train, settings)
  print(f'wrote {path}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
