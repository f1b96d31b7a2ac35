"""Fast tf.train.Example serialization for audio windows.

Building a ``tf.train.Example`` through the protobuf API costs ~10 ms for a 1.5 s window
(66k floats); writing the wire format directly from NumPy bytes costs ~0.1 ms and gives a
message that ``tf.io.parse_example`` (and the protobuf parser) read identically.

Wire format (proto3): Example{1: Features{1: map<string, Feature>}},
Feature{1: BytesList, 2: FloatList (packed float32), 3: Int64List (packed varint)}.
"""
from __future__ import annotations

from typing import Mapping, Sequence, Union

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
