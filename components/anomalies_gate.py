"""AnomaliesGate: stops the pipeline with a readable message when ExampleValidator found anomalies.

TFX's ExampleValidator records anomalies but lets the pipeline go on; this component
reads its ``SchemaDiff.pb`` per split and fails the run, naming each split, feature and
problem, so that no model is trained on data that breaks the schema.
"""

import os

import tensorflow as tf
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types import standard_artifacts


class DataAnomaliesError(RuntimeError):
  """The examples break the schema."""


def describe_anomalies(anomalies_uri: str, split_names) -> list:
  """Readable lines ``split: feature: problem`` for every anomaly under ``anomalies_uri``."""
  lines = []
  for split in split_names:
    path = os.path.join(anomalies_uri, f'Split-{split}', 'SchemaDiff.pb')
    if not tf.io.gfile.exists(path):
      continue
    anomalies = anomalies_pb2.Anomalies()
    anomalies.ParseFromString(tf.io.gfile.GFile(path, 'rb').read())
    for feature, info in sorted(anomalies.anomaly_info.items()):
      reasons = '; '.join(r.description or r.short_description for r in info.reason)
      lines.append(f'{split}: feature {feature!r}: {reasons or info.description}')
    if anomalies.HasField('dataset_anomaly_info'):
      info = anomalies.dataset_anomaly_info
      lines.append(f'{split}: dataset: {info.description}')
  return lines


@component
def AnomaliesGate(anomalies: InputArtifact[standard_artifacts.ExampleAnomalies]):
  """Fails when the ExampleAnomalies artifact records any anomaly."""
  splits = artifact_utils.decode_split_names(anomalies.split_names)
  lines = describe_anomalies(anomalies.uri, splits)
  if lines:
    raise DataAnomaliesError(
        'the examples do not match schema/schema.pbtxt, so the pipeline stops before '
        'training:\n  ' + '\n  '.join(lines))
