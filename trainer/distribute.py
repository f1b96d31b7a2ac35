"""Choosing a tf.distribute strategy, and where each worker may write.

* ``TF_CONFIG`` describing more than one worker (``chief`` + ``worker`` tasks) ->
  ``MultiWorkerMirroredStrategy`` (synchronous data parallelism; every worker runs the
  same ``run_fn``; the chief writes the model, the others write to local scratch folders).
  Vertex AI Training sets ``TF_CONFIG`` on the replicas of a distributed job and, on
  every replica, ``CLUSTER_SPEC`` (worker pools named ``workerpool0`` = the primary
  replica, ``workerpool1`` = workers, ...). Without ``TF_CONFIG``, ``CLUSTER_SPEC`` is
  translated into one (:func:`tf_config_from_cluster_spec`).
* otherwise several local GPUs -> ``MirroredStrategy``;
* otherwise the default strategy (one device).

``MultiWorkerMirroredStrategy`` must be created before other TensorFlow ops run in the
process; ``run_fn`` calls :func:`choose_strategy` first thing for that reason.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any, Dict, Optional, Tuple

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import tensorflow as tf  # pylint: disable=g-import-not-at-top

MULTI_WORKER, MIRRORED, DEFAULT = 'multi_worker', 'mirrored', 'default'


# Vertex AI worker pool -> TensorFlow task type (workerPoolSpecs[0..3]).
VERTEX_POOL_TASKS = {'workerpool0': 'chief', 'workerpool1': 'worker', 'workerpool2': 'ps',
                     'workerpool3': 'evaluator'}


def _env_json(name: str) -> Dict[str, Any]:
  text = os.environ.get(name, '').strip()
  if not text:
    return {}
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(f'{name} is not valid JSON: {e}') from e


def tf_config_from_cluster_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
  """A TF_CONFIG dict from Vertex AI's ``CLUSTER_SPEC`` ({} for an empty spec).

  Pool names become task types (``workerpool0`` -> ``chief``, ``workerpool1`` ->
  ``worker``, ``workerpool2`` -> ``ps``, ``workerpool3`` -> ``evaluator``); names that
  are already task types (``chief``, ``worker``) are kept.
  """
  if not spec:
    return {}
  rename = lambda name: VERTEX_POOL_TASKS.get(name, name)
  cluster = {rename(pool): list(addresses)
             for pool, addresses in (spec.get('cluster') or {}).items() if addresses}
  task = spec.get('task') or {}
  return {'cluster': cluster,
          'task': {'type': rename(str(task.get('type') or 'workerpool0')),
                   'index': int(task.get('index') or 0)}}


def tf_config() -> Dict[str, Any]:
  """This process's cluster: ``TF_CONFIG``, else Vertex's ``CLUSTER_SPEC`` translated,
  else {}."""
  return _env_json('TF_CONFIG') or tf_config_from_cluster_spec(_env_json('CLUSTER_SPEC'))


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
  config = tf_config()
  kind = strategy_kind(config, len(tf.config.list_physical_devices('GPU')))
  if kind == MULTI_WORKER:
    if not os.environ.get('TF_CONFIG', '').strip():  # Came from CLUSTER_SPEC.
      os.environ['TF_CONFIG'] = json.dumps(config)    # TF's cluster resolver reads this.
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


CHIEF_WAIT_SECONDS = 1800.0


def cleanup_write_dir(path: str, written: str) -> None:
  """Deletes a scratch folder returned by :func:`write_dir` (nothing for the chief)."""
  if written != path and tf.io.gfile.exists(written):
    tf.io.gfile.rmtree(written)


def wait_for_chief(path: str, written: str, timeout: float = CHIEF_WAIT_SECONDS) -> None:
  """On a non-chief worker (``written`` is not ``path``), waits up to ``timeout`` seconds
  until the chief's ``path`` exists; returns at once on the chief.

  TFX's Trainer executor runs on every replica of a Vertex AI Training job and fails a
  replica whose ``serving_model_dir`` does not exist when ``run_fn`` returns.
  """
  if written == path:
    return
  deadline = time.monotonic() + timeout
  while not tf.io.gfile.exists(path) and time.monotonic() < deadline:
    time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
