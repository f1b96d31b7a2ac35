"""Tiny synthetic datasets in the ExampleGen's format, for tests and smoke runs.

Writes ``Split-<name>/data.gz`` GZIP TFRecords of tf.Example with the same features
as :mod:`components.audio_example_gen` (``dry``, ``wet``, ``source``, ``effect``,
``channel``, ``offset``, ``sample_rate``) from in-memory tracks.
"""
from __future__ import annotations

import os
from typing import Dict, Sequence, Tuple

import numpy as np

from components.audio import dsp
from components.audio.tfexample import encode_example
from schema import contract


def lowpass_fir(taps: int = 31, cutoff: float = 0.15) -> np.ndarray:
  """Windowed-sinc low-pass, ``cutoff`` in cycles/sample (0.5 = Nyquist), unit DC gain."""
  n = np.arange(taps) - (taps - 1) / 2.0
  h = np.sinc(2.0 * cutoff * n) * np.hamming(taps)
  return (h / h.sum()).astype(np.float32)


def apply_causal_fir(x: np.ndarray, h: np.ndarray) -> np.ndarray:
  """``y[t] = sum_k h[k] x[t - k]``, same length as x."""
  return np.convolve(np.asarray(x, np.float64), h)[:len(x)].astype(np.float32)


def noise(num_samples: int, seed: int, level: float = 0.3) -> np.ndarray:
  """Gaussian noise with a slowly varying level (so effects see a range of levels)."""
  rng = np.random.default_rng(seed)
  envelope = 0.3 + 0.7 * np.abs(np.sin(np.linspace(0, 7.0, num_samples)))
  return np.clip(level * envelope * rng.standard_normal(num_samples), -1, 1).astype(np.float32)


def window_examples(dry: np.ndarray, wet: np.ndarray, window: int, context: int, hop: int,
                    source: str, effect: str = 'test', channel: int = 0,
                    sample_rate: int = 16000, pad_end: bool = False):
  """Serialized examples cut from one dry/wet track pair (as the ExampleGen cuts them)."""
  starts = dsp.window_starts(len(dry), window, hop, pad_end=pad_end)
  dry_windows = dsp.frame(np.asarray(dry, np.float32), starts, window, context)
  wet_windows = dsp.frame(np.asarray(wet, np.float32), starts, window)
  return [encode_example(floats={contract.DRY: d, contract.WET: w},
                         ints={contract.CHANNEL: channel, contract.OFFSET: int(s),
                               contract.SAMPLE_RATE: sample_rate},
                         strings={contract.SOURCE: source, contract.EFFECT: effect})
          for s, d, w in zip(starts, dry_windows, wet_windows)]


def write_split(examples_uri: str, split: str, records: Sequence[bytes]) -> str:
  """Writes ``<examples_uri>/Split-<split>/data.gz``; returns the file pattern."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
  folder = os.path.join(examples_uri, f'Split-{split}')
  os.makedirs(folder, exist_ok=True)
  path = os.path.join(folder, 'data.gz')
  with tf.io.TFRecordWriter(path, options='GZIP') as writer:
    for record in records:
      writer.write(record)
  return os.path.join(folder, '*.gz')


def write_dataset(examples_uri: str, tracks: Dict[str, Dict[str, Tuple[np.ndarray, np.ndarray]]],
                  window: int, context: int, hop: int, sample_rate: int = 16000) -> Dict[str, str]:
  """Writes splits from ``{split: {source: (dry, wet)}}``; the test split uses hop = window.

  Returns ``{split: file pattern}``.
  """
  patterns = {}
  for split, pairs in tracks.items():
    records = []
    for source, (dry, wet) in pairs.items():
      test = split == 'test'
      records += window_examples(dry, wet, window, context, window if test else hop, source,
                                 sample_rate=sample_rate, pad_end=test)
    patterns[split] = write_split(examples_uri, split, records)
  return patterns
