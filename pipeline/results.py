"""What a pipeline run produced, read back from ML Metadata: stages, metrics, blessing, push."""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from tfx import v1 as tfx
from tfx.orchestration import metadata

from components import artifact_json
from schema import contract

@dataclasses.dataclass
class Stage:
  name: str
  state: str          # 'complete', 'cached', 'failed', 'running', ...
  seconds: float


@dataclasses.dataclass
class RunResult:
  stages: List[Stage]
  metrics: Dict[str, Dict[str, float]]     # slice name ('overall', 'source=piano', ...) -> key -> value
  blessed: Optional[bool]
  pushed: Optional[bool]
  pushed_destination: str
  model_uri: str
  evaluation_uri: str
  examples_uri: str
  model_run_uri: str = ''      # the Trainer's logs (fxemu_training.json, TensorBoard)
  anomalies_uri: str = ''      # ExampleValidator's per-split SchemaDiff.pb
  run_id: str = ''             # name of the newest pipeline_run context
  run_started: float = 0.0     # when that run began, s since the epoch


_STATES = {1: 'new', 2: 'running', 3: 'complete', 4: 'failed', 5: 'cached', 6: 'canceled'}


def _latest_by_type(store, context_id: int) -> Dict[str, object]:
  """The newest artifact of each type (by type name) in a context."""
  artifacts = store.get_artifacts_by_context(context_id)
  type_ids = sorted({a.type_id for a in artifacts})
  names = {t.id: t.name for t in store.get_artifact_types_by_id(type_ids)} if type_ids else {}
  latest = {}
  for artifact in artifacts:
    name = names[artifact.type_id]
    if name not in latest or artifact.id > latest[name].id:
      latest[name] = artifact
  return latest


def _custom(artifact, key, default=None):
  if artifact is None or key not in artifact.custom_properties:
    return default
  value = artifact.custom_properties[key]
  return value.string_value or value.int_value


def _node_name(store, execution, pipeline_name: str) -> str:
  """The component id of an execution (from its 'node' context: PIPELINE.COMPONENT)."""
  for context in store.get_contexts_by_execution(execution.id):
    if context.name.startswith(pipeline_name + '.'):
      return context.name[len(pipeline_name) + 1:]
  return store.get_execution_types_by_id([execution.type_id])[0].name


def stage_of(store, execution, pipeline_name: str) -> Stage:
  """One MLMD execution as a :class:`Stage` (seconds from its creation to its last update)."""
  return Stage(_node_name(store, execution, pipeline_name),
               _STATES.get(execution.last_known_state, '?'),
               (execution.last_update_time_since_epoch -
                execution.create_time_since_epoch) / 1000.0)


def _slice_name(slice_key) -> str:
  if not slice_key:
    return 'overall'
  return ', '.join(f'{k}={v.decode() if isinstance(v, bytes) else v}' for k, v in slice_key)


def load_metrics(evaluation_uri: str,
                 model_name: Optional[str] = None) -> Dict[str, Dict[str, float]]:
  """Per-slice metrics from a TFMA output directory: of the candidate model (with its
  ``*_diff`` to the baseline), or of ``model_name`` ('baseline': the last blessed model)."""
  import tensorflow_model_analysis as tfma  # start-up: TFX
  result = tfma.load_eval_result(evaluation_uri, model_name=model_name)
  out = {}
  for slice_key, by_output in result.slicing_metrics:
    values = {}
    for by_sub_key in by_output.values():
      for metrics in by_sub_key.values():
        for name, value in metrics.items():
          if isinstance(value, dict) and 'doubleValue' in value:
            values[name] = float(value['doubleValue'])
    out[_slice_name(slice_key)] = values
  return out


def read_run(metadata_path: str, pipeline_name: str) -> RunResult:
  """Reads the newest run of ``pipeline_name`` from its SQLite ML Metadata store."""
  config = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path)
  with metadata.Metadata(config) as m:
    store = m.store
    pipeline_context = store.get_context_by_type_and_name('pipeline', pipeline_name)
    if pipeline_context is None:
      raise FileNotFoundError(f'{metadata_path}: no run of pipeline {pipeline_name!r}')
    runs = store.get_contexts_by_type('pipeline_run')
    latest_run = max(runs, key=lambda c: c.create_time_since_epoch, default=None)
    stages = []
    if latest_run is not None:
      for execution in sorted(store.get_executions_by_context(latest_run.id),
                              key=lambda e: e.create_time_since_epoch):
        stages.append(stage_of(store, execution, pipeline_name))
    latest = _latest_by_type(store, pipeline_context.id)
    evaluation, blessing, pushed, model, examples, model_run, anomalies = (
        latest.get(name) for name in ('ModelEvaluation', 'ModelBlessing', 'PushedModel',
                                      'Model', 'Examples', 'ModelRun', 'ExampleAnomalies'))
  metrics = load_metrics(evaluation.uri) if evaluation is not None else {}
  return RunResult(
      stages=stages, metrics=metrics,
      blessed=None if blessing is None else bool(_custom(blessing, 'blessed', 0)),
      pushed=None if pushed is None else bool(_custom(pushed, 'pushed', 0)),
      pushed_destination=_custom(pushed, 'pushed_destination', '') or '',
      model_uri=model.uri if model else '', evaluation_uri=evaluation.uri if evaluation else '',
      examples_uri=examples.uri if examples else '',
      model_run_uri=model_run.uri if model_run else '',
      anomalies_uri=anomalies.uri if anomalies else '',
      run_id=latest_run.name if latest_run else '',
      run_started=latest_run.create_time_since_epoch / 1000.0 if latest_run else 0.0)


def training_summary(result: RunResult) -> Dict[str, Any]:
  """The Trainer's summary of the run's model (``fxemu_training.json`` in its ModelRun:
  the settings it trained with, the history, the steps; {} if there is none)."""
  return artifact_json.read(result.model_run_uri, contract.TRAINING_SUMMARY_FILE)
