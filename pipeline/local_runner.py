"""Runs the fxemu pipeline on this machine: TFX LocalDagRunner + Beam DirectRunner."""
from __future__ import annotations

from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib
from pipeline.configs import PipelineConfig
from trainer.config import TrainConfig


def run(config: PipelineConfig, train: TrainConfig) -> None:
  """Builds the DAG and runs it to the end (raises if a component fails)."""
  dag = pipeline_lib.create_pipeline(
      config, train,
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(config.metadata_path))
  tfx.orchestration.LocalDagRunner().run(dag)
