"""Compiles the fxemu pipeline for Kubeflow Pipelines 2.x / Vertex AI Pipelines.

The DAG is the same ``pipeline.pipeline.create_pipeline`` the local runner uses;
``KubeflowV2DagRunner`` turns it into a KFP v2 pipeline spec (JSON) whose steps run the
image built from ``kubeflow/Dockerfile``. Components are referenced by importable dotted
paths inside that image (``trainer.model.run_fn``, ``components.audio_example_gen``), so
compiling uploads nothing.

As a script this file is what TFX's CLI expects for Vertex:
    tfx pipeline create --engine vertex --pipeline_path kubeflow/runner.py
Settings come from ``FXEMU_*`` environment variables (see :func:`settings_from_env`).
"""
from __future__ import annotations

import dataclasses
import os
import sys

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx

from kubeflow.settings import KubeflowSettings
from pipeline import pipeline as pipeline_lib
from pipeline.configs import PipelineConfig
from pipeline.configs import field_default
from pipeline.configs import parse_text
from trainer.config import TrainConfig

ResourceSpec = pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec.ResourceSpec
BEAM_STEPS = ('AudioExampleGen', 'StatisticsGen', 'Evaluator')
TRAINER_STEP = 'Trainer'


def trainer_resources(settings: KubeflowSettings) -> ResourceSpec:
  spec = ResourceSpec(cpu_limit=settings.trainer_cpu, memory_limit=settings.trainer_memory_gb)
  if settings.trainer_gpus > 0:
    spec.accelerator.type = settings.gpu_type
    spec.accelerator.count = settings.trainer_gpus
  return spec


def beam_resources(settings: KubeflowSettings) -> ResourceSpec:
  return ResourceSpec(cpu_limit=settings.beam_cpu, memory_limit=settings.beam_memory_gb)


def cluster_pipeline(config: PipelineConfig, train: TrainConfig,
                     settings: KubeflowSettings) -> tfx.dsl.Pipeline:
  """The DAG with cluster paths, Beam args and per-step resources."""
  config = dataclasses.replace(
      config, data_dir=config.data_dir or settings.data_root,
      output_dir=settings.pipeline_root,
      serving_dir=config.serving_dir or f'{settings.serving_root.rstrip("/")}/{config.effect}',
      beam_args=settings.beam_args)
  dag = pipeline_lib.create_pipeline(config, train, metadata_connection_config=None,
                                     check_inputs=False, schema_file=settings.schema_file)
  dag.pipeline_info.pipeline_root = settings.pipeline_root
  for component in dag.components:
    if component.id == TRAINER_STEP:
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
  def build(cls):
    values = {}
    for field in dataclasses.fields(cls):
      raw = environ.get('FXEMU_' + field.name.upper())
      if raw is not None:
        values[field.name] = parse_text(field_default(field), raw)
    return cls(**values)
  return build(PipelineConfig), build(TrainConfig), build(KubeflowSettings)


def main() -> int:
  config, train, settings = settings_from_env()
  path = compile_pipeline(config, train, settings)
  print(f'wrote {path}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
