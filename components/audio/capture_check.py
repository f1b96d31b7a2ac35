"""Capture check: can a dry/wet recording pair teach a model? Found before training on it.

A schema check sees numbers in range; it does not see that the wet file was trimmed
differently from the dry one, that the interface added more latency than the aligner
searches, that the two files are different takes, that the effect moves by itself
(phaser, chorus, tremolo), or that the recording is clipped, noisy or offset. This module
measures each of those on one decoded pair and turns the numbers into findings, each
with a severity, a message naming the file and what to change:

* **latency** (:func:`components.audio.dsp.estimate_latency`, GCC-PHAT over the search range
  and beyond it): its sign (a wet side cannot lead its dry side), its confidence, and
  whether it lies at or beyond the edge of ``--max-latency-seconds``;
* **coherence**: magnitude-squared coherence of the aligned dry and wet, per frequency
  band and overall (weighted by the wet's power: the fraction of the wet a linear
  filter of the dry can explain);
* **learnability**: error-to-signal ratio (ESR) on held-out blocks of output = input,
  of a least-squares FIR, and of a tiny nonlinear fit (static saturating curves of the
  FIR's output, with a level-dependent gain); none better than -1 dB means no method
  predicts the wet (an error), and fits that do worse than output = input on the
  held-out parts are a warning;
* **time variance**: against the pair's own average transfer function, the lag of each
  0.25 s segment and the gain and phase of each 46 ms frame (broadband material only: a
  tone samples one frequency); a lag that drifts one way is two clocks, a lag, gain or
  phase that swings (and does not follow the input level, as a compressor's or a
  drive's does) is a modulated effect, named with its rate when it is periodic (an LFO);
* **level and hygiene**: clipping, DC offset, the wet's noise floor where the dry is
  silent, and (from the headers) sample rates;
* **repeatability**: when the dry signal plays a segment twice (the ``repeat`` capture
  signal, :func:`repeat_halves`), the ESR between the two wet
  repeats: the floor no model can beat.

Findings of severity ``error`` are the hard failures (wet leads dry without ``--align``,
latency beyond the search range or the examples' context, no coherence, unlearnable):
the pipeline stops before training on them unless ``--allow-unlearnable``. Warnings and
infos are reported only. Pure NumPy/SciPy (no TensorFlow); audio is float32
``[samples, channels]`` in [-1, 1], lengths in samples, levels in dB (dBFS for levels).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import scipy.fft
import scipy.linalg

from components.audio import dsp
from components.audio import pairs as pairs_lib
from components.audio import wav

ERROR, WARNING, INFO = 'error', 'warning', 'info'
SEVERITIES = (ERROR, WARNING, INFO)

# --- What counts as a problem ------------------------------------------------------------

#: |sample| at or above this counts as clipped (full scale).
CLIP_LEVEL = 0.999
#: More than this fraction of clipped samples on a side is a warning (0.1 %).
CLIPPED_FRACTION = 1e-3
#: A DC offset (a channel's mean in nearly every frame) above this level, dBFS, is a warning.
DC_OFFSET_DB = -50.0
#: The wet's RMS where the dry is silent, above this level (dBFS), is a warning.
NOISE_FLOOR_DB = -60.0
#: A frame of the dry quieter than this (RMS dBFS), after as long a silence, is silence.
SILENCE_DB = -80.0
SILENCE_HOLD_SECONDS = 0.1
#: Without --align, a wet side leading the dry by more than this is an error.
LEAD_TOLERANCE_SECONDS = 0.001
#: Without --align, latency above this is left for the model to learn (an info line).
LATENCY_NOTE_SECONDS = 0.002
#: A latency estimate less confident than this is a warning (and its sign is not judged).
MIN_LATENCY_CONFIDENCE = 0.3
#: Overall coherence below this: no linear relation at all between dry and wet.
MIN_COHERENCE = 0.1
#: The best held-out ESR of identity, FIR and nonlinear fit above this (dB): unlearnable.
UNLEARNABLE_ESR_DB = -1.0
#: Both fits worse than output = input by more than this (dB): a warning.
FITS_BEHIND_IDENTITY_DB = 1.0
#: Level coverage: half of a test recording quieter (or louder) than this many dB below the
#: quietest tenth (above the loudest tenth) of every training recording is a level the
#: capture never played: a finding (a warning when the effect is nonlinear).
LEVEL_COVERAGE_DB = 6.0
#: The effect counts as linear when a least-squares FIR predicts every training pair's wet
#: to this held-out ESR or better (dB; the trainer's ``fir_auto_esr_db``).
LINEAR_FIT_DB = -20.0
#: Time variance: a lag swinging more than this (robust spread, samples) between
#: segments, or drifting more than this over the recording (samples); a frame-to-frame
#: phase swing above this (std, degrees); a gain swing above GAIN_SWING_DB plus
#: GAIN_SWING_PER_INCOHERENCE_DB per unit of (1 - coherence) (std, dB), half that when
#: the swing has a periodic line (an LFO: at least MODULATION_SHARE of its variance at
#: MODULATION_MIN_HZ or more).
LAG_SWING_SAMPLES = 2.0
LAG_DRIFT_SAMPLES = 4.0
PHASE_SWING_DEGREES = 20.0
GAIN_SWING_DB = 1.5
GAIN_SWING_PER_INCOHERENCE_DB = 8.0
MODULATION_SHARE = 0.3
MODULATION_MIN_HZ = 0.4
#: The repeat ESR above this (dB) is a warning: the capture does not repeat itself.
REPEAT_WARNING_DB = -20.0
#: Two dry halves closer than this (ESR dB) hold a repeated segment.
REPEAT_IDENTICAL_DB = -60.0

# --- How it is measured ------------------------------------------------------------------

FRAME = 2048                 # samples per analysis frame (Hann, back to back)
LOW_HZ = 30.0                # bins below (DC and its window leakage) are left out
SEGMENT_SECONDS = 0.25       # time-variance segments
SEGMENT_RANGE_DB = 30.0      # frames and segments within this of the loudest count
BROADBAND_BINS = 8.0         # ... and with at least this many occupied frequency bins
BAND_EDGES_HZ = (0.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
FIT_GROUPS = 6               # learnability: groups spread over the pair, each fit then test
FIT_GROUP_SECONDS = 0.6      # per group: 2/3 to fit, the 1/3 right after it held out
FIR_TAPS, FIR_LOOKAHEAD = 256, 32
NONLINEAR_GAINS = (0.5, 1.0, 2.0, 4.0)   # tanh curves of the FIR output, in units of its RMS
ENVELOPE_SECONDS = 0.01


@dataclasses.dataclass(frozen=True)
class Finding:
  """One thing the check found. ``message`` names the file and says what to change."""
  severity: str       # ERROR, WARNING or INFO
  check: str          # latency, coherence, learnability, time_variance, clipping, ...
  message: str

  def to_dict(self) -> Dict[str, str]:
    return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class CheckSettings:
  """What the pipeline will do with the pair (the same options as ``fxemu run``).

  Attributes:
    max_latency_samples: the latency search range, +-samples (``--max-latency-seconds``).
    align: the pipeline trims the latency (``--align``); without it the examples keep it.
    context_samples: dry samples each example has before its window
      (``--context-seconds``): the most latency a model can absorb without ``--align``.
    sample_rate: the rate every file must have (``--sample-rate``), or None for any.
  """
  max_latency_samples: int
  align: bool = False
  context_samples: int = 0
  sample_rate: Optional[int] = None


@dataclasses.dataclass
class SideLevels:
  """Level figures of one side (all channels): dBFS, fraction of samples."""
  peak_db: float
  rms_db: float
  clipped_fraction: float
  dc_offset_db: float     # the largest channel mean, dBFS
  # The spread of the sound's level: percentiles 10, 50 and 90 of the RMS of the frames
  # (:data:`FRAME` samples, every channel) that are not silence (above :data:`SILENCE_DB`),
  # dBFS; None without such frames (or in summaries written before they were measured).
  quiet_db: Optional[float] = None
  median_db: Optional[float] = None
  loud_db: Optional[float] = None


@dataclasses.dataclass
class PairCheck:
  """The numbers and findings of one pair. ``None`` where a figure could not be measured
  (a header problem stops the analysis; a pair without silence has no noise floor).

  Latency figures are in samples (positive: the wet is late); ESR in dB on held-out
  blocks; coherence 0..1; swings are standard deviations over segments.
  """
  effect: str
  name: str
  pre_path: str
  post_path: str
  sample_rate: int = 0
  channels: int = 0
  seconds: float = 0.0
  latency_samples: Optional[int] = None
  latency_fine_samples: Optional[float] = None
  latency_confidence: Optional[float] = None
  latency_search_samples: Optional[int] = None
  latency_strongest_samples: Optional[int] = None
  coherence: Optional[float] = None
  band_coherence: Dict[str, float] = dataclasses.field(default_factory=dict)
  identity_esr_db: Optional[float] = None
  linear_esr_db: Optional[float] = None
  nonlinear_esr_db: Optional[float] = None
  segments: int = 0
  lag_swing_samples: Optional[float] = None
  lag_drift_samples: Optional[float] = None
  gain_swing_db: Optional[float] = None
  phase_swing_degrees: Optional[float] = None
  modulation_hz: Optional[float] = None
  modulation_share: Optional[float] = None
  dry: Optional[SideLevels] = None
  wet: Optional[SideLevels] = None
  noise_floor_db: Optional[float] = None
  repeat_esr_db: Optional[float] = None
  findings: List[Finding] = dataclasses.field(default_factory=list)

  @property
  def key(self) -> str:
    """``'EFFECT - NAME'``, as the examples' summary names pairs."""
    return pairs_lib.pair_key(self.effect, self.name)

  @property
  def verdict(self) -> str:
    """'error' if any finding is an error, else 'warning' if any is, else 'ok'."""
    severities = {f.severity for f in self.findings}
    return ERROR if ERROR in severities else (WARNING if WARNING in severities else 'ok')

  @property
  def best_esr_db(self) -> Optional[float]:
    """The lowest held-out ESR of identity, FIR and nonlinear fit (None if unmeasured)."""
    values = [v for v in (self.identity_esr_db, self.linear_esr_db, self.nonlinear_esr_db)
              if v is not None]
    return min(values) if values else None

  def to_dict(self) -> Dict[str, Any]:
    out = dataclasses.asdict(self)
    out.update(key=self.key, verdict=self.verdict)
    return out

  @classmethod
  def from_dict(cls, data: Dict[str, Any]) -> 'PairCheck':
    values = {f.name: data.get(f.name) for f in dataclasses.fields(cls) if f.name in data}
    values['findings'] = [Finding(**f) for f in data.get('findings', [])]
    for side in ('dry', 'wet'):
      if values.get(side):
        values[side] = SideLevels(**values[side])
    return cls(**values)


