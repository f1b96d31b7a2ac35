"""Spectrogram comparison figures (dry / wet / predicted / error) with matplotlib."""
from __future__ import annotations

import numpy as np


def log_spectrogram(x: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
  """Magnitude in dB re full scale, ``[frames, n_fft // 2 + 1]``."""
  x = np.asarray(x, np.float64)
  if len(x) < n_fft:
    x = np.pad(x, (0, n_fft - len(x)))
  window = np.hanning(n_fft)
  frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * window
  magnitude = np.abs(np.fft.rfft(frames, axis=1)) / (window.sum() / 2)
  return 20 * np.log10(np.maximum(magnitude, 1e-7))


def plot_comparison(dry, wet, predicted, sample_rate: int, path: str, title: str = '') -> str:
  """Writes a 4-panel PNG (dry, wet, predicted, wet - predicted); returns ``path``."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  n = min(len(dry), len(wet), len(predicted))
  panels = [('dry (input)', dry[:n]), ('wet (effect)', wet[:n]),
            ('predicted (model)', predicted[:n]), ('error (wet - predicted)',
                                                   np.asarray(wet[:n]) - np.asarray(predicted[:n]))]
  fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
  seconds = n / sample_rate
  for ax, (label, signal) in zip(axes, panels):
    image = ax.imshow(log_spectrogram(signal).T, origin='lower', aspect='auto', cmap='magma',
                      vmin=-100, vmax=0, extent=[0, seconds, 0, sample_rate / 2000])
    ax.set_ylabel('kHz')
    ax.set_title(label, fontsize=10, loc='left')
  axes[-1].set_xlabel('time (s)')
  fig.colorbar(image, ax=axes, label='dB re full scale', shrink=0.6)
  if title:
    fig.suptitle(title)
  fig.savefig(path, dpi=80)
  plt.close(fig)
  return path
