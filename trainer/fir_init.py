"""Least-squares FIR fit on training windows, to initialise the model's linear branch.

With the FIR branch set to the best linear filter before training, a linear effect
(EQ, low-pass) is solved from the first step and the nonlinear paths only learn what
is left. Pure NumPy.
"""
from __future__ import annotations

import numpy as np


class FIRLeastSquares:
  """Accumulates the normal equations of the FIR fit over batches of windows.

  Model: ``wet[t] ~ sum_k h[k] dry[context + t + lookahead - k]`` for the ``window``
  target samples t of every example (dry is zero outside its window). The equations
  are exact (no Toeplitz approximation at window edges): the cross-correlation comes
  from FFTs and the auto-correlation matrix from running sums of lagged products, in
  O(taps * samples) per example.
  """

  def __init__(self, taps: int, lookahead: int, context: int):
    self.taps, self.lookahead, self.context = int(taps), int(lookahead), int(context)
    self.matrix = np.zeros([self.taps, self.taps], np.float64)
    self.vector = np.zeros([self.taps], np.float64)
    self.wet_energy = 0.0
    self.examples = 0

  def add(self, dry: np.ndarray, wet: np.ndarray) -> None:
    """Adds ``dry [n, window + 2 context]`` / ``wet [n, window]`` examples."""
    dry = np.asarray(dry, np.float64)
    wet = np.asarray(wet, np.float64)
    if not len(dry):
      return
    num_samples, window, taps = dry.shape[1], wet.shape[1], self.taps
    anchor = self.context + self.lookahead   # dry index of tap 0 at t = 0
    # vector[k] = sum_t wet[t] dry[anchor + t - k]
    size = 1 << int(np.ceil(np.log2(num_samples + window + taps)))
    cross = np.fft.irfft(np.sum(np.fft.rfft(dry, size) * np.conj(np.fft.rfft(wet, size)),
                                axis=0), size)   # cross[m] = sum_t dry[t + m] wet[t]
    self.vector += cross[(anchor - np.arange(taps)) % size]
    self.wet_energy += float(np.sum(wet * wet))
    # matrix[j, k] = sum_t dry[anchor + t - j] dry[anchor + t - k]; with lag l = j - k >= 0
    # it is sum_i x[i] x[i + l] over i = anchor + t - j in [anchor - j, anchor - j + window).
    j = np.arange(taps)
    for lag in range(taps):
      products = np.sum(dry[:, :num_samples - lag] * dry[:, lag:], axis=0)   # x[i] x[i + lag]
      running = np.concatenate([[0.0], np.cumsum(products)])
      rows = j[lag:]
      lo = np.clip(anchor - rows, 0, num_samples - lag)
      hi = np.clip(anchor - rows + window, 0, num_samples - lag)
      values = running[hi] - running[lo]
      self.matrix[rows, rows - lag] += values
      if lag:
        self.matrix[rows - lag, rows] += values
    self.examples += len(dry)

  def solve(self, ridge: float = 1e-8) -> np.ndarray:
    """The filter h (float32 ``[taps]``, :class:`trainer.layers.FIRFilter` order).

    ``ridge`` is Tikhonov regularisation relative to the mean diagonal; all zeros if
    no signal was seen.
    """
    scale = np.mean(np.diag(self.matrix))
    if scale <= 0.0:
      return np.zeros([self.taps], np.float32)
    matrix = self.matrix + ridge * scale * np.eye(self.taps)
    return np.linalg.solve(matrix, self.vector).astype(np.float32)

  def esr_db(self, h: np.ndarray) -> float:
    """ESR (dB) of the filter ``h [taps]`` on the examples added: the residual energy
    ``sum (wet - h * dry)^2 = E_wet - 2 h.v + h'Mh`` from the normal equations, over
    ``E_wet``. How linear the effect is on these signals: about -70 dB for a low-pass,
    -2 to -10 dB for drives and compressors; 0 dB if no wet energy was seen."""
    if self.wet_energy <= 0.0:
      return 0.0
    h = np.asarray(h, np.float64)
    residual = self.wet_energy - 2.0 * h @ self.vector + h @ self.matrix @ h
    return float(10.0 * np.log10(max(residual, 1e-30) / self.wet_energy))


def fit_fir_windows(dry: np.ndarray, wet: np.ndarray, taps: int, lookahead: int,
                    context: int, ridge: float = 1e-8) -> np.ndarray:
  """Least-squares FIR of ``wet [n, window]`` from ``dry [n, window + 2 context]``.

  See :class:`FIRLeastSquares`; returns float32 ``h`` of ``taps`` samples, ``lookahead``
  of which reach into the future.
  """
  fit = FIRLeastSquares(taps, lookahead, context)
  fit.add(dry, wet)
  return fit.solve(ridge)
