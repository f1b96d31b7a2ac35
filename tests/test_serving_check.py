"""The pre-push serving check: signature checks, warm-up request, warm-up file."""
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2
from tfx.types import standard_artifacts

from components import serving_check
from schema import contract


class _Module(tf.Module):

  def __init__(self, dtype=tf.float32, output='wet'):
    super().__init__()
    self._output = output

    @tf.function(input_signature=[tf.TensorSpec([None, None], dtype, name='audio')])
    def serve(audio):
      return {self._output: tf.cast(audio, tf.float32) * 0.5}
    self.serve = serve


def _export(path, **kwargs):
  module = _Module(**kwargs)
  tf.saved_model.save(module, path, signatures={'serving_default': module.serve})


def _run(tmp_path, **kwargs):
  model = standard_artifacts.Model()
  model.uri = str(tmp_path / 'model')
  _export(os.path.join(model.uri, 'Format-Serving'), **kwargs)
  blessing = standard_artifacts.InfraBlessing()
  blessing.uri = str(tmp_path / 'blessing')
  os.makedirs(blessing.uri)
  serving_check.Executor().Do({'model': [model]}, {'blessing': [blessing]},
                              {'warmup_samples': 1000})
  return blessing


def test_good_model_is_blessed_with_a_warmup_file(tmp_path):
  blessing = _run(tmp_path)
  assert blessing.get_int_custom_property('blessed') == 1
  assert blessing.get_int_custom_property('has_model') == 1
  stamped = os.path.join(blessing.uri, 'stamped_model')
  warmup = os.path.join(stamped, contract.WARMUP_FILE)
  records = list(tf.data.TFRecordDataset(warmup))
  assert len(records) >= 1
  log = prediction_log_pb2.PredictionLog.FromString(records[0].numpy())
  request = log.predict_log.request
  assert request.model_spec.signature_name == 'serving_default'
  audio = tf.make_ndarray(request.inputs['audio'])
  assert audio.shape == (1, 1000) and audio.dtype == np.float32
  reloaded = tf.saved_model.load(stamped)  # the copy still serves
  out = reloaded.signatures['serving_default'](audio=tf.constant(audio))['wet']
  np.testing.assert_allclose(out.numpy(), audio * 0.5)


@pytest.mark.parametrize('kwargs,problem', [({'dtype': tf.float64}, 'float64'),
                                            ({'output': 'y'}, "returns ['y']")])
def test_wrong_signature_is_not_blessed(tmp_path, kwargs, problem):
  blessing = _run(tmp_path, **kwargs)
  assert blessing.get_int_custom_property('blessed') == 0
  with open(os.path.join(blessing.uri, 'INFRA_NOT_BLESSED')) as f:
    assert problem in f.read()
  assert not os.path.exists(os.path.join(blessing.uri, 'stamped_model'))
