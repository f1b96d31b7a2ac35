"""tf.data input: GZIP TFRecords of tf.Example -> ``(dry, wet)`` batches.

``dry`` is ``[batch, window + 2 * context]`` and ``wet`` ``[batch, window]`` (float32),
with ``wet`` aligned to ``dry[:, context:context + window]`` (see the ExampleGen).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterable, Iterator, List, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from schema import contract
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top



def feature_spec(config: TrainConfig):
  """Parsing spec of the two features the model needs, with their fixed lengths."""
  return {contract.DRY: tf.io.FixedLenFeature([config.input_samples], tf.float32),
          contract.WET: tf.io.FixedLenFeature([config.window_samples], tf.float32)}


def list_files(file_patterns: Iterable[str]) -> List[str]:
  """Sorted files matching any of the patterns (a folder means all files in it)."""
  if isinstance(file_patterns, str):
    file_patterns = [file_patterns]
  files = set()
  for pattern in file_patterns:
    if tf.io.gfile.isdir(pattern):
      pattern = os.path.join(pattern, '*')
    files.update(tf.io.gfile.glob(pattern))
  return sorted(files)


def _records(file_patterns) -> tf.data.Dataset:
  files = list_files(file_patterns)
  if not files:
    raise ValueError(f'no files match {list(file_patterns)}')
  return tf.data.TFRecordDataset(files, compression_type='GZIP')


def count_examples(file_patterns) -> int:
  """Number of records in the files (reads them once, without parsing)."""
  if not list_files(file_patterns):
    return 0
  return int(_records(file_patterns).reduce(np.int64(0), lambda n, _: n + 1).numpy())


def check_example_lengths(file_patterns, config: TrainConfig) -> None:
  """Raises ValueError if the first example's dry/wet lengths differ from the config's."""
  spec = {contract.DRY: tf.io.VarLenFeature(tf.float32),
          contract.WET: tf.io.VarLenFeature(tf.float32)}
  for record in _records(file_patterns).take(1):
    parsed = tf.io.parse_single_example(record, spec)
    dry = int(tf.size(parsed[contract.DRY].values))
    wet = int(tf.size(parsed[contract.WET].values))
    if (dry, wet) != (config.input_samples, config.window_samples):
      raise ValueError(
          f'examples have dry/wet lengths {dry}/{wet} samples but the TrainConfig expects '
          f'{config.input_samples}/{config.window_samples} (window_samples='
          f'{config.window_samples}, context_samples={config.context_samples}): pass the '
          'ExampleGen\'s window and context to the trainer')


def make_dataset(file_patterns, config: TrainConfig, batch_size: int, training: bool,
                 repeat: bool = False, crop: Tuple[int, int] = (0, 0),
                 piece: int = 0) -> tf.data.Dataset:
  """Batched ``(dry, wet)`` pairs.

  Args:
    file_patterns: GZIP TFRecord file patterns (e.g. ``fn_args.train_files``).
    config: gives the feature lengths, caching, shuffle buffer and seed.
    batch_size: global batch size (Keras splits it across replicas).
    training: shuffle (reshuffled every epoch) and drop the last partial batch.
    repeat: repeat forever (for ``steps_per_epoch``-driven training).
    crop: (left, right) samples dropped from each end of ``dry`` (context the model
      cannot use), so ``dry`` is ``[batch, window + 2 context - left - right]``.
    piece: if in (0, window): every example becomes a random piece of ``piece`` wet
      samples (a new offset each time it is drawn, from a ``config.seed``-seeded stream)
      with the same context around it: ``dry [batch, piece + 2 context - left - right]``,
      ``wet [batch, piece]``.
  """
  spec = feature_spec(config)
  left, right = int(crop[0]), int(crop[1])
  stop = config.input_samples - right

  def parse(record):
    features = tf.io.parse_single_example(record, spec)
    return features[contract.DRY][left:stop], features[contract.WET]

  ds = _records(file_patterns).map(parse, num_parallel_calls=tf.data.AUTOTUNE)
  if config.cache:
    ds = ds.cache()
  if training and config.shuffle_buffer > 1:
    ds = ds.shuffle(config.shuffle_buffer, seed=config.seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  if 0 < piece < config.window_samples:
    ds = _random_pieces(ds, config, piece, stop - left)
  ds = ds.batch(batch_size, drop_remainder=training)
  options = tf.data.Options()
  # Shard by example: there may be fewer files than workers.
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _random_pieces(ds: tf.data.Dataset, config: TrainConfig, piece: int,
                   dry_samples: int) -> tf.data.Dataset:
  """``(dry [dry_samples], wet [window])`` -> a random piece ``(dry [dry_samples - window +
  piece], wet [piece])`` of each, the dry keeping the same context around the wet."""
  span = config.window_samples - piece + 1           # possible offsets
  extra = dry_samples - config.window_samples        # dry context around the wet, both sides

  def cut(pair, draw):
    dry, wet = pair
    offset = tf.cast(draw % span, tf.int32)
    return dry[offset:offset + piece + extra], wet[offset:offset + piece]

  draws = tf.data.Dataset.random(seed=config.seed)
  return tf.data.Dataset.zip((ds, draws)).map(cut, num_parallel_calls=tf.data.AUTOTUNE)


def take_numpy(file_patterns, config: TrainConfig, count: int,
               crop: Tuple[int, int] = (0, 0)) -> Tuple[np.ndarray, np.ndarray]:
  """The first ``count`` examples of the sorted files, in order: ``(dry, wet)`` arrays
  (``crop`` as in :func:`make_dataset`)."""
  ds = make_dataset(file_patterns, dataclasses.replace(config, cache=False),
                    batch_size=max(1, count), training=False, crop=crop).take(1)
  for dry, wet in ds:
    return dry.numpy(), wet.numpy()
  return (np.zeros([0, config.input_samples], np.float32),
          np.zeros([0, config.window_samples], np.float32))


def sample_numpy(file_patterns, config: TrainConfig, stride: int, count: int,
                 batch_size: int = 16) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
  """Every ``stride``-th example of the sorted files, at most ``count``: ``(dry, wet)`` batches."""
  ds = make_dataset(file_patterns, dataclasses.replace(config, cache=False), batch_size=1,
                    training=False).unbatch()
  ds = ds.enumerate().filter(lambda i, _: i % stride == 0).map(lambda _, pair: pair)
  for dry, wet in ds.take(count).batch(batch_size):
    yield dry.numpy(), wet.numpy()
