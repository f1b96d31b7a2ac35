"""The JSON files fxemu writes into its artifacts, read back.

- ``fxemu_summary.json`` in an Examples artifact (the AudioExampleGen's summary): the
  input, the windows per split, the levels and latency of each pair, and the capture check
  (``check``: per pair findings, the errors and warnings). The AnomaliesGate, the
  CaptureSettings step and ``fxemu run``'s report read it.
- ``fxemu_training.json`` in a ModelRun artifact (run_fn's training summary):
  :func:`pipeline.results.training_summary`.
"""
from __future__ import annotations

import json
from typing import Any, Dict

from schema import contract


def read(directory: str, name: str) -> Dict[str, Any]:
  """The JSON file ``name`` in an artifact's ``directory`` ({} if there is none, as for
  artifacts made before the file existed, or no directory)."""
  # TensorFlow's file system (gs://, s3:// too); imported here, not at the top, so that
  # `fxemu --help` and `fxemu check --help` do not start TensorFlow.
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  path = f'{directory}/{name}'
  if not directory or not tf.io.gfile.exists(path):
    return {}
  with tf.io.gfile.GFile(path) as f:
    return json.load(f)


def examples_summary(examples_uri: str) -> Dict[str, Any]:
  """The AudioExampleGen's summary under an Examples artifact ({} if there is none)."""
  return read(examples_uri, contract.EXAMPLES_SUMMARY_FILE)
