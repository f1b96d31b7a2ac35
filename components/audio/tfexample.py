"""Fast tf.train.Example serialization for audio windows, and GZIP TFRecord files of them.

Writing the wire format directly from NumPy bytes is much cheaper than building a
``tf.train.Example`` through the protobuf API (figures in docs/performance.md) and gives a
message that ``tf.io.parse_example`` (and the protobuf parser) read identically.

Wire format (proto3): Example{1: Features{1: map<string, Feature>}},
Feature{1: BytesList, 2: FloatList (packed float32), 3: Int64List (packed varint)}.

:class:`TFRecordFile` writes those records as GZIP TFRecords (``tf.io.TFRecordWriter``) at a
chosen zlib level (see :data:`DEFAULT_GZIP_LEVEL`), atomically.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence, Union
import uuid

import numpy as np


def _varint(value: int) -> bytes:
  value &= (1 << 64) - 1  # negative int64 -> two's complement, as protobuf does
  out = bytearray()
  while True:
    bits = value & 0x7F
    value >>= 7
    if value:
      out.append(bits | 0x80)
    else:
      out.append(bits)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  """A length-delimited field (wire type 2)."""
  return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _float_feature(values: np.ndarray) -> bytes:
  raw = np.ascontiguousarray(values, dtype='<f4').tobytes()
  return _field(2, _field(1, raw) if raw else b'')


def _int64_feature(values: Sequence[int]) -> bytes:
  packed = b''.join(_varint(int(v)) for v in values)
  return _field(3, _field(1, packed) if packed else b'')


def _bytes_feature(values: Sequence[bytes]) -> bytes:
  return _field(1, b''.join(_field(1, v) for v in values))


Value = Union[np.ndarray, Sequence[int], Sequence[bytes], bytes, str, int]


def encode_example(floats: Mapping[str, np.ndarray] = (),
                   ints: Mapping[str, Union[int, Sequence[int]]] = (),
                   strings: Mapping[str, Union[bytes, str, Sequence[bytes]]] = ()) -> bytes:
  """Serializes one tf.train.Example.

  Args:
    floats: name -> 1-D float array (stored as float32 FloatList).
    ints: name -> int or sequence of ints (Int64List).
    strings: name -> bytes/str or sequence of them (BytesList).
  Returns:
    The serialized Example, as ``tf.train.Example.SerializeToString()`` would give.
  """
  entries = []
  for name, values in dict(floats).items():
    entries.append((name, _float_feature(np.asarray(values).reshape(-1))))
  for name, values in dict(ints).items():
    entries.append((name, _int64_feature([values] if np.isscalar(values) else values)))
  for name, values in dict(strings).items():
    if isinstance(values, (bytes, str)):
      values = [values]
    entries.append((name, _bytes_feature(
        [v.encode('utf-8') if isinstance(v, str) else v for v in values])))
  features = b''.join(
      _field(1, _field(1, name.encode('utf-8')) + _field(2, feature))
      for name, feature in sorted(entries))
  return _field(1, features)


# --- TFRecord files -----------------------------------------------------------------------
#
# GZIP TFRecords, which ``tf.data.TFRecordDataset(compression_type='GZIP')`` and Beam's
# ReadFromTFRecord read. Beam's WriteToTFRecord always compresses at zlib level 6, which
# on float32 audio is the bulk of an ingest; level 1 is much faster for files slightly
# larger (figures in docs/performance.md). ``tf.io.TFRecordWriter`` writes them: fxemu's
# former writer of its own was not clearly faster (docs/performance.md).

#: zlib level of the GZIP TFRecords written by :class:`TFRecordFile`.
DEFAULT_GZIP_LEVEL = 1


class TFRecordFile:
  """A GZIP TFRecord file written atomically: ``with TFRecordFile(path) as f: f.write(r)``.

  The records go to a temporary name next to ``path``, renamed into place when the
  ``with`` block ends without an exception (removed otherwise), so a reader, or a retried
  writer, never sees half a file. Local paths and any filesystem TensorFlow's gfile knows
  (gs://, s3://, ...) work.
  """

  def __init__(self, path: str, compression_level: int = DEFAULT_GZIP_LEVEL):
    self.path = path
    self._partial = f'{path}.partial-{uuid.uuid4().hex[:8]}'
    self._level = compression_level
    self._writer = None
    self.records = 0

  def __enter__(self) -> 'TFRecordFile':
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    self._writer = tf.io.TFRecordWriter(self._partial, tf.io.TFRecordOptions(
        compression_type='GZIP', compression_level=self._level))
    self.records = 0
    return self

  def write(self, record: bytes) -> None:
    self._writer.write(record)
    self.records += 1

  def __exit__(self, kind, value, traceback) -> None:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    try:
      self._writer.close()
      if kind is None:
        tf.io.gfile.rename(self._partial, self.path, overwrite=True)
    finally:
      if tf.io.gfile.exists(self._partial):
        tf.io.gfile.remove(self._partial)


def write_tfrecord_file(path: str, records: Iterable[bytes],
                        compression_level: int = DEFAULT_GZIP_LEVEL) -> int:
  """Writes ``records`` to the GZIP TFRecord file ``path`` atomically; returns the count."""
  with TFRecordFile(path, compression_level) as f:
    for record in records:
      f.write(record)
  return f.records
