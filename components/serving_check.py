"""ServingCheck: a pre-push check that the candidate serves, and TF Serving's warm-up file.

TFX's InfraValidator cannot run under KubeflowV2DagRunner (it needs pod details only the
removed v1 runner injected), so this component stands in for it, locally and on a
cluster alike. It loads the candidate exactly as TF Serving would (the ``serve`` tag and
the ``serving_default`` signature), checks the signature's name, dtypes and shapes
(``audio`` float32 ``[batch, samples]`` -> ``wet`` float32 ``[batch, samples]``), sends it
a warm-up request, and copies the model with ``assets.extra/tf_serving_warmup_requests``
(a TFRecord of PredictionLog) into its ``InfraBlessing``, which the Pusher then pushes:
a fresh TF Serving answers its first request fast. A model that fails is not blessed.
"""
import os

from absl import logging
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ExecutionParameter
from tfx.utils import io_utils
from tfx.utils import path_utils

from schema import contract


class ServingCheckError(ValueError):
  """The candidate would not serve as fxemu's clients expect."""


def check_signature(model_path: str) -> None:
  """Raises ServingCheckError unless ``serving_default`` is audio [b, n] -> wet [b, n]."""
  loaded = tf.saved_model.load(model_path, tags=['serve'])
  if contract.SERVING_SIGNATURE not in loaded.signatures:
    raise ServingCheckError(f'{model_path}: no {contract.SERVING_SIGNATURE!r} signature '
                            f'(has {sorted(loaded.signatures)})')
  function = loaded.signatures[contract.SERVING_SIGNATURE]
  inputs = function.structured_input_signature[1]
  outputs = function.structured_outputs
  if set(inputs) != {contract.AUDIO_INPUT} or set(outputs) != {contract.WET_OUTPUT}:
    raise ServingCheckError(f'{model_path}: {contract.SERVING_SIGNATURE} takes {sorted(inputs)} '
                            f'and returns {sorted(outputs)}; expected '
                            f'{contract.AUDIO_INPUT!r} -> {contract.WET_OUTPUT!r}')
  for name, spec in [(contract.AUDIO_INPUT, inputs[contract.AUDIO_INPUT]),
                     (contract.WET_OUTPUT, outputs[contract.WET_OUTPUT])]:
    if spec.dtype != tf.float32 or spec.shape.rank != 2:
      raise ServingCheckError(f'{model_path}: {name} is {spec.dtype.name} {spec.shape}, '
                              'expected float32 [batch, samples]')
  return function


def warmup_request(samples: int, seed: int = 0):
  """A PredictRequest of ``samples`` of quiet noise for ``serving_default``."""
  audio = np.random.default_rng(seed).normal(0, 0.1, [1, samples]).astype(np.float32)
  request = predict_pb2.PredictRequest()
  request.model_spec.signature_name = contract.SERVING_SIGNATURE
  request.inputs[contract.AUDIO_INPUT].CopyFrom(tf.make_tensor_proto(audio))
  return request, audio


def write_warmup_file(model_path: str, request, count: int = 4) -> str:
  """Writes ``assets.extra/tf_serving_warmup_requests`` with ``count`` copies of a request."""
  path = os.path.join(model_path, contract.WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  log = prediction_log_pb2.PredictionLog(
      predict_log=prediction_log_pb2.PredictLog(request=request))
  with tf.io.TFRecordWriter(path) as writer:
    for _ in range(count):
      writer.write(log.SerializeToString())
  return path


class Executor(base_executor.BaseExecutor):
  """Checks the signature, runs the warm-up request, writes the blessed model copy."""

  def Do(self, input_dict, output_dict, exec_properties):
    model = artifact_utils.get_single_instance(input_dict['model'])
    blessing = artifact_utils.get_single_instance(output_dict['blessing'])
    model_path = path_utils.serving_model_path(model.uri)
    samples = int(exec_properties.get('warmup_samples') or 44100)
    try:
      function = check_signature(model_path)
      request, audio = warmup_request(samples)
      wet = function(**{contract.AUDIO_INPUT: tf.constant(audio)})[contract.WET_OUTPUT].numpy()
      if wet.shape != audio.shape or not np.all(np.isfinite(wet)):
        raise ServingCheckError(f'{model_path}: the warm-up request returned '
                                f'{wet.shape} (finite: {bool(np.all(np.isfinite(wet)))}) '
                                f'for input {audio.shape}')
    except ServingCheckError as e:
      logging.error('serving check failed: %s', e)
      io_utils.write_string_file(os.path.join(blessing.uri, 'INFRA_NOT_BLESSED'), str(e))
      blessing.set_int_custom_property('blessed', 0)
      return
    stamped = path_utils.stamped_model_path(blessing.uri)
    io_utils.copy_dir(model_path, stamped)
    write_warmup_file(stamped, request)
    io_utils.write_string_file(os.path.join(blessing.uri, 'INFRA_BLESSED'), '')
    blessing.set_int_custom_property('blessed', 1)
    blessing.set_int_custom_property('has_model', 1)


class ServingCheckSpec(types.ComponentSpec):
  PARAMETERS = {'warmup_samples': ExecutionParameter(type=int, optional=True)}
  INPUTS = {'model': ChannelParameter(type=standard_artifacts.Model)}
  OUTPUTS = {'blessing': ChannelParameter(type=standard_artifacts.InfraBlessing)}


class ServingCheck(base_component.BaseComponent):
  """Pre-push serving check; its ``blessing`` carries the model with a warm-up file."""
  SPEC_CLASS = ServingCheckSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

  def __init__(self, model: types.Channel, warmup_samples: int = 44100):
    super().__init__(spec=ServingCheckSpec(
        model=model, warmup_samples=warmup_samples,
        blessing=types.Channel(type=standard_artifacts.InfraBlessing)))
