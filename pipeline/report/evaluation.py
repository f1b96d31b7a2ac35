"""Scoring of a run's test recordings, the one scoring code of the run report and the
benchmarks: the model, output = input and a least-squares FIR, on exactly the same test
samples, with :class:`components.audio.dsp.ErrorSums` (also the TFMA metrics' sums).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from components.audio import dsp
from components.audio import pairs as pairs_lib
from pipeline.inference import apply

FIR_TAPS, FIR_LOOKAHEAD = 512, 64


@dataclasses.dataclass
class TestTrack:
  """One test recording, all channels: ``[frames, channels]`` float32 (the whole recording,
  then only its test part once :func:`predict` has run)."""
  name: str
  sample_rate: int
  start: int                  # first test sample in dry/wet (0 once they hold only the test part)
  dry: np.ndarray
  wet: np.ndarray
  predicted: Optional[np.ndarray] = None


def load_pairs(summary: Dict[str, Any]):
  """(training tracks, test tracks) from the recordings named in the examples summary.

  Training tracks are ``(dry, wet)`` mono pairs (every channel of the training files and
  the part of test files before ``test_tail``); latency found by ``--align`` is trimmed.
  """
  latency = summary.get('latency_samples', {})
  training, tests = [], []
  for pair in pairs_lib.find_pairs(summary['input_base'], summary.get('effect') or None):
    is_test = pairs_lib.matches_any(pair.name, summary.get('test_patterns', []))
    dry, wet, info = pairs_lib.read_pair(pair, int(latency.get(pair.key, 0)))
    n = len(dry)
    cut = int(round(n * (1.0 - float(summary.get('test_tail', 1.0))))) if is_test else n
    training += [(dry[:cut, c], wet[:cut, c]) for c in range(dry.shape[1]) if cut > 0]
    if is_test:
      tests.append(TestTrack(pair.name, info.sample_rate, cut, dry[:n], wet[:n]))
  return training, tests


def predict(model_dir: str, tests: List[TestTrack]) -> None:
  """Fills ``predicted`` (test part only) with the model's output on each whole recording."""
  model = apply.LocalModel(model_dir)

  def whole(track: TestTrack) -> np.ndarray:
    block = apply.block_samples_for(model, apply.DEFAULT_BLOCK_SECONDS, track.dry.shape[1])
    return apply.process(model, track.dry, block)
  fill_predictions(tests, whole)


def fill_predictions(tests: List[TestTrack], predict_whole) -> None:
  """Sets each track's ``predicted`` to the test part of ``predict_whole(track)`` (the
  output, ``[frames, channels]``, for the whole recording ``track.dry``), and trims dry and
  wet to the test part, so that every predictor is scored on exactly the same samples."""
  for track in tests:
    predicted = np.asarray(predict_whole(track), np.float32)
    if predicted.shape != track.dry.shape:
      raise ValueError(f'{track.name}: prediction has shape {predicted.shape}, '
                       f'the recording {track.dry.shape}')
    track.predicted = predicted[track.start:]
    track.dry, track.wet = track.dry[track.start:], track.wet[track.start:]
    track.start = 0   # dry/wet now hold the test part only


Figures = Dict[Tuple[str, str], Dict[str, float]]


def score(tests: List[TestTrack], prediction_of) -> Figures:
  """ESR dB / RMSE / MRSTFT distance of ``prediction_of(track, channel)`` (the test part, ``[samples]``)
  against the wet test part, keyed like the Evaluator's slices: ('', '') overall,
  (source, '') per file, (source, channel) per file and channel."""
  sums: Dict[Tuple[str, str], dsp.ErrorSums] = {}
  for track in tests:
    for c in range(track.dry.shape[1]):
      predicted = prediction_of(track, c)
      for key in (('', ''), (track.name, ''), (track.name, str(c))):
        sums.setdefault(key, dsp.ErrorSums()).add(track.wet[track.start:, c], predicted)
  return {key: s.figures() for key, s in sums.items()}


def fir_references(training, tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`score`) of a least-squares FIR (``FIR_TAPS`` taps,
  ``FIR_LOOKAHEAD`` ahead) fitted on the training tracks, on the test parts."""
  fir = dsp.fit_fir([d for d, _ in training], [w for _, w in training], FIR_TAPS,
                    FIR_LOOKAHEAD)
  # Filtered whole (the test part's start sees its past), scored on the test part.
  return score(tests, lambda track, c: dsp.apply_fir(track.dry[:, c], fir,
                                                       FIR_LOOKAHEAD)[track.start:])


def identity_references(tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`score`) of output = input on the test parts."""
  return score(tests, lambda track, c: track.dry[track.start:, c])


def model_figures(tests: List[TestTrack]) -> Figures:
  """Figures (see :func:`score`) of the model's output filled in by :func:`predict`."""
  return score(tests, lambda track, c: track.predicted[:, c])
