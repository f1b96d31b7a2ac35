"""AnomaliesGate: stops the pipeline before training when the data cannot teach a model.

TFX's ExampleValidator records anomalies but lets the pipeline go on; this component,
beside it, fails the run with a readable message on

* any schema anomaly in the ExampleValidator's ``SchemaDiff.pb`` (naming each split,
  feature and problem), so that no model is trained on data that breaks the schema;
* any error of the capture check (:mod:`components.audio.capture_check`), which the
  AudioExampleGen ran on every pair and wrote into the examples' summary
  (``fxemu_summary.json``, ``check``): a wet side that leads its dry side, a latency
  beyond the search range, no coherence, nothing that predicts the wet. Each message
  names the file and what to change. With ``allow_unlearnable`` (``fxemu run
  --allow-unlearnable``) these are logged as warnings and the run goes on.
"""

import logging
import os
from typing import Dict, Iterable, List, Optional

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types import standard_artifacts

from components import artifact_json


ALLOW_FLAG = '--allow-unlearnable'


class DataAnomaliesError(RuntimeError):
  """The examples break the schema, or the capture check found a pair that cannot teach
  a model."""


def read_anomalies(anomalies_uri: str,
                   split_names: Optional[Iterable[str]] = None) -> Dict[str, List[str]]:
  """ExampleValidator's findings: ``{split: ["feature 'dry': problem", ...]}`` for the
  splits that have a ``SchemaDiff.pb`` (of ``split_names``, or every split found)."""
  if split_names is None:
    split_names = sorted(os.path.basename(os.path.dirname(path))[len('Split-'):]
                         for path in tf.io.gfile.glob(
                             os.path.join(anomalies_uri, 'Split-*', 'SchemaDiff.pb')))
  found = {}
  for split in split_names:
    path = os.path.join(anomalies_uri, f'Split-{split}', 'SchemaDiff.pb')
    if not tf.io.gfile.exists(path):
      continue
    with tf.io.gfile.GFile(path, 'rb') as f:
      anomalies = anomalies_pb2.Anomalies.FromString(f.read())
    lines = []
    for feature, info in sorted(anomalies.anomaly_info.items()):
      reasons = '; '.join(r.description or r.short_description for r in info.reason)
      lines.append(f'feature {feature!r}: '
                   f'{reasons or info.description or info.short_description}')
    if anomalies.HasField('dataset_anomaly_info'):
      lines.append(f'dataset: {anomalies.dataset_anomaly_info.description}')
    found[split] = lines
  return found


def describe_anomalies(anomalies_uri: str, split_names) -> list:
  """Readable lines ``split: feature: problem`` for every anomaly under ``anomalies_uri``."""
  return [f'{split}: {line}'
          for split, lines in read_anomalies(anomalies_uri, split_names).items()
          for line in lines]


def capture_check_errors(examples_uri: str) -> list:
  """The capture check's error messages from the examples' summary (none if it holds
  no check, as examples made before the check existed)."""
  return list(artifact_json.examples_summary(examples_uri).get('check', {}).get('errors', []))


def gate(anomalies_uri: str, split_names, examples_uri: str, allow_unlearnable: bool) -> list:
  """Raises :class:`DataAnomaliesError` for schema anomalies, and for capture check errors
  unless ``allow_unlearnable``; returns the check errors let through (as warnings)."""
  schema = describe_anomalies(anomalies_uri, split_names)
  check = capture_check_errors(examples_uri)
  parts = []
  if schema:
    parts.append('the examples do not match schema/schema.pbtxt, so the pipeline stops '
                 'before training:\n  ' + '\n  '.join(schema))
  if check and not allow_unlearnable:
    parts.append('the capture check found recordings that cannot teach a model, so the '
                 'pipeline stops before training (`fxemu check DATA_DIR` shows every '
                 f'figure; {ALLOW_FLAG} lets the run go on):\n  ' + '\n  '.join(check))
  if parts:
    raise DataAnomaliesError('\n'.join(parts))
  for message in check:
    logging.warning('capture check (%s): %s', ALLOW_FLAG, message)
  return check


@component
def AnomaliesGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
                  examples: InputArtifact[standard_artifacts.Examples],
                  allow_unlearnable: Parameter[int] = 0):
  """Fails on schema anomalies and (unless ``allow_unlearnable``) capture check errors."""
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  gate(anomalies.uri, splits, examples.uri, bool(allow_unlearnable))
