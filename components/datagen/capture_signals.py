"""The rich capture signal: what a user plays through an effect so a model can learn it.

The classic set (:mod:`components.datagen.signals`) is five band-limited sweeps between -30 and
-3 dBFS. Music played through an effect afterwards is quieter and more varied (the piano
test piece sits between about -40 and -3 dBFS, with decays into silence), so a model
trained on the sweeps alone must extrapolate in level and in kind. The rich set spends
the same length of capture on material that covers more:

* ``bursts``: noise bursts (white, pink and band-passed) and short exponential sine
  sweeps, at levels drawn evenly in dB from -63 to -3 dBFS, with silences between;
* ``plucks``: decaying plucked and struck tones from the General MIDI soundfont
  (guitars, bass, harp, pizzicato strings, mallets; never the piano, which is the test
  material), random notes and velocities 15-127;
* ``ramps``: a saw chord, noise and a sine under slow level ramps in dB between -63 and
  -3 dBFS and abrupt steps of 20-40 dB, for compressors' static curve, attack and release;
* ``polysaw``: one classic sweep (detuned saws, -30 to -3 dBFS);
* ``repeat``: a segment of the other signals, played twice in a row. The two wet halves
  of a clean capture are identical, so their difference is the capture's own noise and
  drift, the floor no model can beat (``fxemu check`` reports it).

Each signal is stereo ``[samples, 2]`` float32 with independent left and right material,
peaks at most -3 dBFS (as the classic sweeps and the piano do), and is deterministic for
a seed. Levels are in dBFS of the peak (a full-scale sine is 0 dBFS), times in seconds.
"""
from __future__ import annotations

import numpy as np

from components.audio import capture_check
from components.datagen import piano
from components.datagen import signals

NAMES = ('bursts', 'plucks', 'ramps', 'polysaw', 'repeat')
LEVEL_RANGE_DB = (-60.0, 0.0)
PEAK_DB = -3.0
#: General MIDI programs of the plucks (0-based): nylon, steel and clean electric guitar,
#: acoustic and finger bass, harp, pizzicato strings, marimba, vibraphone, kalimba.
PLUCK_PROGRAMS = (24, 25, 27, 32, 33, 46, 45, 12, 11, 108)
EDGE_SECONDS = 0.003


