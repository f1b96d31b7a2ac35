"""Figures of a run with matplotlib (Agg, no display): spectrograms, ESR over time, curves.

Every ``*_figure`` function returns a matplotlib Figure; :func:`png_bytes` renders one
to PNG and closes it. Audio arguments are mono tracks ``[samples]`` in full-scale units.
"""
from __future__ import annotations

import io
from typing import Dict, List, Optional, Sequence

import numpy as np

SPECTROGRAM_FLOOR_DB = -100.0


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel  (start-up: matplotlib)
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel  (start-up: matplotlib)
  return plt


def png_bytes(fig, dpi: int = 80) -> bytes:
  """The figure as PNG bytes; the figure is closed."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=dpi)
  _pyplot().close(fig)
  return buffer.getvalue()


def log_spectrogram(x: np.ndarray, n_fft: int = 2048, hop: int = 512) -> np.ndarray:
  """Magnitude in dB re full scale, ``[frames, n_fft // 2 + 1]``."""
  x = np.asarray(x, np.float64)
  if len(x) < n_fft:
    x = np.pad(x, (0, n_fft - len(x)))
  window = np.hanning(n_fft)
  frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * window
  magnitude = np.abs(np.fft.rfft(frames, axis=1)) / (window.sum() / 2)
  return 20 * np.log10(np.maximum(magnitude, 1e-7))


def comparison_figure(dry, wet, predicted, sample_rate: int, title: str = '',
                      start_seconds: float = 0.0):
  """4 spectrogram panels: dry, wet, predicted, wet - predicted (time axis from
  ``start_seconds``, frequency in kHz, colour in dB re full scale)."""
  plt = _pyplot()
  n = min(len(dry), len(wet), len(predicted))
  wet, predicted = np.asarray(wet[:n]), np.asarray(predicted[:n])
  panels = [('dry (input)', dry[:n]), ('wet (effect)', wet),
            ('predicted (model)', predicted), ('error (wet - predicted)', wet - predicted)]
  fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
  extent = [start_seconds, start_seconds + n / sample_rate, 0, sample_rate / 2000]
  for ax, (label, signal) in zip(axes, panels):
    image = ax.imshow(log_spectrogram(signal).T, origin='lower', aspect='auto', cmap='magma',
                      vmin=SPECTROGRAM_FLOOR_DB, vmax=0, extent=extent)
    ax.set_ylabel('kHz')
    ax.set_title(label, fontsize=10, loc='left')
  axes[-1].set_xlabel('time (s)')
  fig.colorbar(image, ax=axes, label='dB re full scale', shrink=0.6)
  if title:
    fig.suptitle(title)
  return fig


def plot_comparison(dry, wet, predicted, sample_rate: int, path: str, title: str = '') -> str:
  """Writes :func:`comparison_figure` as a PNG file; returns ``path``."""
  with open(path, 'wb') as f:
    f.write(png_bytes(comparison_figure(dry, wet, predicted, sample_rate, title)))
  return path


def esr_over_time_figure(seconds: np.ndarray, esr_db: Dict[str, np.ndarray],
                         level_db: np.ndarray, title: str = '',
                         references: Optional[Dict[str, float]] = None):
  """The model's ESR (dB) per segment against time, with the wet level (dB FS RMS).

  ``seconds``, ``level_db``: ``[segments]`` (segment start times, s); ``esr_db``: label
  (e.g. 'channel 0') -> ``[segments]``. ``references``: label -> whole-track ESR dB,
  drawn as horizontal lines.
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(10, 3.2))
  for label, values in esr_db.items():
    ax.step(seconds, values, where='post', label=f'model, {label}')
  for (label, value), style in zip((references or {}).items(), ('--', ':', '-.')):
    ax.axhline(value, color='gray', linestyle=style, linewidth=1, label=f'{label}: {value:.1f} dB')
  ax.set_xlabel('time (s)')
  ax.set_ylabel('ESR (dB)')
  ax.grid(alpha=0.3)
  level = ax.twinx()
  level.step(seconds, level_db, where='post', color='tab:blue', alpha=0.4, label='wet level')
  level.set_ylabel('wet level (dB FS RMS)', color='tab:blue')
  lines, labels = ax.get_legend_handles_labels()
  more, more_labels = level.get_legend_handles_labels()
  ax.legend(lines + more, labels + more_labels, fontsize=8, loc='upper right')
  if title:
    ax.set_title(title, fontsize=10, loc='left')
  fig.tight_layout()
  return fig


def training_curves_figure(history: Dict[str, Sequence[float]], best_epoch: Optional[int] = None,
                           initial: Optional[Dict[str, float]] = None):
  """Two panels over epochs (1-based): loss (train/eval) and ESR dB (train/eval).

  ``history``: Keras history (``loss``, ``val_loss``, ``esr_db``, ``val_esr_db``, ...).
  ``initial``: eval values before training (epoch 0), e.g. ``{'val_esr_db': -0.8}``.
  """
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
  for ax, key, label in ((axes[0], 'loss', 'loss'), (axes[1], 'esr_db', 'ESR (dB)')):
    for prefix, name, marker in (('', 'train', 'o'), ('val_', 'eval', 's')):
      values: List[float] = list(history.get(prefix + key) or [])
      if not values:
        continue
      epochs = list(range(1, len(values) + 1))
      start = (initial or {}).get(prefix + key)
      if start is not None:
        epochs, values = [0] + epochs, [start] + values
      ax.plot(epochs, values, marker=marker, markersize=3, label=name)
    if best_epoch:
      ax.axvline(best_epoch, color='gray', linestyle=':', label=f'kept (epoch {best_epoch})')
    ax.set_xlabel('epoch')
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.tight_layout()
  return fig
