"""AtomicPusher: TFX's Pusher, made atomic and idempotent for TF Serving model directories.

* A new version is copied into a hidden staging folder ``<base>/.partial-<version>``
  (TF Serving only loads numeric folder names) and renamed into ``<base>/<version>`` once
  complete, so a TF Serving watcher never sees a half-written version.
* Versions increase strictly (a Unix timestamp, or the newest version + 1).
* Pushing the same model again (byte-identical SavedModel, as when a re-run re-evaluates
  a cached model) writes nothing new: the pushed artifact points at the existing version.
* Not blessed: nothing is written (as TFX's Pusher).
"""
from __future__ import annotations

import hashlib
import os
import time
from typing import List, Optional

from absl import logging
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs
from tfx.utils import io_utils
from tfx.utils import proto_utils

from components.audio import model_versions

def saved_model_fingerprint(model_dir: str) -> str:
  """SHA-256 over the relative paths and bytes of every file of a SavedModel folder."""
  digest = hashlib.sha256()
  for root, _, files in sorted(fileio.walk(model_dir)):
    for name in sorted(files):
      path = os.path.join(root, name)
      digest.update(os.path.relpath(path, model_dir).encode('utf-8'))
      with fileio.open(path, 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()


def next_version(existing: List[int], now: Optional[float] = None) -> int:
  """A Unix-time version, forced above every existing one."""
  stamp = int(time.time() if now is None else now)
  return max([stamp] + [v + 1 for v in existing])


def push_atomically(model_path: str, base_directory: str) -> tuple:
  """Publishes ``model_path`` as a new version under ``base_directory``.

  Returns:
    (version_path, version, copied): ``copied`` is False when the newest version already
    holds an identical model, which is then reused.
  """
  complete = model_versions.versions(base_directory)
  if complete:
    newest_version, newest = complete[0]
    if saved_model_fingerprint(newest) == saved_model_fingerprint(model_path):
      logging.info('%s already serves this model; nothing pushed', newest)
      return newest, newest_version, False
  version = next_version([v for v, _ in model_versions.versions(base_directory,
                                                                 complete_only=False)])
  final = os.path.join(base_directory, str(version))
  staging = os.path.join(base_directory, f'{model_versions.STAGING_PREFIX}{version}')
  fileio.makedirs(base_directory)
  if fileio.exists(staging):
    fileio.rmtree(staging)
  try:
    io_utils.copy_dir(model_path, staging)
    fileio.rename(staging, final)
  finally:
    if fileio.exists(staging):
      fileio.rmtree(staging)
  return final, version, True


class Executor(pusher_executor.Executor):
  """Pushes a blessed model with :func:`push_atomically` (filesystem destinations)."""

  def Do(self, input_dict, output_dict, exec_properties):
    self._log_startup(input_dict, output_dict, exec_properties)
    model_push = artifact_utils.get_single_instance(
        output_dict[standard_component_specs.PUSHED_MODEL_KEY])
    if not self.CheckBlessing(input_dict):
      self._MarkNotPushed(model_push)
      return
    model_path = self.GetModelPath(input_dict)
    destination = pusher_pb2.PushDestination()
    proto_utils.json_to_proto(exec_properties[standard_component_specs.PUSH_DESTINATION_KEY],
                              destination)
    if destination.WhichOneof('destination') != 'filesystem':
      raise NotImplementedError('AtomicPusher pushes to a filesystem destination only')
    serving_path, version, copied = push_atomically(
        model_path, destination.filesystem.base_directory)
    logging.info('model %s at %s', 'pushed' if copied else 'already', serving_path)
    io_utils.copy_dir(model_path, model_push.uri)
    self._MarkPushed(model_push, pushed_destination=serving_path, pushed_version=str(version))


class AtomicPusher(pusher_component.Pusher):
  """TFX Pusher with :class:`Executor`: atomic, strictly increasing, idempotent versions."""
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