# --- Measurements ------------------------------------------------------------------------

def repeat_halves(num_samples: int):
  """``(first, second)`` slices of the two copies in a ``repeat`` track of that length
  (the layout :func:`components.datagen.capture_signals.repeat` writes)."""
  half = num_samples // 2
  return slice(0, half), slice(half, 2 * half)


def _framed(audio: np.ndarray, frames: int) -> np.ndarray:
  """``[frames, FRAME, channels]``: the first ``frames`` back-to-back :data:`FRAME`-sample
  frames of ``[samples, channels]`` (or ``[samples]``: one channel), float32 (a view when
  the audio is float32 already)."""
  return np.asarray(audio[:frames * FRAME], np.float32).reshape(frames, FRAME, -1)


def side_levels(audio: np.ndarray) -> SideLevels:
  """Peak, RMS, clipped fraction and DC offset of float32 ``[samples, channels]``.

  The DC offset is the 10th percentile over frames (:data:`FRAME` samples) of a
  channel's mean, the largest over channels: an offset the interface adds is in every
  frame, while the mean that a waveform itself has (an asymmetric clipper's) comes and
  goes with the material.
  """
  flat = np.ascontiguousarray(audio, np.float32).reshape(-1)
  if not flat.size:
    return SideLevels(dsp.to_db(0.0), dsp.to_db(0.0), 0.0, dsp.to_db(0.0))
  peak = max(float(flat.max()), -float(flat.min()))
  power = float(np.dot(flat, flat)) / flat.size
  clipped = (np.count_nonzero(flat >= CLIP_LEVEL) + np.count_nonzero(flat <= -CLIP_LEVEL))
  frames = len(audio) // FRAME
  if frames:
    # [frames, channels] means (a matrix product: far faster than .mean over the middle axis)
    means = np.abs(np.full(FRAME, 1.0 / FRAME, np.float32) @ _framed(audio, frames))
    dc = float(np.max(np.percentile(means, 10, axis=0)))
  else:
    dc = float(np.max(np.abs(audio.mean(axis=0))))
  spread = level_spread_db(audio)
  return SideLevels(peak_db=dsp.to_db(peak ** 2), rms_db=dsp.to_db(power),
                    clipped_fraction=clipped / flat.size, dc_offset_db=dsp.to_db(dc ** 2),
                    **spread)


def level_spread_db(audio: np.ndarray) -> Dict[str, Optional[float]]:
  """``{'quiet_db', 'median_db', 'loud_db'}``: percentiles 10, 50 and 90 (dBFS, rounded to
  0.1 dB) of the RMS of the :data:`FRAME`-sample frames of every channel of float32
  ``[samples, channels]`` that are louder than :data:`SILENCE_DB`; None without such frames.
  The levels a capture covers, and those the music it is meant for sits at."""
  frames = len(audio) // FRAME
  db = np.empty(0)
  if frames:
    blocks = _framed(audio, frames)
    power = np.einsum('ftc,ftc->fc', blocks, blocks, dtype=np.float64).reshape(-1) / FRAME
    db = 10.0 * np.log10(np.maximum(power, 1e-30))
  db = db[db > SILENCE_DB]
  if not db.size:
    return dict(quiet_db=None, median_db=None, loud_db=None)
  quiet, median, loud = np.percentile(db, [10, 50, 90])
  return dict(quiet_db=round(float(quiet), 1), median_db=round(float(median), 1),
              loud_db=round(float(loud), 1))