def _fade(length: int, sample_rate: int) -> np.ndarray:
  """A gate of ``length`` samples with EDGE_SECONDS linear fades at both ends."""
  edge = max(1, min(length // 2, int(EDGE_SECONDS * sample_rate)))
  gate = np.ones(length)
  gate[:edge] = np.linspace(0.0, 1.0, edge)
  gate[length - edge:] = np.linspace(1.0, 0.0, edge)
  return gate


def _pink(num_samples: int, rng: np.random.Generator) -> np.ndarray:
  """Pink (1/f) noise, unit RMS, by shaping white noise in the frequency domain."""
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
  spectrum[0] = 0.0
  out = np.fft.irfft(spectrum, num_samples)
  return out / max(np.sqrt(np.mean(out ** 2)), 1e-12)


def _bandpassed(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
  """White noise band-passed to one octave around a random centre (60 Hz .. 12 kHz)."""
  centre = np.exp(rng.uniform(np.log(60.0), np.log(12000.0)))
  spectrum = np.fft.rfft(rng.standard_normal(num_samples))
  freqs = np.fft.rfftfreq(num_samples, 1.0 / sample_rate)
  spectrum *= (freqs > centre / np.sqrt(2)) & (freqs < centre * np.sqrt(2))
  out = np.fft.irfft(spectrum, num_samples)
  return out / max(np.sqrt(np.mean(out ** 2)), 1e-12)


def _sine_sweep(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
  low, high = 30.0, min(16000.0, 0.8 * sample_rate / 2)
  start, end = (low, high) if rng.random() < 0.5 else (high, low)
  phase, _ = signals.exponential_sweep(num_samples, sample_rate, start, end)
  return np.sin(2 * np.pi * phase) * np.sqrt(2.0)    # unit RMS like the noises


def burst_track(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
  """One channel of ``bursts``: float64 ``[num_samples]``, peak at most 1."""
  out = np.zeros(num_samples)
  t = int(0.02 * sample_rate)
  kinds = {'white': lambda n: rng.standard_normal(n),
           'pink': lambda n: _pink(n, rng),
           'band': lambda n: _bandpassed(n, sample_rate, rng),
           'sweep': lambda n: _sine_sweep(n, sample_rate, rng)}
  names = sorted(kinds)
  while t < num_samples:
    length = min(num_samples - t, int(rng.uniform(0.15, 0.6) * sample_rate))
    if length < 64:
      break
    source = kinds[names[int(rng.integers(len(names)))]](length)
    level = rng.uniform(*LEVEL_RANGE_DB)
    source = source / max(np.max(np.abs(source)), 1e-12) * signals.db_to_gain(level)
    out[t:t + length] = source * _fade(length, sample_rate)
    t += length + int(rng.uniform(0.02, 0.25) * sample_rate)
  return out


def ramp_track(num_samples: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
  """One channel of ``ramps``: float64 ``[num_samples]``, peak at most 1."""
  seconds = num_samples / sample_rate
  times, levels = [0.0], [rng.uniform(*LEVEL_RANGE_DB)]
  while times[-1] < seconds:
    if rng.random() < 0.4:                         # an abrupt step of 20-40 dB
      step = rng.uniform(20.0, 40.0) * rng.choice([-1.0, 1.0])
      level = float(np.clip(levels[-1] + step, *LEVEL_RANGE_DB))
      times += [times[-1] + 0.002]
      levels += [level]
      hold = rng.uniform(0.2, 0.6)
      times += [times[-1] + hold]
      levels += [level]
    else:                                          # a slow ramp to a new level
      times += [times[-1] + rng.uniform(0.5, 2.0)]
      levels += [rng.uniform(*LEVEL_RANGE_DB)]
  t = np.arange(num_samples) / sample_rate
  envelope = signals.db_to_gain(np.interp(t, times, levels))
  # Carrier: a saw chord sweeping slowly, then noise, then a sine, in thirds of the track.
  third = num_samples // 3
  carrier = np.zeros(num_samples)
  chord = sum(signals.oscillator('saw', third, sample_rate, f, f * 1.5)
              for f in (110.0, 138.6, 164.8)) / 3.0
  carrier[:third] = chord / max(np.max(np.abs(chord)), 1e-12)
  noise = _pink(num_samples - 2 * third, rng)
  carrier[third:num_samples - third] = noise / max(np.max(np.abs(noise)), 1e-12)
  phase, _ = signals.exponential_sweep(third, sample_rate, 80.0, 2000.0)
  carrier[num_samples - third:] = np.sin(2 * np.pi * phase)
  return carrier * envelope * _fade(num_samples, sample_rate)


def plucks(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
  """``plucks``: random notes on :data:`PLUCK_PROGRAMS`, rendered by FluidSynth.

  Returns float64 ``[samples, 2]``; the mix peaks at :data:`PEAK_DB`.
  Raises:
    piano.FluidSynthMissingError: FluidSynth is not installed.
  """
  import pretty_midi  # pylint: disable=import-outside-toplevel  (start-up: pretty_midi)
  piano.require_fluidsynth()
  rng = signals.rng_for(seed, 'plucks')
  num_samples = int(round(seconds * sample_rate))
  mix = np.zeros([num_samples, 2])
  for channel in range(2):
    midi = pretty_midi.PrettyMIDI()
    instruments = {}
    t = 0.05
    while t < seconds - 0.8:
      program = int(rng.choice(PLUCK_PROGRAMS))
      low, high = (28, 52) if program in (32, 33) else (45, 88)
      pitches = [int(rng.integers(low, high))]
      if rng.random() < 0.3:                       # sometimes a dyad or triad
        pitches += [pitches[0] + int(i) for i in rng.choice([3, 4, 5, 7, 12], 2, replace=False)]
      length = rng.uniform(0.1, 1.2)
      velocity = int(rng.integers(15, 128))
      instrument = instruments.setdefault(program, pretty_midi.Instrument(program=program))
      for pitch in pitches:
        instrument.notes.append(pretty_midi.Note(velocity=velocity, pitch=pitch, start=t,
                                                 end=t + length))
      t += length + rng.uniform(0.0, 0.6)
    midi.instruments = list(instruments.values())
    rendered = np.asarray(midi.fluidsynth(fs=sample_rate, sf2_path=piano.soundfont_path()),
                          np.float64)[:num_samples]
    mix[:len(rendered), channel] = rendered
  peak = np.max(np.abs(mix))
  if peak > 0:
    mix *= signals.db_to_gain(PEAK_DB) / peak
  return mix * _fade(num_samples, sample_rate)[:, None]


def _stereo(track_fn, seconds: float, sample_rate: int, seed: int, name: str) -> np.ndarray:
  rng = signals.rng_for(seed, name)
  num_samples = int(round(seconds * sample_rate))
  out = np.stack([track_fn(num_samples, sample_rate, rng) for _ in range(2)], axis=1)
  return out * signals.db_to_gain(PEAK_DB)


def repeat(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
  """``repeat``: ``seconds / 2`` of the other signals' material, played twice in a row
  (the second half is an exact copy of the first). Returns float64 ``[samples, 2]``."""
  num_samples = int(round(seconds * sample_rate))
  half = num_samples // 2
  part = half // 3
  pieces = [_stereo(burst_track, part / sample_rate, sample_rate, seed + 1, 'repeat-bursts'),
            plucks(part / sample_rate, sample_rate, seed + 1),
            _stereo(ramp_track, (half - 2 * part) / sample_rate, sample_rate, seed + 1,
                    'repeat-ramps')]
  segment = np.concatenate(pieces, axis=0)[:half]
  out = np.zeros([num_samples, 2])
  out[:half] = segment
  out[half:2 * half] = segment
  return out


repeat_halves = capture_check.repeat_halves  # the layout is the capture check's


def capture_signal(name: str, seconds: float = signals.DEFAULT_SECONDS,
                   sample_rate: int = 44100, seed: int = 0) -> np.ndarray:
  """The rich-set signal ``name`` (one of :data:`NAMES`), float32 ``[samples, 2]``."""
  if name == 'bursts':
    out = _stereo(burst_track, seconds, sample_rate, seed, name)
  elif name == 'ramps':
    out = _stereo(ramp_track, seconds, sample_rate, seed, name)
  elif name == 'plucks':
    out = plucks(seconds, sample_rate, seed)
  elif name == 'polysaw':
    out = signals.stereo_sweep('polysaw', seconds, sample_rate, seed)
  elif name == 'repeat':
    out = repeat(seconds, sample_rate, seed)
  else:
    raise ValueError(f'unknown capture signal {name!r}; choose from {NAMES}')
  return np.asarray(out, np.float32)
