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
  earlier) and the next ``state``. Each block costs O(n). :func:`stream_tflite` converts
  it to TFLite, or writes its faster ``stream_fixed`` form for one block size (a multiple
  of ``stream_frame_samples``).

``assets/fxemu.json`` holds what a client needs for block-wise processing: sample rate,
receptive field, block multiple (blocks must start at multiples of it), window/context
and parameter count.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional

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
      'stream_frame_samples': streamer.frame if stream else None,
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


def streamer_from_export(export_dir: str) -> streaming.Streamer:
  """The :class:`trainer.streaming.Streamer` of an exported model: the architecture of
  its fxemu.json ``train_config`` with the SavedModel's weights (to trace the stream
  function again, e.g. for one fixed block size). Raises ValueError if it cannot stream
  or the weights do not fit the architecture."""
  config = TrainConfig.from_custom_config(read_metadata(export_dir)['train_config'])
  reason = streaming.streamable(config)
  if reason:
    raise ValueError(f'{export_dir}: {reason}')
  model = architectures.build_model(config)
  saved = tf.saved_model.load(export_dir).model.variables
  if [tuple(v.shape) for v in saved] != [tuple(w.shape) for w in model.variables]:
    raise ValueError(f'{export_dir}: the SavedModel\'s weights do not fit its train_config\'s '
                     f'{config.model} model')
  for weight, value in zip(model.variables, saved):
    weight.assign(value)
  return streaming.Streamer(model, config)


def stream_tflite(export_dir: str, block_size: Optional[int] = None) -> bytes:
  """The ``stream`` signature of an exported model as a TFLite flatbuffer.

  Without ``block_size``: ``stream`` itself, for blocks of any size. TFLite's built-in
  operators cover nearly all of it; the few left (the frame extraction of the strided
  paths for blocks of any size) run on the select-TF-ops delegate, which
  ``tf.lite.Interpreter`` and the TFLite runtime with Flex support provide.

  With ``block_size`` N: ``stream_fixed`` alone, the same function for one channel and
  blocks of exactly N samples (``[1, N]``, state ``[1, state_size]``, the same state as
  ``stream``; :meth:`trainer.streaming.Streamer.fixed_step`): static shapes and built-in
  operators only, so the interpreter's default delegate (XNNPACK) runs it, the form an
  audio plugin loads. A client runs it (per channel) while its stream has been fed only
  N-sample blocks. It is a flatbuffer of its own because XNNPACK refuses a model in which
  any graph has data-dependent shapes, as ``stream``'s has. N must be a multiple of the
  model's frame (``stream_frame_samples`` in fxemu.json). Raises ValueError if the model
  has no ``stream`` signature or N does not fit.
  """
  if contract.STREAM_SIGNATURE not in read_metadata(export_dir).get('signatures', {}):
    raise ValueError(f'{export_dir}: the model has no {contract.STREAM_SIGNATURE!r} signature '
                     '(its architecture cannot stream)')
  if block_size is None:
    converter = tf.lite.TFLiteConverter.from_saved_model(
        export_dir, signature_keys=[contract.STREAM_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()
  streamer = streamer_from_export(export_dir)
  if block_size < 1 or block_size % streamer.frame:
    raise ValueError(f'{export_dir}: the block size must be a positive multiple of the '
                     f'model\'s frame ({streamer.frame} samples), got {block_size}')

  def run(audio, state):
    wet, state = streamer.fixed_step(audio, state)
    return {contract.WET_OUTPUT: wet, contract.STATE: state}
  fixed = tf.function(run, input_signature=[
      tf.TensorSpec([1, block_size], tf.float32, name=contract.AUDIO_INPUT),
      tf.TensorSpec([1, streamer.state_size], tf.float32, name=contract.STATE)])
  with tempfile.TemporaryDirectory() as scratch:
    tf.saved_model.save(streamer, scratch, signatures={contract.STREAM_FIXED_SIGNATURE: fixed})
    converter = tf.lite.TFLiteConverter.from_saved_model(
        scratch, signature_keys=[contract.STREAM_FIXED_SIGNATURE])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()