def noise_floor_db(dry: np.ndarray, wet: np.ndarray, sample_rate: int) -> Optional[float]:
  """The wet's median RMS (dBFS, DC removed, mean over channels) over frames where the
  aligned mono dry ``[samples]`` has been silent (below :data:`SILENCE_DB`) for
  :data:`SILENCE_HOLD_SECONDS`; None without such frames. ``wet`` is ``[samples,
  channels]`` (a mono mix would hide 3 dB of two channels' independent noise)."""
  frames = len(dry) // FRAME
  if frames < 1:
    return None

  def power(x):
    """Per frame: each channel's variance (its power without DC), mean over channels."""
    view = _framed(x, frames)
    mean = np.einsum('ijk->ik', view) / FRAME
    return np.maximum(np.einsum('ijk,ijk->ik', view, view) / FRAME - mean ** 2, 0.0).mean(1)

  dry_db = 10.0 * np.log10(power(dry) + 1e-30)
  hold = max(1, int(round(SILENCE_HOLD_SECONDS * sample_rate / FRAME)))
  quiet = dry_db < SILENCE_DB
  # silent for `hold` frames in a row, ending at this one (effect tails have decayed)
  run = np.convolve(quiet.astype(np.int64), np.ones(hold, np.int64))[:frames]
  silent = run >= hold
  if np.count_nonzero(silent) < 2:
    return None
  return dsp.to_db(float(np.median(power(wet)[silent])))


def mono(audio: np.ndarray) -> np.ndarray:
  """The mean of the channels of ``[samples, channels]`` (float32 ``[samples]``); summed
  column by column, which is several times faster than a mean over the short axis."""
  out = audio[:, 0].astype(np.float32)
  for channel in range(1, audio.shape[1]):
    out += audio[:, channel]
  if audio.shape[1] > 1:
    out *= np.float32(1.0 / audio.shape[1])
  return out


def _frames(signal: np.ndarray, window: np.ndarray) -> np.ndarray:
  """rfft of Hann-windowed frames (FRAME long, hop FRAME), ``[frames, FRAME//2 + 1]``."""
  count = len(signal) // FRAME
  return scipy.fft.rfft(signal[:count * FRAME].reshape(count, FRAME) * window, axis=1)


@dataclasses.dataclass
class SpectralFigures:
  """Coherence, and lag, gain and phase over time, of an aligned mono pair (see
  :func:`spectral_figures`)."""
  coherence: float
  band_coherence: Dict[str, float]
  segments: int = 0                           # frames used for the gain and phase swings
  lag_swing_samples: Optional[float] = None
  lag_drift_samples: Optional[float] = None
  gain_swing_db: Optional[float] = None
  phase_swing_degrees: Optional[float] = None
  modulation_hz: Optional[float] = None       # the swings' strongest periodic line
  modulation_share: Optional[float] = None    # its share of their variance, 0..1
  lags: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
  gains_db: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
  phases_degrees: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))


def _band_name(low: float, high: Optional[float]) -> str:
  def khz(v):
    return f'{v / 1000:g}k' if v >= 1000 else f'{v:g}'
  return f'{khz(low)}-{khz(high)} Hz' if high else f'>{khz(low)} Hz'


