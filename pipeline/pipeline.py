"""The fxemu TFX pipeline: WAV pairs -> examples -> checked data -> model -> gate -> push.

    AudioExampleGen -> StatisticsGen -> ExampleValidator (ImportSchemaGen) -> AnomaliesGate
    (capture check)  ----------------------------------------------------^   -> [Tuner] -> Trainer -> Evaluator (TFMA, vs. last blessed model) -> AtomicPusher
                                                                            -> [CaptureSettings] -^
                               -> ServingCheck (loads as TF Serving, warm-up file) -^

(the Tuner with ``--tune`` only; the CaptureSettings step, which gives the Trainer the
settings for a capture that does not cover the test audio's levels, without it.)

The same DAG runs locally (LocalDagRunner, Beam DirectRunner) and on Kubeflow Pipelines
(KubeflowV2DagRunner); only the runner and the Beam args differ.
"""
from __future__ import annotations

import json
from typing import Any, Dict, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components.anomalies_gate import AnomaliesGate
from components.atomic_pusher import AtomicPusher
from components.audio.split_plan import eval_period_for
from components.audio_example_gen import AudioExampleGen
from components.audio_example_gen import input_fingerprint
from components.capture_settings import CaptureSettings
from components.serving_check import ServingCheck
from pipeline.configs import PipelineConfig
from schema import contract
from schema import SCHEMA_PATH
from trainer.config import narrow_capture_settings
from trainer.config import TrainConfig

TRAINER_RUN_FN = 'trainer.model.run_fn'
TUNER_FN = 'trainer.tuning.tuner_fn'
METRICS_MODULE = 'trainer.metrics'


def train_config_for(config: PipelineConfig, train: TrainConfig) -> TrainConfig:
  """The Trainer's settings with the window geometry taken from the pipeline config."""
  values = train.to_custom_config()
  values.update(window_samples=config.samples(config.window_seconds),
                context_samples=config.samples(config.context_seconds),
                sample_rate=config.sample_rate)
  return TrainConfig.from_custom_config(values)


def eval_config(config: PipelineConfig) -> tfma.EvalConfig:
  """TFMA settings: ESR/RMSE on the test split, sliced by file and channel, with the gate.

  Blessed only if (1) ESR <= ``esr_threshold_db``, (2) ESR is lower than output = input
  (the identity baseline) and (3) ESR is at most ``max_regression_db`` worse than the last
  blessed model's (this one is skipped while there is no blessed model yet).
  """
  def upper(bound):
    return tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(upper_bound={'value': bound}))

  esr_threshold = upper(config.esr_threshold_db)
  esr_threshold.change_threshold.CopyFrom(tfma.GenericChangeThreshold(
      direction=tfma.MetricDirection.LOWER_IS_BETTER,
      absolute={'value': config.max_regression_db}))

  def metric(class_name, threshold=None):
    return tfma.MetricConfig(class_name=class_name, module=METRICS_MODULE,
                             threshold=threshold)

  # TFMA matches a threshold to a metric config by name, so every thresholded key is a
  # metric of its own (trainer/metrics.py); all share one pass of sums over the data.
  return tfma.EvalConfig(
      model_specs=[
          tfma.ModelSpec(name='candidate', signature_name=contract.EXAMPLES_SIGNATURE,
                         label_key=contract.WET,
                         prediction_key=contract.WET_OUTPUT),
          tfma.ModelSpec(name='baseline', signature_name=contract.EXAMPLES_SIGNATURE,
                         label_key=contract.WET, prediction_key=contract.WET_OUTPUT,
                         is_baseline=True),
      ],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[contract.SOURCE]),
                     tfma.SlicingSpec(feature_keys=[contract.SOURCE, contract.CHANNEL])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          metric('AudioESR'), metric('AudioRMSE'), metric('AudioIdentityESRdB'),
          metric('AudioIdentityRMSE'), metric('AudioMRSTFT'),
          metric('AudioESRdB', esr_threshold),
          metric('AudioESRdBVsIdentity', upper(0.0)),
      ])])


def example_gen_properties(config: PipelineConfig) -> Dict[str, Any]:
  """The AudioExampleGen's parameters (lengths in samples) for ``config``."""
  return dict(input_base=config.data_path, effect=config.effect,
              sample_rate=config.sample_rate,
              window_samples=config.samples(config.window_seconds),
              hop_samples=config.samples(config.hop_seconds),
              context_samples=config.samples(config.context_seconds),
              block_samples=config.samples(config.block_seconds),
              eval_period=eval_period_for(config.eval_fraction),
              test_patterns=','.join(config.test_patterns), test_tail=config.test_tail,
              align=config.align,
              max_latency_samples=config.samples(config.max_latency_seconds))


