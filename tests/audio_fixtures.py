"""Small WAV pairs made on the fly for tests (no recordings needed)."""
import os

import numpy as np

from components.audio import wav


def toy_effect(dry: np.ndarray) -> np.ndarray:
  """A linear effect (3-tap moving average at 0.8 gain), [frames, channels] -> same."""
  kernel = np.array([0.3, 0.3, 0.2], np.float32)
  return np.stack([np.convolve(dry[:, c], kernel)[:len(dry)] for c in range(dry.shape[1])], 1)


def make_pair(directory: str, name: str, seconds: float, effect: str = 'toy',
              sample_rate: int = 8000, channels: int = 2, seed: int = 0,
              subtype: str = 'PCM_16'):
  """Writes ``EFFECT - pre|post - NAME.wav``; returns (pre_path, post_path, dry, wet)."""
  rng = np.random.default_rng(seed)
  frames = int(seconds * sample_rate)
  t = np.arange(frames) / sample_rate
  dry = np.stack([0.5 * np.sin(2 * np.pi * (100 + 200 * c) * t * (1 + t)) +
                  0.05 * rng.standard_normal(frames) for c in range(channels)], 1)
  dry = dry.astype(np.float32)
  wet = toy_effect(dry)
  pre = os.path.join(directory, f'{effect} - pre - {name}.wav')
  post = os.path.join(directory, f'{effect} - post - {name}.wav')
  wav.write_wav(pre, dry, sample_rate, subtype)
  wav.write_wav(post, wet, sample_rate, subtype)
  return pre, post, dry, wet