def _segment_lags(cross: np.ndarray):
  """(lag, confidence) of each row of ``[segments, bins]`` cross-spectra whose average
  phase has been removed: the sub-sample peak of their GCC-PHAT-beta within +-FRAME/4,
  and 1 - (the highest value farther than 16 samples from it) / (the peak). Narrowband
  segments (one tone) have many equal peaks, a low confidence, and are not used."""
  weighted = cross * np.power(np.maximum(np.abs(cross), 1e-30), -dsp.PHAT_BETA)
  correlation = np.abs(scipy.fft.irfft(weighted, FRAME, axis=1))
  reach = FRAME // 4
  correlation[:, reach + 1:FRAME - reach] = 0.0
  peak = np.argmax(correlation, axis=1)
  rows = np.arange(len(cross))
  centre = correlation[rows, peak]
  left, right = correlation[rows, (peak - 1) % FRAME], correlation[rows, (peak + 1) % FRAME]
  curvature = left - 2.0 * centre + right
  safe = np.where(curvature < 0, curvature, -1.0)
  fine = np.where(curvature < 0, 0.5 * (left - right) / safe, 0.0)
  lag = np.where(peak > FRAME // 2, peak - FRAME, peak)
  rivals = correlation.copy()
  for offset in range(-16, 17):
    rivals[rows, (peak + offset) % FRAME] = 0.0
  confidence = 1.0 - rivals.max(axis=1) / np.maximum(centre, 1e-30)
  return lag + fine, confidence


def _residual(values: np.ndarray, predictors: np.ndarray) -> np.ndarray:
  """``values`` minus their least-squares fit on ``[n, k]`` predictors (and a constant)."""
  design = np.column_stack([np.ones(len(values)), predictors])
  if len(values) <= design.shape[1] + 1:
    return np.zeros_like(values)
  coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
  return values - design @ coefficients


def _dominant_period(series: np.ndarray, frame_seconds: float):
  """(frequency Hz, share of variance) of the strongest periodogram line (with its two
  neighbours) of a series sampled every ``frame_seconds``, above 0.25 Hz."""
  series = np.asarray(series, np.float64) - np.mean(series)
  if len(series) < 16 or not np.any(series):
    return 0.0, 0.0
  power = np.abs(np.fft.rfft(series * np.hanning(len(series)))) ** 2
  freqs = np.fft.rfftfreq(len(series), frame_seconds)
  band = np.convolve(power, np.ones(3), mode='same')
  band[freqs < 0.25] = 0.0
  best = int(np.argmax(band))
  share = float(band[best] / max(power[1:].sum(), 1e-30))
  if 0 < best < len(power) - 1:           # a parabola through the peak's log power
    left, centre, right = np.log(power[best - 1:best + 2] + 1e-30)
    curvature = left - 2 * centre + right
    if curvature < 0:
      offset = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
      return float(freqs[best] + offset * (freqs[1] - freqs[0])), share
  return float(freqs[best]), share


def spectral_figures(dry: np.ndarray, wet: np.ndarray, sample_rate: int) -> SpectralFigures:
  """Coherence per band, and lag, gain and phase over time, of an aligned mono pair.

  ``dry``/``wet`` are ``[samples]``. Frames of :data:`FRAME` samples (Hann, back to
  back; ~46 ms at 44.1 kHz) give the cross- and auto-spectra (bins below :data:`LOW_HZ`
  are left out: DC offsets and rumble are not the effect). Coherence per bin is
  |sum Sxy|^2 / (sum Sxx sum Syy); a band's (and the overall) figure is its mean
  weighted by the wet's power.

  Against the pair's average transfer function H = sum Sxy / sum Sxx, every frame whose
  dry level is within :data:`SEGMENT_RANGE_DB` of the loudest gets a complex gain
  g = sum(Sxy conj(H)) / sum(|H|^2 Sxx): 1 for every frame of a time-invariant linear
  effect. Its level (dB) and phase (degrees) are regressed on the frame's dry level
  (and its square, and the three previous frames' levels: what a compressor or a
  saturating stage does with level), and the residuals' standard deviations are the
  gain and phase swings; ``modulation_hz`` is the residuals' strongest periodic line
  (an LFO), ``modulation_share`` its share of their variance. Segments of
  :data:`SEGMENT_SECONDS` give a lag each (GCC-PHAT of their summed cross-spectrum
  times conj(H), so the effect's own phase cancels: 0 when nothing moves); the lag
  swing is the robust spread (1.4826 MAD) around a straight line whose rise over the
  recording is the drift.
  """
  window = np.hanning(FRAME + 1)[:FRAME].astype(np.float32)
  if len(dry) < 4 * FRAME:
    return SpectralFigures(0.0, {})
  freqs = np.fft.rfftfreq(FRAME, 1.0 / sample_rate)
  keep = freqs >= LOW_HZ
  x = _frames(np.asarray(dry, np.float32), window)[:, keep]
  y = _frames(np.asarray(wet, np.float32), window)[:, keep]
  freqs = freqs[keep]
  sxy = y * np.conj(x)
  sxx = x.real ** 2 + x.imag ** 2
  syy = y.real ** 2 + y.imag ** 2
  total_xy, total_xx, total_yy = sxy.sum(0), sxx.sum(0), syy.sum(0)
  msc = (total_xy.real ** 2 + total_xy.imag ** 2) / np.maximum(total_xx * total_yy, 1e-30)
  weight = total_yy
  coherence = float(np.sum(msc * weight) / max(np.sum(weight), 1e-30))
  bands = {}
  edges = [e for e in BAND_EDGES_HZ if e < sample_rate / 2]
  for i, low in enumerate(edges):
    high = edges[i + 1] if i + 1 < len(edges) else None
    inside = (freqs >= low) & (freqs < (high or np.inf))
    if np.sum(weight[inside]) > 0:
      bands[_band_name(low, high)] = float(np.sum(msc[inside] * weight[inside]) /
                                           np.sum(weight[inside]))
  figures = SpectralFigures(coherence, bands)
  # Gain and phase per frame, against the average transfer function.
  transfer = total_xy / np.maximum(total_xx, 1e-30)
  projected = sxy @ np.conj(transfer)
  expected = sxx @ (transfer.real ** 2 + transfer.imag ** 2)
  energy = sxx.sum(1)
  level = 10.0 * np.log10(energy + 1e-30)
  # A frame of one tone (a sine sweep) samples the transfer function at one frequency:
  # its gain against the average says little. Frames need BROADBAND_BINS occupied bins
  # (participation ratio of the dry's power spectrum).
  occupied = energy ** 2 / np.maximum(np.einsum('ij,ij->i', sxx, sxx), 1e-30)
  used = (level > level.max() - SEGMENT_RANGE_DB) & (occupied >= BROADBAND_BINS)
  figures.segments = int(np.count_nonzero(used))
  if figures.segments < 8:
    return figures
  gain = projected[used] / np.maximum(expected[used], 1e-30)
  centred = level - np.median(level[used])
  # where the frame's energy is (log of its spectral centroid): a drive's gain depends on
  # level differently at different frequencies (a sweep at several levels shows it)
  centroid = np.log(np.maximum(sxx @ freqs, 1e-30) / np.maximum(energy, 1e-30))
  centroid = centroid - np.median(centroid[used])
  regressors = [centred, centred ** 2, centroid, centroid ** 2, centred * centroid] + [
      np.concatenate([np.full(k, centred[0]), centred[:-k]]) for k in (1, 2, 3)]
  regressors = np.column_stack([r[used] for r in regressors])
  gains_db = 20.0 * np.log10(np.abs(gain) + 1e-30)
  phases = np.degrees(np.angle(gain))
  gain_residual = _residual(gains_db, regressors)
  phase_residual = _residual(phases, regressors)
  figures.gain_swing_db = float(np.std(gain_residual))
  figures.phase_swing_degrees = float(np.std(phase_residual))
  series = np.zeros(len(level))          # silent frames count as no deviation
  series[used] = gain_residual / max(figures.gain_swing_db, 1e-9) + 0.0
  rate, share = _dominant_period(series, FRAME / sample_rate)
  series[used] = phase_residual / max(figures.phase_swing_degrees, 1e-9)
  phase_rate, phase_share = _dominant_period(series, FRAME / sample_rate)
  if phase_share > share:
    rate, share = phase_rate, phase_share
  figures.modulation_hz, figures.modulation_share = rate, share
  figures.gains_db, figures.phases_degrees = gains_db, phases
  # Lag per segment.
  per_segment = max(1, int(round(SEGMENT_SECONDS * sample_rate / FRAME)))
  count = len(x) // per_segment
  if count >= 4:
    starts = np.arange(count) * per_segment
    seg_energy = np.add.reduceat(energy[:count * per_segment], starts)
    seg_level = 10.0 * np.log10(seg_energy + 1e-30)
    seg_power = np.add.reduceat(sxx[:count * per_segment], starts, axis=0)
    seg_occupied = seg_energy ** 2 / np.maximum(np.einsum('ij,ij->i', seg_power, seg_power),
                                                1e-30)
    loud = (seg_level > seg_level.max() - SEGMENT_RANGE_DB) & (seg_occupied >= BROADBAND_BINS)
    lags = np.zeros(0)
    if np.count_nonzero(loud) >= 4:
      cross = np.add.reduceat(sxy[:count * per_segment], starts, axis=0)[loud] * np.conj(
          transfer)
      full = np.zeros([len(cross), FRAME // 2 + 1], np.complex64)
      full[:, keep] = cross
      lags, confidence = _segment_lags(full)
      sure = confidence >= MIN_LATENCY_CONFIDENCE
      lags, times = lags[sure], starts[loud][sure].astype(np.float64)
    if len(lags) >= 4:
      slope, intercept = np.polyfit(times, lags, 1)
      deviation = lags - (slope * times + intercept)
      spread = 1.4826 * float(np.median(np.abs(deviation - np.median(deviation))))
      figures.lag_swing_samples = spread
      figures.lag_drift_samples = float(slope * (times.max() - times.min()))
      figures.lags = lags
  return figures


def _fit_groups(length: int, sample_rate: int):
  """Starts of the learnability groups (:data:`FIT_GROUPS` spread evenly over ``length``,
  leaving room for the FIR's context) and the length of their held-out part (a third of
  a group; shorter groups on short recordings)."""
  margin = FIR_TAPS
  usable = length - 2 * margin
  group = min(int(FIT_GROUP_SECONDS * sample_rate), usable // FIT_GROUPS)
  part = group // 3
  if part < 4 * FIR_TAPS:
    return np.zeros(0, np.int64), 0
  return margin + np.linspace(0, usable - 3 * part, FIT_GROUPS).astype(np.int64), part


def _least_squares_fir(dry_rows: np.ndarray, wet_rows: np.ndarray, taps: int,
                       delay: int) -> np.ndarray:
  """FIR (``[taps]``, ``delay`` samples of look-ahead: wet[t] ~ sum_k h[k] dry[t + delay
  - k]) minimising the squared error over equally long rows of dry and wet ``[rows, n]``
  taken as zero outside (the autocorrelation method, as :func:`components.audio.dsp.fit_fir`,
  batched): normal equations from FFT correlations, solved as a Toeplitz system."""
  size = scipy.fft.next_fast_len(dry_rows.shape[1] + taps + abs(delay), real=True)
  d = scipy.fft.rfft(dry_rows, size, axis=1)
  w = scipy.fft.rfft(wet_rows, size, axis=1)
  auto = scipy.fft.irfft(np.sum(d.real ** 2 + d.imag ** 2, axis=0), size)[:taps].copy()
  cross = scipy.fft.irfft(np.sum(np.conj(d) * w, axis=0), size)
  p = cross[(np.arange(taps) - delay) % size]
  auto[0] += 1e-8 * max(auto[0], dsp.EPS)
  return scipy.linalg.solve_toeplitz(auto, p)


def _envelope_db(rows: np.ndarray, sample_rate: int) -> np.ndarray:
  """The level of each row of ``[rows, samples]`` in dB: RMS over consecutive blocks of
  :data:`ENVELOPE_SECONDS`, held over each block (the last, partial one takes the level
  of the block before it)."""
  width = max(1, int(ENVELOPE_SECONDS * sample_rate))
  blocks = rows.shape[1] // width
  view = rows[:, :blocks * width].reshape(len(rows), blocks, width)
  level = 10.0 * np.log10(np.einsum('ijk,ijk->ij', view, view) / width + 1e-10)
  held = np.repeat(level, width, axis=1)
  tail = rows.shape[1] - held.shape[1]
  return np.concatenate([held, np.repeat(level[:, -1:], tail, axis=1)], axis=1) if tail else held


def _filtered(rows: np.ndarray, fir: np.ndarray, length: int) -> np.ndarray:
  """``rows`` (``[rows, length + taps - 1]``, each starting taps - 1 - delay samples before
  its part) through ``fir``: the FIR output over each part, ``[rows, length]``."""
  taps = len(fir)
  size = scipy.fft.next_fast_len(rows.shape[1] + taps, real=True)
  out = scipy.fft.irfft(scipy.fft.rfft(rows, size, axis=1) * scipy.fft.rfft(fir, size), size,
                        axis=1)
  return out[:, taps - 1:taps - 1 + length]


def learnability(dry: np.ndarray, wet: np.ndarray, sample_rate: int):
  """Held-out ESR (dB) of (identity, least-squares FIR, tiny nonlinear fit), or Nones.

  ``dry``/``wet`` are aligned ``[samples, channels]``. :data:`FIT_GROUPS` groups spread
  over the recording, channel by channel in turn; the first two thirds of each group fit,
  the third right after it is held out (close in time, so that a sweep's held-out part
  is at frequencies the fit saw). Fitted by least squares: (1) a :data:`FIR_TAPS`-tap
  FIR with :data:`FIR_LOOKAHEAD` taps of look-ahead; (2) a static nonlinearity of its
  output u (u and tanh curves of it in units of its RMS: the saturating stage of a drive
  or fuzz) with a gain that depends on the input's level in dB (what a compressor
  does) and a constant (a DC offset). Cost is bounded: at most 6 x 0.6 s are used.
  """
  starts, part = _fit_groups(len(dry), sample_rate)
  if not len(starts):
    return None, None, None
  channels = dry.shape[1]
  taps, delay = FIR_TAPS, FIR_LOOKAHEAD
  before = taps - 1 - delay
  picks = [(s, i % channels) for i, s in enumerate(starts)]

  def rows(audio, offset, length):
    return np.stack([audio[s + offset - before:s + offset + length + delay, c]
                     for s, c in picks]).astype(np.float64)

  fit_dry, fit_wet = rows(dry, 0, 2 * part), rows(wet, 0, 2 * part)
  test_dry = rows(dry, 2 * part, part)
  test_wet = np.stack([wet[s + 2 * part:s + 3 * part, c] for s, c in picks]).astype(np.float64)
  energy = float(np.sum(test_wet ** 2))
  if energy <= 0 or float(np.sum(fit_wet ** 2)) <= 0:
    return None, None, None

  def esr_db(prediction):
    return dsp.to_db(float(np.sum((test_wet - prediction) ** 2)) / energy)

  identity = esr_db(test_dry[:, before:before + part])
  fir = _least_squares_fir(fit_dry, fit_wet, taps, delay)
  u_fit, u_test = _filtered(fit_dry, fir, 2 * part), _filtered(test_dry, fir, part)
  linear = esr_db(u_test)
  scale = float(np.sqrt(np.mean(u_fit ** 2))) or 1.0
  level_fit = _envelope_db(fit_dry[:, before:before + 2 * part], sample_rate)
  level_test = _envelope_db(test_dry[:, before:before + part], sample_rate)
  middle = np.median(level_fit)

  def features(u, level, step=1):
    """``[samples, features]``: u, tanh curves of it, level-scaled u and curve, a constant."""
    base = u[:, ::step].reshape(-1)
    gain = (level[:, ::step].reshape(-1) - middle) / 20.0
    v = base / scale
    columns = [base] + [scale / g * np.tanh(g * v) for g in NONLINEAR_GAINS]
    columns += [columns[0] * gain, columns[1] * gain, np.full_like(v, scale)]
    return np.column_stack(columns)

  design = features(u_fit, level_fit, 2)    # every other sample is plenty for 8 numbers
  target = fit_wet[:, before:before + 2 * part][:, ::2].reshape(-1)
  normal = design.T @ design
  normal[np.diag_indices_from(normal)] += 1e-6 * np.trace(normal) / len(normal)
  coefficients = np.linalg.solve(normal, design.T @ target)
  nonlinear = esr_db((features(u_test, level_test) @ coefficients).reshape(-1, part))
  return identity, linear, nonlinear


def repeat_esr_db(dry: np.ndarray, wet: np.ndarray, lag: int) -> Optional[float]:
  """ESR (dB) between the two wet repeats of a dry signal that plays a segment twice
  (:func:`repeat_halves`), the first predicting the second;
  None if the dry's halves are not the same (no repeated segment). ``dry``/``wet`` are
  the pair as recorded (``[samples, channels]``); ``lag`` is the wet's latency."""
  first, second = repeat_halves(len(dry))
  half = first.stop - first.start
  if half < FRAME:
    return None
  probe = slice(0, min(half, FRAME))      # most pairs differ at once: no need for all of it
  if not np.allclose(dry[first][probe], dry[second][probe], atol=1e-3) or \
      dsp.esr_db(dry[first], dry[second]) > REPEAT_IDENTICAL_DB:
    return None
  begin = max(0, -lag)                 # the part of each half the wet covers
  end = min(half, len(wet) - lag - second.start)
  if end - begin < FRAME:
    return None
  a = wet[first.start + lag + begin:first.start + lag + end]
  b = wet[second.start + lag + begin:second.start + lag + end]
  return dsp.esr_db(b, a)


def is_periodic(check: PairCheck) -> bool:
  """Whether the gain/phase swings hold a clear periodic line (an LFO) of 0.4 Hz or more."""
  return (check.modulation_share or 0) >= MODULATION_SHARE and \
      (check.modulation_hz or 0) >= MODULATION_MIN_HZ


def gain_swing_limit_db(check: PairCheck) -> float:
  """The gain swing (dB) above which a pair counts as time-varying: GAIN_SWING_DB for a
  linear effect, more as coherence falls (a saturating or compressing effect's gain
  follows its input in ways the level regression only partly explains), half as much
  when the swing is periodic (an LFO)."""
  limit = GAIN_SWING_DB + GAIN_SWING_PER_INCOHERENCE_DB * (1.0 - (check.coherence or 0.0))
  return limit / 2 if is_periodic(check) else limit


# --- Findings ------------------------------------------------------------------------------

def _seconds(samples: float, rate: int) -> str:
  return f'{samples / rate:.3f} s' if abs(samples) >= rate * 0.1 else \
      f'{1000.0 * samples / rate:.1f} ms'


def latency_findings(check: PairCheck, estimate: dsp.LatencyEstimate,
                     settings: CheckSettings) -> List[Finding]:
  rate, lag = check.sample_rate, estimate.samples
  pair = f'{check.pre_path} / {check.post_path}'
  found = []
  if estimate.beyond_range:
    strongest = estimate.strongest_samples
    if abs(strongest) > estimate.search_samples:
      where = (f'the dry and wet line up best at {strongest:+d} samples '
               f'({_seconds(strongest, rate)}), outside')
      need = abs(strongest) / rate * 1.25
    else:
      where = f'the best lag, {lag:+d} samples, is at the edge of'
      need = estimate.search_samples / rate * 2
    found.append(Finding(ERROR, 'latency', (
        f'{check.post_path}: latency beyond the search range: {where} the +-'
        f'{_seconds(estimate.search_samples, rate)} searched; raise --max-latency-seconds '
        f'(to {need:.2g} or more) or trim the files so that they start together')))
    return found
  if estimate.confidence < MIN_LATENCY_CONFIDENCE:
    found.append(Finding(WARNING, 'latency', (
        f'{pair}: no clear latency: the best lag, {lag:+d} samples, is hardly more likely '
        f'than others (confidence {estimate.confidence:.2f}); the files may be different '
        'takes, or the effect changes over time')))
  if estimate.confidence < MIN_LATENCY_CONFIDENCE:
    return found           # the lag means nothing; coherence and learnability say why
  lead = -lag
  if lead > LEAD_TOLERANCE_SECONDS * rate:
    if settings.align:
      found.append(Finding(WARNING, 'latency', (
          f'{check.post_path}: the wet side leads the dry by {lead} samples '
          f'({_seconds(lead, rate)}); --align trims the start of the dry side to match, '
          'but an effect cannot answer before its input: check that both files were cut '
          'at the same point')))
    else:
      found.append(Finding(ERROR, 'latency', (
          f'{check.post_path}: the wet side leads the dry by {lead} samples '
          f'({_seconds(lead, rate)}, confidence {estimate.confidence:.2f}): an effect '
          'cannot answer before its input, so the files were trimmed differently; trim '
          f'{lead} samples from the start of {check.pre_path}, or run with --align')))
  elif lag > 0 and not settings.align:
    if lag > settings.context_samples:
      found.append(Finding(ERROR, 'latency', (
          f'{check.post_path}: the wet side is {lag} samples ({_seconds(lag, rate)}) late, '
          f'more than the {settings.context_samples} samples of context each example '
          'gives the model: run with --align')))
    elif lag > LATENCY_NOTE_SECONDS * rate:
      found.append(Finding(INFO, 'latency', (
          f'{check.post_path}: the wet side is {lag} samples ({_seconds(lag, rate)}) late; '
          'the model learns it as a delay (--align would trim it)')))
  return found


def analysis_findings(check: PairCheck, aligned: bool = True) -> List[Finding]:
  """Findings from coherence, learnability, time variance, levels and repeatability.

  With ``aligned`` False (the latency lies beyond the search range, so dry and wet were
  compared at a wrong lag) only the level, hygiene and repeatability findings are made:
  the others would only repeat the latency error.
  """
  found = []
  if aligned:
    found += _relation_findings(check)
  found += _hygiene_findings(check, aligned)
  return found


def _relation_findings(check: PairCheck) -> List[Finding]:
  """Coherence, learnability and time-variance findings of an aligned pair."""
  found = []
  post, pair = check.post_path, f'{check.pre_path} / {check.post_path}'
  if check.coherence is not None and check.coherence < MIN_COHERENCE:
    return [Finding(ERROR, 'coherence', (
        f'{pair}: no coherence between dry and wet (coherence {check.coherence:.2f} after '
        'alignment): the wet is not the dry through an effect; likely different takes or '
        'files paired by mistake, or a misalignment the aligner could not find'))]
  time_varying = []
  if check.lag_drift_samples is not None and abs(check.lag_drift_samples) > LAG_DRIFT_SAMPLES \
      and (check.lag_swing_samples or 0) < LAG_SWING_SAMPLES:
    time_varying.append(Finding(WARNING, 'time_variance', (
        f'{post}: the wet drifts {check.lag_drift_samples:+.1f} samples against the dry over '
        f'the recording: drifting clocks (playback and recording on different '
        'interfaces?); record both on one interface or clock-sync them')))
  if check.lag_swing_samples is not None and check.lag_swing_samples > LAG_SWING_SAMPLES:
    time_varying.append(Finding(WARNING, 'time_variance', (
        f'{post}: the lag swings by {check.lag_swing_samples:.1f} samples from segment to '
        'segment: a modulated delay (chorus, flanger, vibrato) or unstable clocks; a '
        'static model cannot follow it (switch the modulation off to capture)')))
  swing = []
  drifting = bool(time_varying)    # a drift moves the phase too; it is the explanation
  if (check.gain_swing_db or 0) > gain_swing_limit_db(check):
    swing.append(f'gain by {check.gain_swing_db:.1f} dB')
  if (check.phase_swing_degrees or 0) > PHASE_SWING_DEGREES and not drifting:
    swing.append(f'phase by {check.phase_swing_degrees:.0f} degrees')
  if swing:
    lfo = (f', periodically at {check.modulation_hz:.2g} Hz (an LFO)'
           if is_periodic(check) else '')
    time_varying.append(Finding(WARNING, 'time_variance', (
        f'{post}: the wet\'s {" and ".join(swing)} swing from frame to frame{lfo}, which '
        'the input level does not explain: a modulated effect (tremolo, phaser, chorus, '
        'auto-wah) or a control moved during the recording; a static model cannot follow '
        'it (switch the modulation off to capture)')))
  found += time_varying
  best = check.best_esr_db
  likely = 'time-varying (see above)' if time_varying else \
      'different takes, misaligned, or time-varying'
  figures = (f'held-out ESR identity {check.identity_esr_db:+.1f} dB, FIR '
             f'{check.linear_esr_db:+.1f} dB, nonlinear fit {check.nonlinear_esr_db:+.1f} dB'
             if best is not None else '')
  if best is not None and best > UNLEARNABLE_ESR_DB:
    found.append(Finding(ERROR, 'learnability', (
        f'{pair}: nothing predicts the wet: {figures} (best {best:+.1f} dB, above '
        f'{UNLEARNABLE_ESR_DB:g} dB); likely {likely}')))
  elif best is not None and min(check.linear_esr_db, check.nonlinear_esr_db) > \
      check.identity_esr_db + FITS_BEHIND_IDENTITY_DB:
    found.append(Finding(WARNING, 'learnability', (
        f'{pair}: no fit predicts the wet better than output = input ({figures}): what the '
        f'fits learn does not hold on the held-out parts; likely {likely}')))
  return found


def _hygiene_findings(check: PairCheck, aligned: bool) -> List[Finding]:
  """Clipping, DC offset, noise floor (only where dry and wet line up: the wet's level
  where the dry is silent means nothing at a wrong lag) and repeatability findings."""
  found = []
  post = check.post_path
  for side, path, levels in (('dry', check.pre_path, check.dry), ('wet', post, check.wet)):
    if levels is None:
      continue
    if levels.clipped_fraction > CLIPPED_FRACTION:
      fix = ('lower the level into the recording input' if side == 'wet' else
             'lower the level of the dry signal (render or play it quieter)')
      found.append(Finding(WARNING, 'clipping', (
          f'{path}: clipped: {100 * levels.clipped_fraction:.2f} % of the samples are at '
          f'full scale; a model cannot learn what the recording cut off; {fix}')))
    if levels.dc_offset_db > DC_OFFSET_DB:
      found.append(Finding(WARNING, 'dc_offset', (
          f'{path}: DC offset at {levels.dc_offset_db:.1f} dBFS (a channel\'s mean is not 0): '
          'a sign of a faulty interface input or pedal output; high-pass the recording '
          'below 10 Hz or fix the chain')))
  if check.noise_floor_db is not None and check.noise_floor_db > NOISE_FLOOR_DB and \
      aligned and (check.coherence or 0.0) >= MIN_COHERENCE:   # else "silence" is elsewhere
    found.append(Finding(WARNING, 'noise_floor', (
        f'{post}: noisy: {check.noise_floor_db:.1f} dBFS where the dry is silent (above '
        f'{NOISE_FLOOR_DB:g} dBFS): hum, hiss or a noise gate\'s leak that the model must '
        'learn to ignore; check the gain staging, cables and ground, or a long effect tail')))
  if check.repeat_esr_db is not None:
    if check.repeat_esr_db > REPEAT_WARNING_DB:
      found.append(Finding(WARNING, 'repeatability', (
          f'{post}: the two passes of the repeated segment differ by {check.repeat_esr_db:.1f}'
          ' dB ESR: the capture does not repeat itself (noise, drift or a time-varying '
          'effect); no model can get closer than this')))
    else:
      found.append(Finding(INFO, 'repeatability', (
          f'{post}: the two passes of the repeated segment differ by {check.repeat_esr_db:.1f}'
          ' dB ESR: the floor no model can beat on this capture')))
  return found


def add_level_coverage_findings(checks: Sequence[PairCheck],
                                is_test: Callable[[PairCheck], bool],
                                test_tail: float = 1.0) -> None:
  """Adds a finding to each test recording whose level lies outside every training one's:
  a nonlinear effect (a drive, a compressor) responds differently at levels the capture
  never played, so a model can only extrapolate there. Compares the test dry's median
  frame level (:attr:`SideLevels.median_db`) with the training drys' quietest and loudest
  tenths, per effect; a warning unless a FIR fits every training pair to
  :data:`LINEAR_FIT_DB` (then a note: a linear effect has no level to learn). Needs
  at least one training and one test pair of the effect with measured levels.

  ``test_tail`` (0 to 1, the pipeline's option): the fraction at the end of each test
  recording that is test. Below 1 the rest trains the model, at the test recording's own
  levels, so its levels count as training ones too (and it gets no finding)."""
  for effect in sorted({c.effect for c in checks}):
    pairs = [c for c in checks if c.effect == effect and c.dry is not None
             and c.dry.median_db is not None]
    train = [c for c in pairs if test_tail < 1.0 or not is_test(c)]
    if not train:
      continue
    low = min(c.dry.quiet_db for c in train)
    high = max(c.dry.loud_db for c in train)
    nonlinear = any(c.linear_esr_db is None or c.linear_esr_db > LINEAR_FIT_DB for c in train)
    for test in (c for c in pairs if is_test(c)):
      median = test.dry.median_db
      if median < low - LEVEL_COVERAGE_DB:
        where, fix = (f'{low - median:.0f} dB below the quietest tenth of the training '
                      'recordings'), 'quieter levels too'
      elif median > high + LEVEL_COVERAGE_DB:
        where, fix = (f'{median - high:.0f} dB above the loudest tenth of the training '
                      'recordings'), 'louder levels too'
      else:
        continue
      consequence = ('the effect is not linear (a FIR leaves more than '
                     f'{LINEAR_FIT_DB:g} dB ESR), so its response there was never recorded '
                     'and the model can only extrapolate it' if nonlinear else
                     'harmless for a linear effect, as the FIR fits suggest')
      test.findings.append(Finding(WARNING if nonlinear else INFO, 'level_coverage', (
          f'{test.pre_path}: half of this test recording is at or '
          f'{"below" if median < low else "above"} {median:.1f} dBFS, {where} (which cover '
          f'{low:.1f} to {high:.1f} dBFS in {FRAME}-sample frames): {consequence}; play the '
          f'capture signal at {fix} (`fxemu synth --dry-only` plays -63 to -3 dBFS)')))


# --- One pair, a directory ----------------------------------------------------------------

def check_audio(pair: pairs_lib.Pair, dry: np.ndarray, wet: np.ndarray, sample_rate: int,
                settings: CheckSettings,
                estimate: Optional[dsp.LatencyEstimate] = None,
                levels: Optional[Tuple[SideLevels, SideLevels]] = None) -> PairCheck:
  """The check of one decoded pair (float32 ``[samples, channels]`` each, as recorded).

  ``estimate`` (:func:`measure_latency`) and ``levels`` (:func:`side_levels` of dry and
  wet) are passed when already known: the AudioExampleGen measures them once for the
  check, for ``--align`` and for its summary.
  """
  check = PairCheck(pair.effect, pair.name, pair.pre_path, pair.post_path,
                    sample_rate=sample_rate, channels=dry.shape[1],
                    seconds=round(len(dry) / sample_rate, 3))
  check.dry, check.wet = levels or (side_levels(dry), side_levels(wet))
  mono_dry, mono_wet = mono(dry), mono(wet)
  if estimate is None:
    n = min(len(dry), len(wet))
    estimate = dsp.estimate_latency(mono_dry[:n], mono_wet[:n], settings.max_latency_samples)
  check.latency_samples = estimate.samples
  check.latency_fine_samples = round(estimate.fine_samples, 2)
  check.latency_confidence = round(estimate.confidence, 3)
  check.latency_search_samples = estimate.search_samples
  check.latency_strongest_samples = estimate.strongest_samples
  check.findings += latency_findings(check, estimate, settings)
  aligned_dry, aligned_wet = dsp.trim_latency(dry, wet, estimate.samples)
  mono_dry, mono_wet = dsp.trim_latency(mono_dry, mono_wet, estimate.samples)
  figures = spectral_figures(mono_dry, mono_wet, sample_rate)
  check.coherence = round(figures.coherence, 4)
  check.band_coherence = {k: round(v, 4) for k, v in figures.band_coherence.items()}
  check.segments = figures.segments
  for name in ('lag_swing_samples', 'lag_drift_samples', 'gain_swing_db',
               'phase_swing_degrees', 'modulation_hz', 'modulation_share'):
    value = getattr(figures, name)
    setattr(check, name, None if value is None else round(float(value), 3))
  identity, linear, nonlinear = learnability(aligned_dry, aligned_wet, sample_rate)
  check.identity_esr_db = None if identity is None else round(identity, 2)
  check.linear_esr_db = None if linear is None else round(linear, 2)
  check.nonlinear_esr_db = None if nonlinear is None else round(nonlinear, 2)
  floor = noise_floor_db(mono_dry, aligned_wet, sample_rate)
  check.noise_floor_db = None if floor is None else round(floor, 1)
  repeat = repeat_esr_db(dry, wet, estimate.samples)
  check.repeat_esr_db = None if repeat is None else round(repeat, 2)
  aligned = not estimate.beyond_range and check.coherence >= MIN_COHERENCE
  if not aligned:
    # At a wrong lag (or for unrelated files) swings and "silence" measure nothing; the
    # latency or coherence error says what is wrong, a weak-latency warning adds nothing.
    for name in ('lag_swing_samples', 'lag_drift_samples', 'gain_swing_db',
                 'phase_swing_degrees', 'modulation_hz', 'modulation_share', 'noise_floor_db'):
      setattr(check, name, None)
    check.findings = [f for f in check.findings
                      if not (f.check == 'latency' and f.severity == WARNING)]
  check.findings += analysis_findings(check, aligned=not estimate.beyond_range)
  return check


def measure_latency(dry: np.ndarray, wet: np.ndarray, max_lag: int) -> dsp.LatencyEstimate:
  """:func:`components.audio.dsp.estimate_latency` of two ``[samples, channels]`` recordings'
  mono mixes over their common length (what ``--align`` trims and the check reports)."""
  n = min(len(dry), len(wet))
  return dsp.estimate_latency(mono(dry[:n]), mono(wet[:n]), max_lag)


def check_pair(pair: pairs_lib.Pair, settings: CheckSettings) -> PairCheck:
  """Reads and checks one pair. Problems with the files themselves (unreadable, silent,
  sample rates or channel counts that differ) are error findings."""
  try:
    pre, post = wav.read_info(pair.pre_path), wav.read_info(pair.post_path)
  except wav.AudioFileError as e:
    return PairCheck(pair.effect, pair.name, pair.pre_path, pair.post_path,
                     findings=[Finding(ERROR, 'files', str(e))])
  problems = pairs_lib.check_pair(pair, pre, post, settings.sample_rate,
                                  allow_length_mismatch=settings.align)
  base = PairCheck(pair.effect, pair.name, pair.pre_path, pair.post_path,
                   sample_rate=pre.sample_rate, channels=pre.channels,
                   seconds=round(pre.duration, 3))
  if any('sample rate' in p or 'channel counts' in p or 'no samples' in p for p in problems):
    base.findings = [Finding(ERROR, 'sample_rate' if 'sample rate' in p else 'files', p)
                     for p in problems]
    return base
  try:
    dry, _ = wav.read_wav(pair.pre_path)
    wet, _ = wav.read_wav(pair.post_path)
  except wav.AudioFileError as e:
    base.findings = [Finding(ERROR, 'files', str(e))]
    return base
  for path, audio in ((pair.pre_path, dry), (pair.post_path, wet)):
    if not np.any(audio):
      base.findings.append(Finding(ERROR, 'files', f'{path}: every sample is zero (silent '
                                   'recording): nothing to learn from this pair'))
  if base.findings:
    return base
  check = check_audio(pair, dry, wet, pre.sample_rate, settings)
  check.findings = [Finding(ERROR, 'files', p) for p in problems] + check.findings
  return check


def check_directory(directory: str, effect: Optional[str],
                    settings: CheckSettings) -> List[PairCheck]:
  """:func:`check_pair` for every pair of ``directory`` (one effect, or all).

  Raises:
    pairs.PairError: no pairs, or files without their partner.
  """
  return [check_pair(pair, settings) for pair in pairs_lib.find_pairs(directory, effect)]


# --- Text ----------------------------------------------------------------------------------

def _cell(value, fmt: str) -> str:
  if value is None:
    return '-'
  return '<-120' if fmt.endswith('f') and value < -120 else format(value, fmt)


def format_table(checks: Sequence[PairCheck]) -> List[str]:
  """One line per pair: latency and confidence, coherence, held-out ESR of identity /
  FIR / nonlinear fit, lag and gain swing, noise floor, repeat ESR and the verdict."""
  header = (f'  {"pair":24s} {"latency":>8s} {"conf":>5s} {"coher":>5s}  '
            f'{"ESR dB: ident":>13s} {"FIR":>6s} {"nonlin":>6s}  {"lag sd":>6s} '
            f'{"gain sd":>7s} {"floor":>6s} {"repeat":>6s}  verdict')
  lines = [header]
  for c in checks:
    lines.append(
        f'  {c.key[-24:]:24s} {_cell(c.latency_samples, "+d"):>8s} '
        f'{_cell(c.latency_confidence, ".2f"):>5s} {_cell(c.coherence, ".2f"):>5s}  '
        f'{_cell(c.identity_esr_db, "+.1f"):>13s} {_cell(c.linear_esr_db, "+.1f"):>6s} '
        f'{_cell(c.nonlinear_esr_db, "+.1f"):>6s}  {_cell(c.lag_swing_samples, ".1f"):>6s} '
        f'{_cell(c.gain_swing_db, ".1f"):>7s} {_cell(c.noise_floor_db, ".0f"):>6s} '
        f'{_cell(c.repeat_esr_db, ".1f"):>6s}  {c.verdict}')
  return lines


def format_findings(checks: Sequence[PairCheck], severities=SEVERITIES) -> List[str]:
  """The findings of ``severities``, most severe first: ``SEVERITY: message``."""
  lines = []
  for severity in SEVERITIES:
    if severity in severities:
      lines += [f'{severity}: {f.message}' for c in checks for f in c.findings
                if f.severity == severity]
  return lines


def summarize(checks: Sequence[PairCheck]) -> Dict[str, Any]:
  """The check's part of the examples' summary: every pair's numbers and findings, the
  error and warning messages, and the overall verdict ('error', 'warning' or 'ok')."""
  verdicts = {c.verdict for c in checks}
  def messages(severity):
    return [f.message for c in checks for f in c.findings if f.severity == severity]
  return {'pairs': {c.key: c.to_dict() for c in sorted(checks, key=lambda c: c.key)},
          'errors': messages(ERROR), 'warnings': messages(WARNING),
          'verdict': ERROR if ERROR in verdicts else (WARNING if WARNING in verdicts else 'ok')}
