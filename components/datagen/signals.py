"""Dry training signals: band-limited exponential sweeps at several levels.

Every signal is an exponential (logarithmic) frequency sweep through the audible range,
phase-continuous and synthesised additively, so no harmonic ever reaches the Nyquist
frequency (no aliasing). An amplitude envelope steps and ramps the sweep through
several levels with short silences in between, which is what level-dependent effects
(overdrive, compressors) need to be learned. The left channel sweeps up and the right
channel sweeps down with its own level sequence, so the two channels carry different
material.

Conventions (as in :mod:`components.audio.dsp`): a track is float ``[samples]``, stereo is
``[samples, 2]``; times are in seconds, frequencies in Hz, levels in dBFS of the
nominal peak amplitude (that of the ideal waveform: a full-scale sine, square or saw
peaks at 0 dBFS). Band-limiting adds Gibbs ripple, up to +2.1 dB for a square near
Nyquist, where only its fundamental (amplitude 4/pi) is left. Everything is
deterministic given the seed.
"""
from __future__ import annotations

import zlib

import numpy as np

#: Waveform names, in the order the data set lists them.
WAVEFORMS = ('sine', 'square', 'saw', 'polysaw', 'triangle')
#: Levels (dBFS, peak) the envelopes move between.
LEVELS_DB = (-30.0, -18.0, -9.0, -3.0)
#: Sweep range (Hz); the top is lowered to :data:`MAX_FUNDAMENTAL` of Nyquist if needed.
LOW_HZ, HIGH_HZ = 20.0, 20000.0
#: Default length of one stereo sweep signal (seconds).
DEFAULT_SECONDS = 10.0

#: Harmonics fade out between these fractions of the Nyquist frequency.
TAPER_START, TAPER_END = 0.70, 0.90
#: Highest fundamental, as a fraction of the Nyquist frequency.
MAX_FUNDAMENTAL = 0.90
#: Detuning (cents) of the voices of the poly-saw.
POLYSAW_DETUNE_CENTS = (-17.0, -7.0, 0.0, 8.0, 19.0)

SEGMENT_SECONDS = (0.3, 0.8)   # range of the length of one level segment
RAMP_PROBABILITY = 0.25        # chance that a segment glides to its level over its length
STEP_SECONDS = 0.003           # length of a level step (short, not a click)
SILENCE_PROBABILITY = 0.2      # chance of a silence after a segment
SILENCE_SECONDS = (0.05, 0.3)  # range of the length of a silence
EDGE_SECONDS = 0.01            # fade-in at the start and fade-out before the tail
TAIL_SECONDS = 0.15            # silence at the end, for effect tails (release, decay)


def db_to_gain(db):
  """dB -> linear amplitude factor (20 log10 convention)."""
  return np.power(10.0, np.asarray(db, np.float64) / 20.0)


def rng_for(seed: int, name: str) -> np.random.Generator:
  """An independent random generator per (seed, name), stable across runs and processes."""
  return np.random.default_rng([int(seed), zlib.crc32(name.encode('utf-8'))])


# --- Sweeps and oscillators ----------------------------------------------------------

def exponential_sweep(num_samples: int, sample_rate: int, start_hz: float, end_hz: float):
  """Phase and instantaneous frequency of an exponential sweep.

  The frequency moves from ``start_hz`` to ``end_hz`` (either direction) by a constant
  number of octaves per second; the phase is its exact integral, so it is continuous.
  Returns:
    (phase, frequency): float64 ``[num_samples]`` each; phase in cycles (starting at 0),
    frequency in Hz.
  """
  t = np.arange(num_samples, dtype=np.float64) / sample_rate
  duration = max(num_samples / sample_rate, 1e-9)
  rate = np.log(end_hz / start_hz) / duration     # natural-log units per second
  if abs(rate) < 1e-12:
    return start_hz * t, np.full(num_samples, float(start_hz))
  growth = np.exp(rate * t)
  return start_hz * np.expm1(rate * t) / rate, start_hz * growth


