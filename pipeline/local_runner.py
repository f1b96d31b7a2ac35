"""Runs the fxemu pipeline on this machine: TFX LocalDagRunner + Beam DirectRunner.

While the DAG runs, a :class:`StageWatcher` thread reads the run's executions from the
ML Metadata store (read-only, every ``POLL_SECONDS``), so a caller can show each stage
the moment it finishes and the running one with its elapsed time.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Callable, Dict, Optional, Set

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx

from pipeline import pipeline as pipeline_lib
from pipeline import results
from pipeline.configs import PipelineConfig
from trainer.config import TrainConfig

POLL_SECONDS = 0.5
FINISHED = ('complete', 'cached', 'failed', 'canceled')

# on_stage(stage): a stage has finished. on_running(name, elapsed s, last complete run's s
# or None): a stage is running (called every poll).
StageCallback = Callable[[results.Stage], None]
RunningCallback = Callable[[str, float, Optional[float]], None]


def run(config: PipelineConfig, train: TrainConfig, on_stage: Optional[StageCallback] = None,
        on_running: Optional[RunningCallback] = None) -> None:
  """Builds the DAG and runs it to the end (raises if a component fails).

  ``on_stage`` is called (from a watcher thread) for every execution of this run as it
  finishes, in order, and once more for any left when the run ends; ``on_running``
  while an execution runs.
  """
  dag = pipeline_lib.create_pipeline(
      config, train,
      metadata_connection_config=tfx.orchestration.metadata
      .sqlite_metadata_connection_config(config.metadata_path))
  if on_stage is None and on_running is None:
    tfx.orchestration.LocalDagRunner().run(dag)
    return
  watcher = StageWatcher(config.metadata_path, config.pipeline_name, on_stage, on_running)
  watcher.start()
  try:
    tfx.orchestration.LocalDagRunner().run(dag)
  finally:
    watcher.stop()


class StageWatcher(threading.Thread):
  """Polls an ML Metadata SQLite store for the executions of the run started now."""

  def __init__(self, metadata_path: str, pipeline_name: str,
               on_stage: Optional[StageCallback] = None,
               on_running: Optional[RunningCallback] = None,
               poll_seconds: float = POLL_SECONDS):
    super().__init__(name='fxemu-stage-watcher', daemon=True)
    self._path, self._pipeline_name = metadata_path, pipeline_name
    self._on_stage, self._on_running = on_stage, on_running
    self._poll_seconds = poll_seconds
    self._since_ms = int(time.time() * 1000)
    self._reported: Set[int] = set()
    self._previous: Dict[str, Optional[float]] = {}
    self._store = None
    self._stopping = threading.Event()
    self._lock = threading.Lock()

  def run(self) -> None:
    while not self._stopping.wait(self._poll_seconds):
      self.poll()

  def stop(self) -> None:
    """Stops polling and reports what finished since the last poll."""
    self._stopping.set()
    self.join(timeout=10)
    self.poll()
    self._store = None

  def poll(self) -> None:
    """Reports new finished executions (and the running ones); never raises."""
    with self._lock:
      try:
        self._poll()
      except Exception as e:  # pylint: disable=broad-except
        # The store may not exist yet, or a writer holds it: try again next time.
        logging.debug('stage watcher: %s', e)
        self._store = None

  def _open(self):
    if self._store is None and os.path.exists(self._path):
      config = metadata_store_pb2.ConnectionConfig()
      config.sqlite.filename_uri = self._path
      config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
      self._store = metadata_store.MetadataStore(config)
    return self._store

  def _poll(self) -> None:
    store = self._open()
    context = store and store.get_context_by_type_and_name('pipeline', self._pipeline_name)
    if not context:
      return
    executions = sorted((e for e in store.get_executions_by_context(context.id)
                         if e.create_time_since_epoch >= self._since_ms
                         and e.id not in self._reported),
                        key=lambda e: (e.last_update_time_since_epoch, e.id))
    for execution in executions:
      stage = results.stage_of(store, execution, self._pipeline_name)
      if stage.state in FINISHED:
        self._reported.add(execution.id)
        if self._on_stage:
          self._on_stage(stage)
      elif stage.state == 'running' and self._on_running:
        elapsed = time.time() - execution.create_time_since_epoch / 1000.0
        self._on_running(stage.name, elapsed, self._last_duration(store, stage.name))

  def _last_duration(self, store, node: str) -> Optional[float]:
    """Seconds the node's newest earlier complete (not cached) execution took, or None."""
    if node not in self._previous:
      context = store.get_context_by_type_and_name('node', f'{self._pipeline_name}.{node}')
      done = [e for e in (store.get_executions_by_context(context.id) if context else [])
              if e.create_time_since_epoch < self._since_ms and
              e.last_known_state == metadata_store_pb2.Execution.COMPLETE]
      newest = max(done, key=lambda e: e.create_time_since_epoch, default=None)
      self._previous[node] = None if newest is None else (
          newest.last_update_time_since_epoch - newest.create_time_since_epoch) / 1000.0
    return self._previous[node]
