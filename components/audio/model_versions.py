"""A TF Serving model base directory: ``<base>/<version>/`` folders with numeric names.

One rule for every reader and writer (the AtomicPusher writes versions, ``fxemu apply``
and ``fxemu serve`` pick the newest): a version is *complete*, and may be served, when its
folder has ``saved_model.pb`` and ``variables/`` (TF Serving's own test). The pusher
numbers a new version above every numeric folder, complete or not, so it never reuses a
name; it stages it as ``<base>/.partial-<version>`` (not numeric: invisible to TF Serving).
"""
from __future__ import annotations

import os
from typing import List, Tuple

STAGING_PREFIX = '.partial-'


def is_complete(version_dir: str) -> bool:
  """True when a version directory has ``saved_model.pb`` and ``variables/``."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  return (tf.io.gfile.exists(os.path.join(version_dir, 'saved_model.pb'))
          and tf.io.gfile.isdir(os.path.join(version_dir, 'variables')))


def versions(base_dir: str, complete_only: bool = True) -> List[Tuple[int, str]]:
  """Numeric versions under ``base_dir`` (only complete ones unless ``complete_only`` is
  False): ``[(version, path)]``, newest first; ``[]`` when the directory is missing."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  try:
    names = tf.io.gfile.listdir(base_dir)
  except Exception:  # pylint: disable=broad-except
    return []
  found = []
  for name in names:
    name = name.rstrip('/')
    path = os.path.join(base_dir, name)
    if name.isdigit() and (not complete_only or is_complete(path)):
      found.append((int(name), path))
  return sorted(found, reverse=True)
