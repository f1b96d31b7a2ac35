"""CaptureSettings: the Trainer's settings that the capture check calls for.

The AudioExampleGen's capture check (:mod:`components.audio.capture_check`) warns when a
test recording plays at levels that no training recording reached, for a nonlinear effect
(``level_coverage``): the model must then extrapolate the effect's response. The hybrid
extrapolates better with a narrower conditioning path and weight decay (which ones: the
pipeline passes :func:`trainer.config.narrow_capture_settings`, measured on the recorded
hardware pedals and two synthetic narrow captures: ``benchmarks/quality_notes.md``). This
component, between the AnomaliesGate and the Trainer, reads the examples' summary and, when
it holds such a warning, writes those settings as the Trainer's ``hyperparameters`` (TFX's
channel for a Tuner's best values, which ``run_fn`` puts over its TrainConfig); else an
empty set.
"""

import json
import logging
import os
from typing import Any, Dict, Mapping

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.annotations import OutputArtifact
from tfx.dsl.component.experimental.annotations import Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import standard_artifacts

from components import artifact_json
from components.audio import capture_check

#: The one file of the output artifact (the Trainer reads the only file in its directory).
SETTINGS_FILE = 'capture_settings.json'


def level_warnings(summary: Mapping[str, Any]) -> list:
  """The capture check's level-coverage warnings in an examples summary (messages)."""
  pairs = (summary.get('check') or {}).get('pairs') or {}
  return [finding['message'] for _, pair in sorted(pairs.items())
          for finding in pair.get('findings', [])
          if finding.get('check') == 'level_coverage'
          and finding.get('severity') == capture_check.WARNING]


def settings_for(summary: Mapping[str, Any], settings: Mapping[str, Any]) -> Dict[str, Any]:
  """``settings`` (the Trainer's, for a narrow capture) when the summary has a
  level-coverage warning, else ``{}``."""
  return dict(settings) if level_warnings(summary) else {}


def write_settings(examples_uri: str, settings: str, output_uri: str) -> Dict[str, Any]:
  """Writes :func:`settings_for` the examples and ``settings`` (JSON) as ``{"values":
  {...}}`` (KerasTuner's layout, as TFX's Tuner writes) into ``output_uri``; returns the
  values."""
  values = settings_for(artifact_json.examples_summary(examples_uri), json.loads(settings))
  if values:
    logging.info('The capture does not cover the test audio\'s levels: the Trainer takes %s',
                 json.dumps(values))
  tf.io.gfile.makedirs(output_uri)
  with tf.io.gfile.GFile(os.path.join(output_uri, SETTINGS_FILE), 'w') as f:
    json.dump({'values': values}, f)
  return values


@component
def CaptureSettings(examples: InputArtifact[standard_artifacts.Examples],
                    hyperparameters: OutputArtifact[standard_artifacts.HyperParameters],
                    settings: Parameter[str]):
  """The Trainer's ``settings`` (JSON) if the capture does not cover the test levels."""
  write_settings(examples.uri, settings, hyperparameters.uri)