def harmonic_amplitudes(waveform: str, num_harmonics: int) -> np.ndarray:
  """Fourier sine-series amplitudes of a unit-peak waveform, harmonics 1..num_harmonics.

  ``waveform`` is 'sine', 'square', 'saw' (rising ramp) or 'triangle'.
  Returns float64 ``[num_harmonics]``; entry k-1 multiplies ``sin(2 pi k phase)``.
  """
  k = np.arange(1, num_harmonics + 1, dtype=np.float64)
  odd = (k % 2) == 1
  if waveform == 'sine':
    return (k == 1).astype(np.float64)
  if waveform == 'square':
    return np.where(odd, 4.0 / (np.pi * k), 0.0)
  if waveform == 'saw':
    return -2.0 / (np.pi * k)
  if waveform == 'triangle':
    return np.where(odd, 8.0 / (np.pi * k) ** 2 * (-1.0) ** ((k - 1) // 2), 0.0)
  raise ValueError(f'no harmonic series for waveform {waveform!r}')


def nyquist_taper(frequency: np.ndarray, sample_rate: int) -> np.ndarray:
  """Gain (0..1) of a harmonic at ``frequency`` (Hz): 1 below TAPER_START of Nyquist,
  a raised-cosine fade to 0 at TAPER_END of Nyquist, so harmonics leave without clicks."""
  nyquist = sample_rate / 2.0
  x = (np.asarray(frequency) / nyquist - TAPER_START) / (TAPER_END - TAPER_START)
  return 0.5 + 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def additive_rising(phase: np.ndarray, frequency: np.ndarray, sample_rate: int,
                    amplitudes: np.ndarray) -> np.ndarray:
  """Band-limited sum  sum_k a_k g(k f) sin(2 pi k phase)  for a non-decreasing frequency.

  Harmonic k is computed only while it is below TAPER_END of Nyquist (a prefix of the
  signal, since the frequency rises), by the recurrence
  ``sin((k+1)x) = 2 cos(x) sin(kx) - sin((k-1)x)``; the fundamental is never tapered.
  Args:
    phase: ``[samples]`` in cycles; frequency: ``[samples]`` Hz, non-decreasing.
    amplitudes: ``[num_harmonics]`` from :func:`harmonic_amplitudes`.
  Returns:
    float64 ``[samples]``.
  """
  nyquist = sample_rate / 2.0
  angle = 2.0 * np.pi * phase
  twice_cos = 2.0 * np.cos(angle)
  current = np.sin(angle)                   # sin(k x) for k = 1
  previous = np.zeros_like(current)         # sin((k-1) x)
  out = amplitudes[0] * current
  for k in range(2, len(amplitudes) + 1):
    end = int(np.searchsorted(frequency, TAPER_END * nyquist / k))
    if end == 0:
      break
    previous, current = current[:end], twice_cos[:end] * current[:end] - previous[:end]
    if amplitudes[k - 1] != 0.0:
      start = int(np.searchsorted(frequency, TAPER_START * nyquist / k))
      out[:start] += amplitudes[k - 1] * current[:start]
      out[start:end] += (amplitudes[k - 1] * current[start:end]
                         * nyquist_taper(k * frequency[start:end], sample_rate))
  return out


def oscillator(waveform: str, num_samples: int, sample_rate: int, start_hz: float,
               end_hz: float, phase_offset: float = 0.0) -> np.ndarray:
  """A unit-peak, band-limited ``waveform`` sweeping exponentially from start to end Hz.

  A falling sweep is the time reversal of the rising one (same harmonics, same levels).
  ``phase_offset`` is in cycles. Returns float64 ``[num_samples]``.
  """
  rising = end_hz >= start_hz
  low, high = (start_hz, end_hz) if rising else (end_hz, start_hz)
  phase, frequency = exponential_sweep(num_samples, sample_rate, low, high)
  num_harmonics = max(1, int(TAPER_END * sample_rate / 2.0 / low))
  out = additive_rising(phase + phase_offset, frequency, sample_rate,
                        harmonic_amplitudes(waveform, num_harmonics))
  return out if rising else out[::-1].copy()


def detuned_saws(num_samples: int, sample_rate: int, start_hz: float, end_hz: float,
                 phase_offsets, detune_cents=POLYSAW_DETUNE_CENTS) -> np.ndarray:
  """A poly-saw: the mean of saw sweeps detuned by ``detune_cents``, each starting at its
  own phase offset (cycles, one per voice). Peak <= 1 (up to Gibbs overshoot).
  Returns float64 ``[num_samples]``."""
  voices = [oscillator('saw', num_samples, sample_rate, start_hz * 2 ** (c / 1200.0),
                       end_hz * 2 ** (c / 1200.0), offset)
            for c, offset in zip(detune_cents, phase_offsets)]
  return np.mean(voices, axis=0)


# --- Level envelope ------------------------------------------------------------------

def level_plan(duration: float, rng: np.random.Generator, levels_db=LEVELS_DB):
  """Random breakpoints of a level envelope that visits every level, with silences.

  Levels come in shuffled rounds of ``levels_db`` (so each is used equally often).
  Each segment either steps to its level in STEP_SECONDS or glides to it (linearly in
  dB) over the whole segment; some segments are followed by a short silence. A gate
  fades the sound in and out (linearly in amplitude, EDGE_SECONDS) at the start, around
  silences and before the final silence of TAIL_SECONDS (a quarter of ``duration`` if
  that is shorter).
  Returns:
    (level_times, level_db, gate_times, gate): float64 arrays of breakpoints; times in
    seconds (non-decreasing), levels in dBFS, gate in {0, 1}.
  """
  end = duration - min(TAIL_SECONDS, duration / 4.0)
  rounds = int(duration / SEGMENT_SECONDS[0]) // len(levels_db) + 2
  order = [level for _ in range(rounds) for level in rng.permutation(levels_db)]
  level_times, level_db, gate_times, gate = [], [], [0.0], [0.0]
  t, sounding = 0.0, False
  for level in order:
    if t >= end:
      break
    length = rng.uniform(*SEGMENT_SECONDS)
    if not sounding:
      level_times.append(t)
      level_db.append(level)
      gate_times += [t, t + EDGE_SECONDS]
      gate += [0.0, 1.0]
    elif rng.random() >= RAMP_PROBABILITY:
      level_times.append(t + STEP_SECONDS)
      level_db.append(level)
    t += length
    level_times.append(t)
    level_db.append(level)
    sounding = True
    if rng.random() < SILENCE_PROBABILITY:
      level_times.append(t + EDGE_SECONDS)
      level_db.append(level)
      gate_times += [t, t + EDGE_SECONDS]
      gate += [1.0, 0.0]
      t += rng.uniform(*SILENCE_SECONDS)
      sounding = False
  gate_times, gate = np.array(gate_times), np.array(gate)
  keep = gate_times < end - EDGE_SECONDS
  gate_before_end = np.interp(end - EDGE_SECONDS, gate_times, gate)
  gate_times = np.concatenate([gate_times[keep], [end - EDGE_SECONDS, end, duration]])
  gate = np.concatenate([gate[keep], [gate_before_end, 0.0, 0.0]])
  return np.array(level_times), np.array(level_db), gate_times, gate


def level_envelope(num_samples: int, sample_rate: int, rng: np.random.Generator,
                   levels_db=LEVELS_DB) -> np.ndarray:
  """A random level envelope (see :func:`level_plan`).

  Returns:
    linear gain, float64 ``[num_samples]``; exactly 0 in silences.
  """
  level_times, level_db, gate_times, gate = level_plan(num_samples / sample_rate, rng,
                                                       levels_db)
  t = np.arange(num_samples, dtype=np.float64) / sample_rate
  return db_to_gain(np.interp(t, level_times, level_db)) * np.interp(t, gate_times, gate)


# --- Training signals ----------------------------------------------------------------

def sweep_track(waveform: str, num_samples: int, sample_rate: int, start_hz: float,
                end_hz: float, rng: np.random.Generator) -> np.ndarray:
  """One channel: ``waveform`` sweeping from start to end Hz under a random level envelope.

  ``waveform`` is one of :data:`WAVEFORMS`. Returns float32 ``[num_samples]``.
  """
  if waveform == 'polysaw':
    offsets = rng.uniform(0.0, 1.0, len(POLYSAW_DETUNE_CENTS))
    tone = detuned_saws(num_samples, sample_rate, start_hz, end_hz, offsets)
  elif waveform in WAVEFORMS:
    tone = oscillator(waveform, num_samples, sample_rate, start_hz, end_hz,
                      rng.uniform(0.0, 1.0))
  else:
    raise ValueError(f'unknown waveform {waveform!r}; choose from {WAVEFORMS}')
  return (tone * level_envelope(num_samples, sample_rate, rng)).astype(np.float32)


def stereo_sweep(waveform: str, seconds: float = DEFAULT_SECONDS, sample_rate: int = 44100,
                 seed: int = 0) -> np.ndarray:
  """A stereo training signal: left sweeps up, right sweeps down, independent levels.

  The sweep spans LOW_HZ..HIGH_HZ (top limited to MAX_FUNDAMENTAL of Nyquist).
  Returns float32 ``[round(seconds * sample_rate), 2]``.
  """
  num_samples = int(round(seconds * sample_rate))
  high = min(HIGH_HZ, MAX_FUNDAMENTAL * sample_rate / 2.0)
  rng = rng_for(seed, waveform)
  left = sweep_track(waveform, num_samples, sample_rate, LOW_HZ, high, rng)
  right = sweep_track(waveform, num_samples, sample_rate, high, LOW_HZ, rng)
  return np.stack([left, right], axis=1)
