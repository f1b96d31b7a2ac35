"""Serving export: a SavedModel with two signatures and an ``fxemu.json`` asset.

Signatures:

* ``serving_default``: ``audio`` float32 ``[batch, samples]`` (any length) -> ``wet``
  float32 ``[batch, samples]``: the model's own output, same length, no cropping.
* ``serving_examples``: ``examples`` (serialized tf.Example, ``[batch]``) -> ``wet``
  float32 ``[batch, window]``: the centre ``window`` samples of the model's output on
  the ``dry`` feature, i.e. the prediction of the ``wet`` label (TFMA evaluates it).
* ``stream`` (streamable models, :mod:`trainer.streaming`): ``audio`` float32 ``[batch,
  n]`` (one block, n >= 1) and ``state`` float32 ``[batch, state_size]`` (zeros to start
  a stream) -> ``wet`` ``[batch, n]`` (the whole-stream output ``stream_latency_samples``
  earlier) and the next ``state``. Each block costs O(n).

``assets/fxemu.json`` holds what a client needs for block-wise processing: sample rate,
receptive field, block multiple (blocks must start at multiples of it), window/context
and parameter count.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tf_keras as keras  # pylint: disable=g-import-not-at-top

from schema import contract  # pylint: disable=g-import-not-at-top
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import receptive_field  # pylint: disable=g-import-not-at-top
from trainer import streaming  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top


def metadata(model: keras.Model, config: TrainConfig) -> Dict[str, Any]:
  """Contents of ``fxemu.json``."""
  past, future = receptive_field.receptive_field_extent(config)
  stream = {}
  if not streaming.streamable(config):
    streamer = streaming.Streamer(model, config)
    stream = {contract.STREAM_SIGNATURE: {
        'inputs': {contract.AUDIO_INPUT: '[batch, samples] float32',
                   contract.STATE: f'[batch, {streamer.state_size}] float32'},
        'outputs': {contract.WET_OUTPUT: '[batch, samples] float32',
                    contract.STATE: f'[batch, {streamer.state_size}] float32'}}}
  return {
      'model': config.model,
      'sample_rate': config.sample_rate,
      'receptive_field_samples': past + 1 + future,
      'receptive_field_past_samples': past,
      'receptive_field_future_samples': future,
      'block_multiple': receptive_field.block_multiple(config),
      'window_samples': config.window_samples,
      'context_samples': config.context_samples,
      'parameter_count': architectures.parameter_count(model),
      'stream_state_size': streamer.state_size if stream else 0,
      'stream_latency_samples': streamer.latency if stream else None,
      'signatures': {
          contract.SERVING_SIGNATURE: {
              'inputs': {contract.AUDIO_INPUT: '[batch, samples] float32'},
              'outputs': {contract.WET_OUTPUT: '[batch, samples] float32'}},
          contract.EXAMPLES_SIGNATURE: {
              'inputs': {contract.EXAMPLES_INPUT: '[batch] string'},
              'outputs': {contract.WET_OUTPUT: '[batch, window] float32'}},
                     **stream},
      'train_config': config.to_custom_config(),
  }


class ServingModule(tf.Module):
  """Wraps the any-length Keras model with the two serving functions."""

  def __init__(self, model: keras.Model, config: TrainConfig, asset_path: str):
    super().__init__()
    self.model = model
    self.metadata_asset = tf.saved_model.Asset(asset_path)
    self._window = config.window_samples
    self._context = config.context_samples
    self._input_samples = config.input_samples
    self.streamer = None
    if not streaming.streamable(config):
      self.streamer = streaming.Streamer(model, config)
      self.serve_stream = tf.function(self._stream, input_signature=[
          tf.TensorSpec([None, None], tf.float32, name=contract.AUDIO_INPUT),
          tf.TensorSpec([None, self.streamer.state_size], tf.float32, name=contract.STATE)])

  def _stream(self, audio, state):
    wet, state = self.streamer.step(audio, state)
    return {contract.WET_OUTPUT: wet, contract.STATE: state}

  @tf.function(input_signature=[
      tf.TensorSpec([None, None], tf.float32, name=contract.AUDIO_INPUT)])
  def serve_audio(self, audio):
    return {contract.WET_OUTPUT: self.model(audio, training=False)}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=contract.EXAMPLES_INPUT)])
  def serve_examples(self, examples):
    features = tf.io.parse_example(
        examples, {contract.DRY: tf.io.FixedLenFeature([self._input_samples], tf.float32)})
    wet = self.model(features[contract.DRY], training=False)
    return {contract.WET_OUTPUT: wet[:, self._context:self._context + self._window]}


def export_serving_model(model: keras.Model, config: TrainConfig, export_dir: str) -> str:
  """Writes the SavedModel (with ``assets/fxemu.json``) to ``export_dir``; returns it."""
  with tempfile.TemporaryDirectory() as scratch:
    asset_path = os.path.join(scratch, contract.MODEL_INFO_FILE)
    with open(asset_path, 'w') as f:
      json.dump(metadata(model, config), f, indent=2, sort_keys=True)
    module = ServingModule(model, config, asset_path)
    signatures = {contract.SERVING_SIGNATURE: module.serve_audio,
                  contract.EXAMPLES_SIGNATURE: module.serve_examples}
    if module.streamer is not None:
      signatures[contract.STREAM_SIGNATURE] = module.serve_stream
    tf.saved_model.save(module, export_dir, signatures=signatures)
  return export_dir


def read_metadata(export_dir: str) -> Dict[str, Any]:
  """The ``fxemu.json`` of an exported model."""
  with tf.io.gfile.GFile(os.path.join(export_dir, 'assets', contract.MODEL_INFO_FILE)) as f:
    return json.load(f)


def stream_tflite(export_dir: str) -> bytes:
  """The ``stream`` signature of an exported model as a TFLite flatbuffer.

  TFLite's built-in operators cover nearly all of it; the few left (the frame and
  overlap-add of the strided paths) run on the select-TF-ops delegate, which
  ``tf.lite.Interpreter`` and the TFLite runtime with Flex support provide. Raises
  ValueError if the model has no ``stream`` signature.
  """
  if contract.STREAM_SIGNATURE not in read_metadata(export_dir).get('signatures', {}):
    raise ValueError(f'{export_dir}: the model has no {contract.STREAM_SIGNATURE!r} signature '
                     '(its architecture cannot stream)')
  converter = tf.lite.TFLiteConverter.from_saved_model(export_dir,
                                                       signature_keys=[contract.STREAM_SIGNATURE])
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                         tf.lite.OpsSet.SELECT_TF_OPS]
  return converter.convert()
