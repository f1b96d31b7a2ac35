"""Finding and checking dry/wet recording pairs.

A pair is two WAV files named ``EFFECT - pre - NAME.wav`` (dry, into the effect) and
``EFFECT - post - NAME.wav`` (wet, out of it), in one directory.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
from typing import List, Optional, Sequence
import unicodedata

import numpy as np

from components.audio import dsp
from components.audio import wav

FILE_PATTERN = re.compile(r'^(?P<effect>.+?) - (?P<side>pre|post) - (?P<name>.+)\.wav$',
                          re.IGNORECASE)


class PairError(ValueError):
  """Problems with the pairs of a data directory; the message lists every one of them."""


@dataclasses.dataclass(frozen=True)
class Pair:
  """One dry/wet recording pair."""
  effect: str
  name: str
  pre_path: str
  post_path: str

  @property
  def key(self) -> str:
    """``'EFFECT - NAME'``, as the examples' summary names pairs."""
    return pair_key(self.effect, self.name)


def pair_key(effect: str, name: str) -> str:
  """``'EFFECT - NAME'``: how the examples' summary and the capture check name a pair."""
  return f'{effect} - {name}'


def read_pair(pair: Pair, latency_samples: Optional[int] = None):
  """Decodes one pair; returns ``(dry, wet, WavInfo of the dry side)``, float32
  ``[frames, channels]``: as recorded (the sides' lengths may differ) when
  ``latency_samples`` is None, else with that latency trimmed and cut to a common length
  (:func:`dsp.trim_latency`; 0 only cuts).

  Raises:
    wav.AudioFileError: on a side that is entirely silent (nothing to learn from it; a
      silent wet side is almost always a recording mistake).
  """
  dry, info = wav.read_wav(pair.pre_path)
  wet, _ = wav.read_wav(pair.post_path)
  for path, audio in ((pair.pre_path, dry), (pair.post_path, wet)):
    if not np.any(audio):
      raise wav.AudioFileError(path, 'every sample is zero (silent recording): there is '
                               'nothing to learn from this pair; remove it or record it again')
  if latency_samples is not None:
    dry, wet = dsp.trim_latency(dry, wet, latency_samples)
  return dry, wet, info


def _listdir(directory: str) -> List[str]:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  if not tf.io.gfile.isdir(directory):
    raise PairError(f'{directory}: not a directory')
  return sorted(tf.io.gfile.listdir(directory))


def parse_file_name(file_name: str):
  """``'lowpass - pre - sin.wav'`` -> ('lowpass', 'pre', 'sin'), or None if it does not match."""
  match = FILE_PATTERN.match(unicodedata.normalize('NFC', file_name))
  if not match:
    return None
  return match.group('effect'), match.group('side').lower(), match.group('name')


def find_pairs(directory: str, effect: Optional[str] = None) -> List[Pair]:
  """Lists the pairs in ``directory`` (optionally only one effect), sorted by effect and name.

  Raises:
    PairError: naming every pre file without its post (and the reverse), or when no pair
      is found at all.
  """
  sides = {}
  for file_name in _listdir(directory):
    parsed = parse_file_name(file_name)
    if parsed is None:
      continue
    file_effect, side, name = parsed
    if effect is not None and file_effect != effect:
      continue
    key = (file_effect, name)
    if side in sides.setdefault(key, {}):
      raise PairError(f'{os.path.join(directory, file_name)}: a second {side} file for '
                      f'effect {file_effect!r}, name {name!r} (names differ only in case?)')
    sides[key][side] = os.path.join(directory, file_name)
  problems, pairs = [], []
  for (file_effect, name), found in sorted(sides.items()):
    if 'post' not in found:
      problems.append(f'{found["pre"]}: dry (pre) file without its wet partner '
                      f'"{file_effect} - post - {name}.wav"')
    elif 'pre' not in found:
      problems.append(f'{found["post"]}: wet (post) file without its dry partner '
                      f'"{file_effect} - pre - {name}.wav"')
    else:
      pairs.append(Pair(file_effect, name, found['pre'], found['post']))
  if problems:
    raise PairError('unpaired files:\n  ' + '\n  '.join(problems))
  if not pairs:
    which = f' for effect {effect!r}' if effect else ''
    effects = sorted({k[0] for k in sides})
    hint = f' (effects present: {", ".join(effects)})' if effects else \
        ' (expected files named "EFFECT - pre - NAME.wav" and "EFFECT - post - NAME.wav")'
    raise PairError(f'{directory}: no pre/post pairs{which}{hint}')
  return pairs


def matches_any(name: str, patterns: Sequence[str]) -> bool:
  """Whether a pair NAME matches one of the glob patterns (case-insensitive)."""
  return any(fnmatch.fnmatch(name.lower(), p.lower()) for p in patterns)


def check_pair(pair: Pair, pre: wav.WavInfo, post: wav.WavInfo,
               sample_rate: Optional[int] = None, allow_length_mismatch: bool = False) -> List[str]:
  """Problems that make a pair unusable (empty list if none). Each names the file(s)."""
  problems = []
  for info in (pre, post):
    if info.num_frames == 0:
      problems.append(f'{info.path}: the file holds no samples')
    if sample_rate is not None and info.sample_rate != sample_rate:
      problems.append(f'{info.path}: sample rate {info.sample_rate} Hz, but the pipeline is '
                      f'configured for {sample_rate} Hz (resample, or set --sample-rate)')
  if pre.sample_rate != post.sample_rate:
    problems.append(f'{pair.pre_path} / {pair.post_path}: sample rates differ '
                    f'({pre.sample_rate} Hz vs {post.sample_rate} Hz)')
  if pre.channels != post.channels:
    problems.append(f'{pair.pre_path} / {pair.post_path}: channel counts differ '
                    f'({pre.channels} vs {post.channels})')
  if pre.num_frames != post.num_frames and not allow_length_mismatch:
    problems.append(f'{pair.pre_path} / {pair.post_path}: lengths differ '
                    f'({pre.num_frames} vs {post.num_frames} samples, '
                    f'{post.num_frames - pre.num_frames:+d}); if the wet side is only '
                    'offset in time, use --align')
  return problems
