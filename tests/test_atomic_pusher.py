"""AtomicPusher: staged rename, strictly increasing versions, idempotent re-push."""
import os
import threading

import pytest

from components import atomic_pusher
from components.audio import model_versions


def _model(path, payload=b'graph'):
  os.makedirs(os.path.join(path, 'variables'), exist_ok=True)
  with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
    f.write(payload)
  with open(os.path.join(path, 'variables', 'variables.index'), 'wb') as f:
    f.write(payload * 1000)
  return path


def test_push_publishes_a_complete_version(tmp_path):
  model = _model(str(tmp_path / 'model'))
  base = str(tmp_path / 'serving')
  path, version, copied = atomic_pusher.push_atomically(model, base)
  assert copied and os.listdir(base) == [str(version)]
  assert atomic_pusher.saved_model_fingerprint(path) == \
      atomic_pusher.saved_model_fingerprint(model)


def test_same_model_again_is_not_copied_again(tmp_path):
  model = _model(str(tmp_path / 'model'))
  base = str(tmp_path / 'serving')
  first = atomic_pusher.push_atomically(model, base)
  second = atomic_pusher.push_atomically(model, base)
  assert second == (first[0], first[1], False)
  assert [v for v, _ in model_versions.versions(base, complete_only=False)] == [first[1]]


def test_versions_increase_strictly(tmp_path):
  base = str(tmp_path / 'serving')
  os.makedirs(os.path.join(base, '9999999999'))  # a version from the future
  path, version, _ = atomic_pusher.push_atomically(_model(str(tmp_path / 'm'), b'new'), base)
  assert version == 10000000000 and atomic_pusher.next_version([5], now=3) == 6


def test_a_watcher_never_sees_a_partial_version(tmp_path, monkeypatch):
  """Copying is slowed down; a concurrent watcher must only ever see complete versions."""
  base = str(tmp_path / 'serving')
  model = _model(str(tmp_path / 'model'), b'x' * 10000)
  real_copy = atomic_pusher.io_utils.copy_dir
  seen, done = [], threading.Event()

  def slow_copy(src, dst, *args, **kwargs):
    real_copy(src, dst, *args, **kwargs)
    done.wait(0.5)  # the staging folder exists but is not renamed yet

  def watch():
    while not done.is_set():
      for version, _ in model_versions.versions(base, complete_only=False):
        folder = os.path.join(base, str(version))
        seen.append(os.path.isfile(os.path.join(folder, 'saved_model.pb')) and
                    os.path.isfile(os.path.join(folder, 'variables', 'variables.index')))

  monkeypatch.setattr(atomic_pusher.io_utils, 'copy_dir', slow_copy)
  watcher = threading.Thread(target=watch)
  watcher.start()
  atomic_pusher.push_atomically(model, base)
  done.set()
  watcher.join()
  assert all(seen)
  assert not [n for n in os.listdir(base) if n.startswith(model_versions.STAGING_PREFIX)]


def test_failed_copy_leaves_no_version_and_no_staging(tmp_path, monkeypatch):
  base = str(tmp_path / 'serving')

  def broken_copy(src, dst, *args, **kwargs):
    os.makedirs(dst)
    raise OSError('disk full')

  monkeypatch.setattr(atomic_pusher.io_utils, 'copy_dir', broken_copy)
  with pytest.raises(OSError):
    atomic_pusher.push_atomically(_model(str(tmp_path / 'model')), base)
  assert os.listdir(base) == []
