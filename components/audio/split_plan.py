"""Which windows of a track go to which split.

Training material is cut into contiguous time blocks; every ``period``-th block is an
eval block, the rest are train blocks, and windows are taken inside runs of blocks of
the same split only, so no sample of a train window's target lies in an eval window's
target (overlapping windows never leak between train and eval). Test files are tiled
with hop = window so that an error measure summed over the test split is the
whole-file measure; the last window is moved back to end exactly at the end of the
recording (overlapping its neighbour) rather than running past it, because past the end
the wet side is unknown and zero-padding would score the effect's ringing as error.
Only a test part shorter than one window is zero-padded. All lengths are in samples.
"""
from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from components.audio import dsp

TRAIN, EVAL, TEST = 'train', 'eval', 'test'
SPLITS = (TRAIN, EVAL, TEST)


@dataclasses.dataclass(frozen=True)
class WindowSpec:
  """How tracks are cut into examples (samples)."""
  window: int                 # target (wet) length of an example
  hop: int                    # hop between training windows
  context: int                # dry samples added on each side of the target
  block: int                  # length of a train/eval time block
  eval_period: int = 5        # every eval_period-th block is eval (period 5 = 20 %)
  test_tail: float = 1.0      # fraction at the end of a test file that is test

  def __post_init__(self):
    check_test_tail(self.test_tail)


def check_test_tail(test_tail: float) -> None:
  """Raises ValueError unless 0 < ``test_tail`` <= 1 (the fraction of a test recording,
  at its end, that is test)."""
  if not 0.0 < test_tail <= 1.0:
    raise ValueError(f'test tail must be in (0, 1] (the fraction at the end of each test '
                     f'recording that is test), got {test_tail}')


def eval_period_for(eval_fraction: float) -> int:
  """Block period that gives (about) ``eval_fraction`` of the blocks to eval."""
  if not 0.0 < eval_fraction < 1.0:
    raise ValueError(f'eval fraction must be in (0, 1), got {eval_fraction}')
  return max(2, int(round(1.0 / eval_fraction)))


def block_splits(num_samples: int, spec: WindowSpec) -> np.ndarray:
  """Split label (0 train, 1 eval) of every block of a training region ``[num_blocks]``.

  Eval blocks sit in the middle of each period (block index % period == period // 2), so
  a region of fewer than ``period // 2 + 1`` blocks has no eval block.
  """
  num_blocks = -(-num_samples // spec.block) if num_samples > 0 else 0
  return (np.arange(num_blocks) % spec.eval_period == spec.eval_period // 2).astype(np.int64)


def plan_track(num_samples: int, is_test_file: bool, spec: WindowSpec) -> Dict[str, np.ndarray]:
  """Window start offsets (samples) per split for one track of ``num_samples``.

  A test file contributes its last ``test_tail`` fraction to ``test`` and the part
  before it to train/eval like any training file.
  Returns: {'train': starts, 'eval': starts, 'test': starts}, int64 arrays.
  """
  plan = {split: np.zeros([0], np.int64) for split in SPLITS}
  train_end = num_samples
  if is_test_file:
    train_end = int(round(num_samples * (1.0 - spec.test_tail)))
    region = num_samples - train_end
    starts = dsp.window_starts(region, spec.window, spec.window, pad_end=True)
    if region >= spec.window and len(starts):
      starts[-1] = region - spec.window   # end at the recording's end, not past it
    plan[TEST] = train_end + starts
  labels = block_splits(train_end, spec)
  starts = {TRAIN: [], EVAL: []}
  run_start = 0
  for b in range(1, len(labels) + 1):
    if b == len(labels) or labels[b] != labels[run_start]:
      lo, hi = run_start * spec.block, min(b * spec.block, train_end)
      split = EVAL if labels[run_start] else TRAIN
      starts[split].append(lo + dsp.window_starts(hi - lo, spec.window, spec.hop))
      run_start = b
  for split, parts in starts.items():
    if parts:
      plan[split] = np.concatenate(parts).astype(np.int64)
  return plan
