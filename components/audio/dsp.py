"""Pure signal-processing functions (NumPy and SciPy's FFT only, no TensorFlow).

Conventions: audio is float32 in [-1, 1]; a *track* is a 1-D array ``[samples]``;
multichannel audio is ``[samples, channels]``. Lengths and offsets are in samples.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import scipy.fft

EPS = 1e-12


# --- PCM <-> float -------------------------------------------------------------------

def pcm_to_float(pcm: np.ndarray, bits: int) -> np.ndarray:
  """Integer PCM -> float32 in [-1, 1).

  Args:
    pcm: integer samples, any shape. 8-bit PCM is unsigned (offset 128), wider is signed.
      24-bit samples are expected already sign-extended into int32.
    bits: bits per sample: 8, 16, 24 or 32.
  Returns:
    float32 array of the same shape; full scale is 2**(bits-1).
  """
  if bits == 8:
    return (pcm.astype(np.float32) - 128.0) / 128.0
  if bits not in (16, 24, 32):
    raise ValueError(f'unsupported PCM bit depth: {bits}')
  return (pcm.astype(np.float64) / float(2 ** (bits - 1))).astype(np.float32)


def float_to_pcm(audio: np.ndarray, bits: int) -> np.ndarray:
  """float in [-1, 1] -> integer PCM, rounded and clipped to the integer range.

  Returns uint8 for 8 bits, int16 for 16, int32 (24-bit values) for 24, int32 for 32.
  Round-trips exactly with :func:`pcm_to_float` for values produced by it.
  """
  scale = float(2 ** (bits - 1))
  x = np.round(np.asarray(audio, dtype=np.float64) * scale)
  x = np.clip(x, -scale, scale - 1)
  if bits == 8:
    return (x + 128).astype(np.uint8)
  if bits == 16:
    return x.astype(np.int16)
  if bits in (24, 32):
    return x.astype(np.int32)
  raise ValueError(f'unsupported PCM bit depth: {bits}')


# --- Windowing and overlap-add -------------------------------------------------------

def window_starts(num_samples: int, window: int, hop: int, pad_end: bool = False) -> np.ndarray:
  """Start offsets (samples) of windows of length ``window`` every ``hop`` samples.

  Without ``pad_end`` only windows that fit wholly inside the signal are returned.
  With ``pad_end`` windows continue until every sample is covered (the last ones run
  past the end and must be zero-padded).
  Returns int64 ``[num_windows]``.
  """
  if window <= 0 or hop <= 0:
    raise ValueError('window and hop must be positive')
  if pad_end:
    if num_samples <= 0:
      return np.zeros([0], np.int64)
    count = max(1, -(-(num_samples - window) // hop) + 1) if num_samples > window else 1
    return np.arange(count, dtype=np.int64) * hop
  if num_samples < window:
    return np.zeros([0], np.int64)
  return np.arange((num_samples - window) // hop + 1, dtype=np.int64) * hop


def frame(signal: np.ndarray, starts: np.ndarray, window: int, context: int = 0) -> np.ndarray:
  """Cut windows out of a track, zero-padding wherever they run outside it.

  Args:
    signal: ``[samples]``.
    starts: ``[num_windows]`` start offsets of the window centres' regions.
    window: window length in samples.
    context: extra samples taken on each side of every window.
  Returns:
    ``[num_windows, window + 2 * context]``; row i covers
    ``signal[starts[i] - context : starts[i] + window + context]``.
  """
  signal = np.asarray(signal)
  length = window + 2 * context
  if len(starts) == 0:
    return np.zeros([0, length], signal.dtype)
  lo = int(min(0, starts.min() - context))
  hi = int(max(len(signal), starts.max() + window + context))
  padded = np.zeros([hi - lo], signal.dtype)
  padded[-lo:-lo + len(signal)] = signal
  index = (np.asarray(starts, np.int64) - context - lo)[:, None] + np.arange(length)[None, :]
  return padded[index]


def overlap_add(frames: np.ndarray, starts: np.ndarray, num_samples: int,
                normalize: bool = True) -> np.ndarray:
  """Overlap-add windows back into a track.

  Args:
    frames: ``[num_windows, window]``.
    starts: ``[num_windows]`` start offsets.
    num_samples: length of the output track.
    normalize: divide each sample by the number of windows covering it, so that
      ``overlap_add(frame(x, s, w), s, len(x))`` reconstructs ``x`` wherever covered.
  Returns:
    ``[num_samples]`` float track (uncovered samples are 0).
  """
  frames = np.asarray(frames)
  window = frames.shape[1] if frames.ndim == 2 else 0
  out = np.zeros([num_samples + window], np.float64)
  count = np.zeros([num_samples + window], np.float64)
  for start, row in zip(np.asarray(starts, np.int64), frames):
    out[start:start + window] += row
    count[start:start + window] += 1.0
  out, count = out[:num_samples], count[:num_samples]
  if normalize:
    out = np.where(count > 0, out / np.maximum(count, 1.0), 0.0)
  return out.astype(frames.dtype if frames.size else np.float32)


# --- Error measures ------------------------------------------------------------------

def error_energy(target: np.ndarray, prediction: np.ndarray):
  """``(sum((y - y_hat)^2), sum(y^2))`` in float64: the two sums every ESR is made of."""
  target = np.asarray(target, np.float64)
  prediction = np.asarray(prediction, np.float64)
  return float(np.sum((target - prediction) ** 2)), float(np.sum(target ** 2))


def esr(target: np.ndarray, prediction: np.ndarray) -> float:
  """Error-to-signal ratio  sum((y - y_hat)^2) / sum(y^2)  (dimensionless, 0 = perfect)."""
  error, energy = error_energy(target, prediction)
  return error / max(energy, EPS)


def to_db(ratio: float) -> float:
  """Power ratio -> decibels (10 log10), with a floor at -300 dB."""
  return float(10.0 * np.log10(max(ratio, 1e-30)))


def esr_db(target: np.ndarray, prediction: np.ndarray) -> float:
  """ESR in dB."""
  return to_db(esr(target, prediction))


def rmse(target: np.ndarray, prediction: np.ndarray) -> float:
  """Root-mean-square error (full-scale units)."""
  diff = np.asarray(target, np.float64) - np.asarray(prediction, np.float64)
  return float(np.sqrt(np.mean(diff ** 2))) if diff.size else 0.0


# --- Phase-invariant distance ---------------------------------------------------------

#: FFT sizes (samples) of the multi-resolution STFT distance; hop = size / 4.
MRSTFT_FFT_SIZES = (2048, 512, 128)
#: Magnitudes below this level, in dB re a full-scale sine's peak bin, count as this level,
#: so that the quantization noise of 16-bit silence (about -100 dB) does not dominate.
MRSTFT_FLOOR_DB = -80.0


def stft_magnitudes(signal: np.ndarray, fft_size: int) -> np.ndarray:
  """|STFT| of a track, ``[frames, fft_size // 2 + 1]``: Hann window of ``fft_size``
  samples, hop ``fft_size // 4``, frames entirely inside the signal (none if it is
  shorter than one window), floored at :data:`MRSTFT_FLOOR_DB`."""
  x = np.asarray(signal, np.float64)
  hop = fft_size // 4
  if len(x) < fft_size:
    return np.zeros([0, fft_size // 2 + 1])
  frames = np.lib.stride_tricks.sliding_window_view(x, fft_size)[::hop]
  window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(fft_size) / fft_size)   # periodic Hann
  magnitude = np.abs(np.fft.rfft(frames * window, axis=-1))
  floor = fft_size / 4.0 * 10.0 ** (MRSTFT_FLOOR_DB / 20.0)   # Hann peak bin of a unit sine: N/4
  return np.maximum(magnitude, floor)


def mrstft_sums(target: np.ndarray, prediction: np.ndarray,
                fft_sizes=MRSTFT_FFT_SIZES) -> np.ndarray:
  """Sums from which :func:`mrstft_from_sums` makes the distance, ``[len(fft_sizes), 4]``.

  Per FFT size: sum of squared magnitude differences, sum of squared target magnitudes,
  sum of absolute natural-log magnitude differences, and the number of bins. Sums of
  several tracks add up, so tracks (or TFMA's batches) combine exactly.
  """
  sums = np.zeros([len(fft_sizes), 4])
  for i, size in enumerate(fft_sizes):
    s_true, s_pred = stft_magnitudes(target, size), stft_magnitudes(prediction, size)
    sums[i] = [np.sum((s_true - s_pred) ** 2), np.sum(s_true ** 2),
               np.sum(np.abs(np.log(s_true) - np.log(s_pred))), s_true.size]
  return sums


def mrstft_from_sums(sums: np.ndarray) -> float:
  """Multi-resolution STFT distance from :func:`mrstft_sums` (0 = same magnitudes).

  The mean over FFT sizes of spectral convergence ``||S - S_hat||_F / ||S||_F`` plus the
  mean absolute log-magnitude difference (Yamamoto et al., 2020; as the ``mrstft``
  training loss). Phase-invariant: a modulated effect whose LFO phase a model cannot know
  is not charged for it as ESR charges it. Sizes with no complete frame are left out.
  """
  sums = np.asarray(sums, np.float64)
  used = sums[:, 3] > 0
  if not np.any(used):
    return float('nan')
  s = sums[used]
  return float(np.mean(np.sqrt(s[:, 0] / np.maximum(s[:, 1], EPS)) + s[:, 2] / s[:, 3]))


def mrstft_distance(target: np.ndarray, prediction: np.ndarray,
                    fft_sizes=MRSTFT_FFT_SIZES) -> float:
  """Multi-resolution STFT distance of one track; see :func:`mrstft_from_sums`."""
  return mrstft_from_sums(mrstft_sums(target, prediction, fft_sizes))


class ErrorSums:
  """Additive sums from which ESR, RMSE and the MRSTFT distance of many tracks come out
  exactly (not as an average of per-track figures): error and target energy, the error
  of a reference prediction (e.g. output = input), the sample count and the
  :func:`mrstft_sums`. Sums of tracks, batches or TFMA accumulators add up with
  :meth:`merge`. The one scoring code of the run report, the TFMA metrics and the
  benchmarks."""
  __slots__ = ('error', 'energy', 'reference_error', 'samples', 'stft')

  def __init__(self):
    self.error = 0.0
    self.energy = 0.0
    self.reference_error = 0.0
    self.samples = 0.0
    self.stft = np.zeros([len(MRSTFT_FFT_SIZES), 4])

  def add(self, target: np.ndarray, prediction: np.ndarray, weight: float = 1.0,
          reference: np.ndarray = None, stft: bool = True) -> 'ErrorSums':
    """Adds tracks: ``target`` and ``prediction`` of one shape, ``[..., samples]`` (the
    MRSTFT runs along the last axis, one track per row); ``reference`` the same shape."""
    target = np.asarray(target, np.float64)
    prediction = np.asarray(prediction, np.float64).reshape(target.shape)
    error, energy = error_energy(target, prediction)
    self.error += weight * error
    self.energy += weight * energy
    if reference is not None:
      self.reference_error += weight * error_energy(
          target, np.asarray(reference, np.float64).reshape(target.shape))[0]
    self.samples += weight * target.size
    if stft and target.size:
      length = target.shape[-1]
      for row, predicted in zip(target.reshape(-1, length), prediction.reshape(-1, length)):
        self.stft = self.stft + weight * mrstft_sums(row, predicted)
    return self

  def merge(self, other: 'ErrorSums') -> 'ErrorSums':
    """Adds ``other``'s sums into these; returns self."""
    self.error += other.error
    self.energy += other.energy
    self.reference_error += other.reference_error
    self.samples += other.samples
    self.stft = self.stft + other.stft
    return self

  def esr(self) -> float:
    return self.error / max(self.energy, EPS)

  def esr_db(self) -> float:
    return to_db(self.esr())

  def rmse(self) -> float:
    return float(np.sqrt(self.error / self.samples)) if self.samples else 0.0

  def reference_esr_db(self) -> float:
    return to_db(self.reference_error / max(self.energy, EPS))

  def reference_rmse(self) -> float:
    return float(np.sqrt(self.reference_error / self.samples)) if self.samples else 0.0

  def mrstft(self) -> float:
    return mrstft_from_sums(self.stft)

  def figures(self) -> dict:
    """``{'esr_db', 'rmse', 'mrstft'}``."""
    return {'esr_db': self.esr_db(), 'rmse': self.rmse(), 'mrstft': self.mrstft()}


# --- Where the error is --------------------------------------------------------------

DEFAULT_BAND_EDGES_HZ = (0.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)


def band_energies(signal: np.ndarray, sample_rate: int,
                  edges_hz=DEFAULT_BAND_EDGES_HZ) -> np.ndarray:
  """Energy (sum of squares) of a track in frequency bands, ``[len(edges_hz)]``.

  Band i covers ``[edges_hz[i], edges_hz[i + 1])`` Hz, the last band reaches Nyquist.
  Computed from the real FFT with Parseval's theorem, so the bands add up to
  ``sum(signal ** 2)``.
  """
  x = np.asarray(signal, np.float64)
  n = len(x)
  if n == 0:
    return np.zeros(len(edges_hz))
  power = np.abs(np.fft.rfft(x)) ** 2 / n
  power[1:(n + 1) // 2] *= 2.0            # bins that stand for a positive and a negative one
  freqs = np.fft.rfftfreq(n, 1.0 / sample_rate)
  band = np.searchsorted(np.asarray(edges_hz, np.float64), freqs, side='right') - 1
  return np.bincount(np.clip(band, 0, len(edges_hz) - 1), weights=power,
                     minlength=len(edges_hz))


def level_band_energies(signal: np.ndarray, level_of: np.ndarray, block: int,
                        edges_db: Sequence[float]) -> np.ndarray:
  """Energy (sum of squares) of a track in bands of another track's level,
  ``[len(edges_db)]``: ``signal`` and ``level_of`` are ``[samples]``; each whole block of
  ``block`` samples (a shorter tail is left out) goes to the band of ``level_of``'s RMS
  level in that block (dBFS; an all-zero block is -inf dBFS). Band i covers
  ``[edges_db[i], edges_db[i + 1])``, the last band has no upper edge, and levels below
  ``edges_db[0]`` count in band 0 (start the edges at ``-np.inf`` for an open first band).
  Used as ``level_band_energies(error, dry, ...)``: where is the error, by how loud the
  input played?
  """
  signal = np.asarray(signal, np.float64)
  n = len(signal) // block * block
  if n == 0:
    raise ValueError(f'a track of {len(signal)} samples is shorter than one block ({block})')
  power = np.mean(np.square(np.asarray(level_of[:n], np.float64)).reshape(-1, block), axis=1)
  with np.errstate(divide='ignore'):
    level_db = 10.0 * np.log10(power)
  band = np.searchsorted(np.asarray(edges_db, np.float64), level_db, side='right') - 1
  energy = np.sum(np.square(signal[:n]).reshape(-1, block), axis=1)
  return np.bincount(np.clip(band, 0, len(edges_db) - 1), weights=energy,
                     minlength=len(edges_db))


def esr_by_band(target: np.ndarray, prediction: np.ndarray, sample_rate: int,
                edges_hz=DEFAULT_BAND_EDGES_HZ):
  """Per frequency band: (ESR dB within the band, share of the total error energy).

  Returns two arrays ``[len(edges_hz)]``; the shares add up to 1.
  """
  error = band_energies(np.asarray(target, np.float64) - np.asarray(prediction, np.float64),
                        sample_rate, edges_hz)
  signal = band_energies(target, sample_rate, edges_hz)
  esr_db_per_band = np.array([to_db(e / max(s, EPS)) for e, s in zip(error, signal)])
  return esr_db_per_band, _shares(error)


def esr_by_segment(target: np.ndarray, prediction: np.ndarray, segment_samples: int):
  """Per consecutive segment of ``segment_samples`` (the last may be shorter):
  (start sample, ESR dB within the segment, share of the total error energy,
  target level in dB re full scale RMS). Four arrays ``[segments]``."""
  target = np.asarray(target, np.float64)
  error = (target - np.asarray(prediction, np.float64)) ** 2
  starts = np.arange(0, len(target), segment_samples)
  err = np.add.reduceat(error, starts) if len(starts) else np.zeros(0)
  sig = np.add.reduceat(target ** 2, starts) if len(starts) else np.zeros(0)
  lengths = np.diff(np.append(starts, len(target)))
  esr_db_per_segment = np.array([to_db(e / max(s, EPS)) for e, s in zip(err, sig)])
  level_db = np.array([to_db(s / max(n, 1)) for s, n in zip(sig, lengths)])
  return starts, esr_db_per_segment, _shares(err), level_db


def _shares(energies: np.ndarray) -> np.ndarray:
  """Energies as fractions of their sum (all zeros if the sum is zero)."""
  total = float(np.sum(energies))
  return energies / total if total > 0 else np.zeros_like(energies)


# --- Alignment -----------------------------------------------------------------------

#: PHAT-beta exponent of :func:`gcc_phat`: 1 whitens completely (every frequency bin counts
#: the same, so bins where one side holds only noise count as much as the signal); 0 is
#: the plain cross-correlation, whose peak smears over a filter's impulse response and
#: wanders with strongly nonlinear effects. 0.8 keeps the sharp peak of whitening while
#: bins with little energy (a low-passed wet side's quantization noise) count less.
PHAT_BETA = 0.8
#: Peaks of the correlation closer than this (samples, ~5 ms at 44.1 kHz) to the main one
#: count as the same event (an effect's impulse response spreads its peak), not as a rival.
LATENCY_GUARD_SAMPLES = 220
#: A peak beyond the search range this many times higher than the best one inside, and
#: itself this clear of its rivals (confidence), means the latency lies outside the range.
BEYOND_RANGE_RATIO = 1.5
BEYOND_RANGE_CONFIDENCE = 0.3


@dataclasses.dataclass(frozen=True)
class LatencyEstimate:
  """The lag (samples) by which a wet signal trails its dry one, and how sure it is.

  Attributes:
    samples: the lag at the correlation peak within ``[-search_samples, search_samples]``;
      positive means the wet is late (latency), negative that it leads.
    fine_samples: the same lag refined below a sample (parabola through the peak).
    confidence: 1 - (the highest correlation peak farther than the guard from the main
      one, anywhere) / (the main peak): near 1 for one clear peak, near 0 when another
      lag fits as well (different takes, periodic material, a peak outside the range).
    search_samples: the range searched (the requested one, or less on short signals).
    strongest_samples: the lag of the highest peak over every lag the signals' lengths
      allow, inside the range or not.
    beyond_range: the latency is not inside the range: a clear estimate (confidence of
      BEYOND_RANGE_CONFIDENCE or more) sits on its edge, or the strongest peak lies
      outside it, clearly (BEYOND_RANGE_RATIO) higher and clear of its own rivals.
      Unrelated signals (different takes) have no clear peak anywhere: not beyond.
  """
  samples: int
  fine_samples: float
  confidence: float
  search_samples: int
  strongest_samples: int
  beyond_range: bool


def _fft_size(length: int) -> int:
  return scipy.fft.next_fast_len(max(int(length), 2), real=True)


def gcc_phat(dry: np.ndarray, wet: np.ndarray, beta: float = PHAT_BETA) -> np.ndarray:
  """Generalized cross-correlation with PHAT-beta weighting, ``[size]`` (circular).

  ``size`` is a fast FFT length at least as long as the longer signal; entry ``k`` is the
  correlation at lag ``k`` (wet later than dry by ``k``) and entry ``size - k`` at lag
  ``-k``. Cross-spectrum bins are divided by their magnitude to the power ``beta``.
  Computed in float32 (three FFTs), which is plenty for finding a peak.
  """
  size = _fft_size(max(len(dry), len(wet)))
  spectrum = (scipy.fft.rfft(np.asarray(wet, np.float32), size) *
              np.conj(scipy.fft.rfft(np.asarray(dry, np.float32), size)))
  magnitude = np.abs(spectrum)
  spectrum *= np.power(np.maximum(magnitude, np.float32(1e-30)), np.float32(-beta))
  return scipy.fft.irfft(spectrum, size)


def estimate_latency(dry: np.ndarray, wet: np.ndarray, max_lag: int,
                     guard: int = LATENCY_GUARD_SAMPLES,
                     beta: float = PHAT_BETA) -> LatencyEstimate:
  """Latency of ``wet`` behind ``dry`` (both ``[samples]``) by GCC-PHAT-beta.

  Searches lags in ``[-max_lag, max_lag]`` (clipped to less than half the longer
  signal); also finds the strongest peak over every lag, to tell a latency beyond the
  range from one inside it. Robust to strongly nonlinear effects (fuzz, hard clipping:
  the whitened cross-spectrum keeps the phase of the fundamentals) and to an offset of
  either sign. See :class:`LatencyEstimate` for the fields.
  """
  correlation = np.abs(gcc_phat(dry, wet, beta))
  size = len(correlation)
  search = int(max(0, min(int(max_lag), size // 2 - 1)))
  lags = np.concatenate([np.arange(0, search + 1), np.arange(-search, 0)])
  values = correlation[lags % size]
  best = int(np.argmax(values))
  lag, peak = int(lags[best]), float(values[best])
  # every lag, as a signed lag in (-size/2, size/2]
  strongest_index = int(np.argmax(correlation))
  strongest = strongest_index if strongest_index <= size // 2 else strongest_index - size
  confidence = _peak_confidence(correlation, lag, guard)
  left, right = correlation[(lag - 1) % size], correlation[(lag + 1) % size]
  curvature = left - 2.0 * peak + right
  fine = lag + (0.5 * (left - right) / curvature if curvature < 0 else 0.0)
  beyond = bool((search > 0 and abs(lag) >= search and confidence >= BEYOND_RANGE_CONFIDENCE)
                or (abs(strongest) > search and
                    correlation[strongest_index] > BEYOND_RANGE_RATIO * peak and
                    _peak_confidence(correlation, strongest, guard) >= BEYOND_RANGE_CONFIDENCE))
  return LatencyEstimate(samples=lag, fine_samples=float(fine), confidence=confidence,
                         search_samples=search, strongest_samples=int(strongest),
                         beyond_range=beyond)


def _peak_confidence(correlation: np.ndarray, lag: int, guard: int) -> float:
  """1 - (the highest value of ``|correlation|`` farther than ``guard`` from ``lag``) /
  (its value at ``lag``), in [0, 1]."""
  size = len(correlation)
  peak = float(correlation[lag % size])
  rivals = correlation.copy()
  rivals[(lag + np.arange(-guard, guard + 1)) % size] = 0.0   # the peak's own lobe
  return float(np.clip(1.0 - float(rivals.max()) / peak, 0.0, 1.0)) if peak > 0 else 0.0


def trim_latency(dry: np.ndarray, wet: np.ndarray, lag: int):
  """``(dry, wet)`` with ``lag`` removed and cut to their common length: the first ``lag``
  samples of ``wet`` are dropped when it is late (lag > 0), the first ``-lag`` of ``dry``
  when the wet leads. Works on ``[samples]`` and ``[samples, channels]`` alike."""
  if lag > 0:
    wet = wet[lag:]
  elif lag < 0:
    dry = dry[-lag:]
  n = min(len(dry), len(wet))
  return dry[:n], wet[:n]


# --- Linear reference ----------------------------------------------------------------

def fit_fir(dry_tracks, wet_tracks, taps: int, delay: int = 0, ridge: float = 1e-8) -> np.ndarray:
  """Least-squares FIR filter h (``[taps]``) minimising sum ||wet - h * dry||^2.

  The filter may look ``delay`` samples ahead (non-causal part): output sample t uses
  dry[t + delay - taps + 1 .. t + delay]. Solved from the normal equations built with
  FFT-based correlations, so it is fast for long signals.
  """
  r = np.zeros([taps], np.float64)       # autocorrelation of dry, lags 0..taps-1
  p = np.zeros([taps], np.float64)       # cross-correlation wet/dry at lags delay-k
  for dry, wet in zip(dry_tracks, wet_tracks):
    dry = np.asarray(dry, np.float64)
    wet = np.asarray(wet, np.float64)
    n = len(dry)
    size = 1 << int(np.ceil(np.log2(2 * n + taps + abs(delay))))
    d = np.fft.rfft(dry, size)
    auto = np.fft.irfft(d * np.conj(d), size)
    r += auto[:taps]
    cross = np.fft.irfft(np.fft.rfft(wet, size) * np.conj(d), size)
    lags = np.arange(taps) - delay   # wet[t] ~ sum_k h[k] dry[t - k + delay]
    p += cross[lags % size]
  idx = np.abs(np.arange(taps)[:, None] - np.arange(taps)[None, :])
  matrix = r[idx]
  matrix[np.diag_indices(taps)] += ridge * max(r[0], EPS)
  return np.linalg.solve(matrix, p)


def apply_fir(dry: np.ndarray, fir: np.ndarray, delay: int = 0) -> np.ndarray:
  """Filter a track with ``fir`` (as fitted by :func:`fit_fir`); same length as ``dry``."""
  dry = np.asarray(dry, np.float64)
  full = np.convolve(dry, fir)
  return full[delay:delay + len(dry)].astype(np.float32) if delay >= 0 else \
      np.concatenate([np.zeros(-delay), full])[:len(dry)].astype(np.float32)