def create_pipeline(config: PipelineConfig, train: TrainConfig,
                    metadata_connection_config=None,
                    check_inputs: bool = True,
                    schema_file: str = SCHEMA_PATH,
                    trainer_class=None,
                    trainer_custom_config: Optional[Dict[str, Any]] = None) -> tfx.dsl.Pipeline:
  """Builds the DAG for one effect. ``train`` holds the model/training settings.

  ``metadata_connection_config`` is the local runner's ML Metadata store (None on
  Kubeflow, where the cluster provides it). With ``check_inputs`` the data directory is
  fingerprinted now, so that new or changed recordings invalidate the cached examples
  (off when compiling for a cluster whose data this machine need not see).
  ``schema_file`` is the curated schema's path as the steps see it (inside the image on
  a cluster). ``trainer_class`` chooses the Trainer component (default
  ``tfx.components.Trainer``; the Kubeflow runner passes TFX's Vertex AI Training Trainer
  for several workers, as TFX's templates choose it) and ``trainer_custom_config`` adds its
  keys to the TrainConfig's in ``custom_config``.
  """
  train = train_config_for(config, train)
  example_gen = AudioExampleGen(
      **example_gen_properties(config),
      input_fingerprint=input_fingerprint(config.data_path, config.effect)
      if check_inputs else '')
  statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs['examples'])
  schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema_gen.outputs['schema'])
  # Beside the ExampleValidator: schema anomalies, and the capture check's errors that
  # the AudioExampleGen wrote into the examples' summary, stop the run before training.
  anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs['anomalies'],
                                 examples=example_gen.outputs['examples'],
                                 allow_unlearnable=int(config.allow_unlearnable))

  train_args = tfx.proto.TrainArgs(splits=['train'], num_steps=config.train_steps)
  eval_args = tfx.proto.EvalArgs(splits=['eval'], num_steps=None)
  tuner = None
  if config.tune:   # KerasTuner search; the Trainer takes its best hyperparameters
    tuner = tfx.components.Tuner(
        tuner_fn=TUNER_FN, examples=example_gen.outputs['examples'],
        schema=schema_gen.outputs['schema'], train_args=train_args, eval_args=eval_args,
        custom_config={**train.to_custom_config(), contract.TUNE_TRIALS: config.tune_trials,
                       contract.TUNE_SECONDS: config.tune_seconds})
    tuner.add_upstream_node(anomalies_gate)
  capture_settings = None
  if config.capture_settings and not tuner:   # the hybrid's settings for a narrow capture
    capture_settings = CaptureSettings(examples=example_gen.outputs['examples'],
                                       settings=json.dumps(narrow_capture_settings(train)))
    capture_settings.add_upstream_node(anomalies_gate)
  trainer = (trainer_class or tfx.components.Trainer)(
      run_fn=TRAINER_RUN_FN,
      examples=example_gen.outputs['examples'],
      schema=schema_gen.outputs['schema'],
      hyperparameters=(tuner.outputs['best_hyperparameters'] if tuner else
                       capture_settings.outputs['hyperparameters'] if capture_settings
                       else None),
      train_args=train_args, eval_args=eval_args,
      custom_config={**train.to_custom_config(), **(trainer_custom_config or {})})
  trainer.add_upstream_node(anomalies_gate)

  model_resolver = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
      model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
  ).with_id('latest_blessed_model_resolver')

  evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs['examples'],
      model=trainer.outputs['model'],
      baseline_model=model_resolver.outputs['model'],
      eval_config=eval_config(config),
      example_splits=['test'])

  serving_check = ServingCheck(model=trainer.outputs['model'],
                               warmup_samples=config.sample_rate)

  # The Pusher takes the model from the serving check's blessing: the checked copy that
  # carries TF Serving's warm-up requests.
  pusher = AtomicPusher(
      infra_blessing=serving_check.outputs['blessing'],
      model_blessing=evaluator.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=config.serving_path)))

  components = [example_gen, statistics_gen, schema_gen, example_validator, anomalies_gate,
                *([tuner] if tuner else []),
                *([capture_settings] if capture_settings else []),
                trainer, model_resolver, evaluator, serving_check, pusher]
  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=config.beam_pipeline_args)
