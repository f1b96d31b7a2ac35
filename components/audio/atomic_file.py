"""Writing a file atomically: readers see the old file or the whole new one, never a part."""
from __future__ import annotations

import os
import tempfile
from typing import Iterable


def write_atomically(path: str, chunks: Iterable[bytes]) -> None:
  """Writes ``chunks`` to a temporary file beside ``path`` and renames it into place.

  The directory is created if missing. The file gets the usual permissions
  (0666 minus the umask; a temporary file would otherwise stay 0600). On any error the
  temporary file is removed and an existing ``path`` is left untouched.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix='.partial-', suffix=os.path.splitext(path)[1],
                             dir=directory)
  try:
    with os.fdopen(fd, 'wb') as f:
      for chunk in chunks:
        f.write(chunk)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise
