"""Choosing a tf.distribute strategy, and where each worker may write.

* ``TF_CONFIG`` describing more than one worker (``chief`` + ``worker`` tasks) ->
  ``MultiWorkerMirroredStrategy`` (synchronous data parallelism; every worker runs the
  same ``run_fn``; the chief writes the model, the others write to local scratch folders).
* otherwise several local GPUs -> ``MirroredStrategy``;
* otherwise the default strategy (one device).

``MultiWorkerMirroredStrategy`` must be created before other TensorFlow ops run in the
process; ``run_fn`` calls :func:`choose_strategy` first thing for that reason.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, Optional, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

MULTI_WORKER, MIRRORED, DEFAULT = 'multi_worker', 'mirrored', 'default'


def tf_config() -> Dict[str, Any]:
  """The parsed ``TF_CONFIG`` environment variable ({} if unset or empty)."""
  text = os.environ.get('TF_CONFIG', '').strip()
  if not text:
    return {}
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'TF_CONFIG is not valid JSON: {e}') from e


def num_workers(config: Dict[str, Any]) -> int:
  """Training workers in a TF_CONFIG: chief + workers (ps/evaluator tasks not counted)."""
  cluster = config.get('cluster') or {}
  return len(cluster.get('chief') or []) + len(cluster.get('worker') or [])


def task(config: Dict[str, Any]) -> Tuple[str, int]:
  """(type, index) of this process's task; ('chief', 0) without a cluster."""
  info = config.get('task') or {}
  return str(info.get('type') or 'chief'), int(info.get('index') or 0)


def strategy_kind(config: Dict[str, Any], num_gpus: int) -> str:
  """Which strategy fits: MULTI_WORKER, MIRRORED or DEFAULT (pure function, for tests)."""
  cluster = config.get('cluster') or {}
  if cluster.get('ps'):
    raise ValueError('parameter-server clusters are not supported; use chief/worker tasks')
  if num_workers(config) > 1:
    return MULTI_WORKER
  if num_gpus > 1:
    return MIRRORED
  return DEFAULT


MIRRORED_DEVICES_ENV = 'FXEMU_MIRRORED_DEVICES'


def choose_strategy() -> tf.distribute.Strategy:
  """The strategy for this process (see the module docstring).

  ``FXEMU_MIRRORED_DEVICES`` (comma-separated device names, e.g. ``/gpu:0,/gpu:2`` or,
  for tests, two logical CPUs ``/cpu:0,/cpu:1``) asks for MirroredStrategy over exactly
  those devices.
  """
  devices = [d.strip() for d in os.environ.get(MIRRORED_DEVICES_ENV, '').split(',') if d.strip()]
  if devices and num_workers(tf_config()) <= 1:
    return tf.distribute.MirroredStrategy(devices)
  kind = strategy_kind(tf_config(), len(tf.config.list_physical_devices('GPU')))
  if kind == MULTI_WORKER:
    return tf.distribute.MultiWorkerMirroredStrategy()
  if kind == MIRRORED:
    return tf.distribute.MirroredStrategy()
  return tf.distribute.get_strategy()


def is_chief(config: Optional[Dict[str, Any]] = None) -> bool:
  """True for the task that writes outputs: the chief, or worker 0 when there is no chief."""
  config = tf_config() if config is None else config
  if num_workers(config) <= 1:
    return True
  kind, index = task(config)
  has_chief = bool((config.get('cluster') or {}).get('chief'))
  return kind == 'chief' or (not has_chief and kind == 'worker' and index == 0)


def write_dir(path: str, config: Optional[Dict[str, Any]] = None) -> str:
  """``path`` on the chief; a new local scratch folder on other workers.

  Every worker must execute the same save calls (they are collective), but only the
  chief's copy is kept; delete the scratch folder with :func:`cleanup_write_dir`.
  """
  config = tf_config() if config is None else config
  if is_chief(config):
    return path
  kind, index = task(config)
  return tempfile.mkdtemp(prefix=f'fxemu-{kind}-{index}-')


def cleanup_write_dir(path: str, written: str) -> None:
  """Deletes a scratch folder returned by :func:`write_dir` (nothing for the chief)."""
  if written != path and tf.io.gfile.exists(written):
    tf.io.gfile.rmtree(written)
