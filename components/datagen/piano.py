"""A piano test set: musical phrases composed from a seed, rendered with a sampled piano.

The phrases are built with pretty_midi (chords, arpeggios, scale runs, a melody over an
Alberti bass, pianissimo and fortissimo bars, and a final chord that decays into
silence) and rendered by FluidSynth through pyfluidsynth with the General MIDI
soundfont bundled with pretty_midi (program 0, acoustic grand). Each hand is rendered
on its own and panned to a different side, so left and right channels differ.

Times are in seconds, velocities are MIDI (1..127), audio is float32 ``[samples, 2]``.
Everything is deterministic given the seed.
"""
from __future__ import annotations

import os

import numpy as np

from components.datagen import signals

NAME = 'piano'
#: Default length of the piano test set (seconds).
DEFAULT_SECONDS = 20.0
PROGRAM = 0                      # General MIDI acoustic grand piano
SOUNDFONT = 'TimGM6mb.sf2'       # bundled with pretty_midi
PEAK_DB = -3.0                   # peak level of the rendered stereo piano (dBFS)
PANS = {'right hand': 0.5, 'left hand': -0.5}   # -1 = hard left, +1 = hard right
RELEASE_SECONDS = 1.5            # time left after the last note-off for the decay
FADE_SECONDS = 0.01              # fade-out at the very end

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
#: Chord progressions as scale degrees (0 = tonic).
PROGRESSIONS = ((0, 5, 3, 4), (0, 3, 4, 0), (1, 4, 0, 5), (0, 4, 5, 3))
#: Dynamics as MIDI velocities.
PIANISSIMO, PIANO, MEZZO_FORTE, FORTE, FORTISSIMO = 30, 50, 75, 100, 118


class FluidSynthMissingError(RuntimeError):
  """FluidSynth (the C library or its Python binding) is not available."""


def require_fluidsynth():
  """Imports pyfluidsynth, or raises :class:`FluidSynthMissingError` saying how to fix it."""
  try:
    import fluidsynth  # optional: FluidSynth only for the piano
  except (ImportError, OSError) as e:
    raise FluidSynthMissingError(
        f'cannot render the piano test set: FluidSynth is not available ({e}); '
        'install libfluidsynth3 (apt-get install libfluidsynth3) or run scripts/setup.sh'
    ) from e
  return fluidsynth


def soundfont_path() -> str:
  """Path of the General MIDI soundfont shipped inside the pretty_midi package."""
  import pretty_midi  # pylint: disable=import-outside-toplevel  (start-up: pretty_midi)
  path = os.path.join(os.path.dirname(pretty_midi.__file__), SOUNDFONT)
  if not os.path.exists(path):
    raise FileNotFoundError(f'the soundfont {SOUNDFONT} is missing from the pretty_midi '
                            f'package ({path}); reinstall pretty_midi')
  return path


# --- Composition ---------------------------------------------------------------------

class Score:
  """Notes of the two hands being composed, with the key they are in.

  Attributes:
    tonic: MIDI pitch of the tonic in the left hand's octave.
    scale: semitone offsets of the scale degrees.
    beat: length of a beat (seconds).
    rng: the composition's random generator (timing and velocity jitter).
    notes: hand name -> list of (pitch, start, end, velocity).
    pedal: list of (start, end) of sustain-pedal presses.
  """

  def __init__(self, tonic: int, scale, beat: float, rng: np.random.Generator):
    self.tonic, self.scale, self.beat, self.rng = tonic, tuple(scale), beat, rng
    self.notes = {hand: [] for hand in PANS}
    self.pedal = []

  def pitch(self, degree: int, octave: int = 0) -> int:
    """MIDI pitch of a scale degree (any integer; 7 = the tonic an octave up)."""
    return self.tonic + 12 * (octave + degree // 7) + self.scale[degree % 7]

  def triad(self, root: int, octave: int = 0, inversion: int = 0) -> list:
    """Pitches of the triad on scale degree ``root``, optionally inverted."""
    degrees = [root + 2 * i for i in range(3)]
    degrees = degrees[inversion:] + [d + 7 for d in degrees[:inversion]]
    return [self.pitch(d, octave) for d in degrees]

  def play(self, hand: str, pitch: int, start: float, beats: float, velocity: float,
           legato: float = 0.95) -> None:
    """Adds a note starting at ``start`` seconds lasting ``beats`` beats (times legato),
    with a little timing and velocity jitter."""
    start = max(0.0, start + self.rng.normal(0.0, 0.006))
    end = start + max(0.05, beats * self.beat * legato)
    velocity = int(np.clip(round(velocity + self.rng.normal(0.0, 4.0)), 1, 127))
    self.notes[hand].append((int(pitch), start, end, velocity))


def block_chords(score: Score, root: int, t: float, velocity: float) -> None:
  """Two sustained chords (pedalled): bass octave in the left hand, triads in the right."""
  for half, inversion in ((0, 0), (1, 1)):
    start = t + 2 * half * score.beat
    for p in (score.pitch(root, -1), score.pitch(root)):
      score.play('left hand', p, start, 2, velocity * 0.9)
    for p in score.triad(root, 1, inversion):
      score.play('right hand', p, start, 2, velocity)
  score.pedal.append((t + 0.02, t + 4 * score.beat - 0.05))


def arpeggio(score: Score, root: int, t: float, velocity: float) -> None:
  """Left hand broken chord in eighths, up two octaves and back; right hand holds a note."""
  low = score.triad(root, -1)
  rising = low + [p + 12 for p in low] + [low[0] + 24]
  line = rising + rising[-2:0:-1]
  for i, p in enumerate(line[:8]):
    score.play('left hand', p, t + 0.5 * i * score.beat, 0.5, velocity * (0.8 + 0.05 * i))
  score.play('right hand', score.pitch(root + 4, 1), t, 4, velocity * 0.7)


def scale_run(score: Score, root: int, t: float, velocity: float) -> None:
  """Right hand sixteenths up the scale and back; left hand holds the root."""
  degrees = list(range(root, root + 8)) + list(range(root + 8, root, -1))
  for i, d in enumerate(degrees):
    swell = 1.0 + 0.25 * np.sin(np.pi * i / len(degrees))
    score.play('right hand', score.pitch(d, 1), t + 0.25 * i * score.beat, 0.25,
               velocity * swell, legato=0.9)
  score.play('left hand', score.pitch(root, -1), t, 4, velocity * 0.8)


def melody(score: Score, root: int, t: float, velocity: float) -> None:
  """A right-hand melody around the chord over an Alberti bass (root-fifth-third-fifth)."""
  bass = score.triad(root, -1)
  for i in range(8):
    p = bass[(0, 2, 1, 2)[i % 4]]
    score.play('left hand', p, t + 0.5 * i * score.beat, 0.5, velocity * 0.6)
  degree, beat = root + 7, 0.0
  while beat < 4.0:
    length = min(float(score.rng.choice([0.5, 1.0, 1.5])), 4.0 - beat)
    degree += int(score.rng.choice([-2, -1, 1, 2]))
    crescendo = 0.85 + 0.3 * beat / 4.0
    score.play('right hand', score.pitch(degree, 1), t + beat * score.beat, length,
               velocity * crescendo, legato=1.0)
    beat += length


def quiet_chords(score: Score, root: int, t: float, velocity: float) -> None:
  """A pianissimo chord held for the whole bar (decaying), whatever ``velocity`` says."""
  del velocity
  for p in score.triad(root, -1):
    score.play('left hand', p, t, 4, PIANISSIMO)
  for p in score.triad(root, 1, 2):
    score.play('right hand', p, t, 4, PIANISSIMO + 5)


def loud_stabs(score: Score, root: int, t: float, velocity: float) -> None:
  """Fortissimo staccato chords with rests in between, so each decays."""
  del velocity
  for beat in (0.0, 1.5, 3.0):
    for p in (score.pitch(root, -2), score.pitch(root, -1)):
      score.play('left hand', p, t + beat * score.beat, 0.3, FORTISSIMO)
    for p in score.triad(root, 1, 1):
      score.play('right hand', p, t + beat * score.beat, 0.3, FORTISSIMO)


#: One-bar patterns: (score, chord root degree, start seconds, velocity) -> None.
PATTERNS = (block_chords, arpeggio, scale_run, melody, quiet_chords, loud_stabs)


def final_chord(score: Score, t: float, end: float) -> None:
  """The tonic chord from ``t`` until ``end`` seconds, then left to decay."""
  for hand, pitches in (('left hand', [score.pitch(0, -1), score.pitch(0)]),
                        ('right hand', score.triad(0, 1))):
    for p in pitches:
      score.play(hand, p, t, max(end - t, 0.05) / score.beat, MEZZO_FORTE, legato=1.0)


def compose(seconds: float = DEFAULT_SECONDS, seed: int = 0):
  """Composes about ``seconds`` of piano music in a random key, tempo and pattern order.

  One-bar patterns (see :data:`PATTERNS`, each used once before any repeats) follow a
  chord progression; a final tonic chord ends RELEASE_SECONDS (at most a third of the
  piece) before ``seconds`` so that it decays.
  Returns:
    a ``pretty_midi.PrettyMIDI`` with one program-0 instrument per hand (named after
    the keys of :data:`PANS`).
  """
  import pretty_midi  # pylint: disable=import-outside-toplevel  (start-up: pretty_midi)
  rng = signals.rng_for(seed, NAME)
  scale = MAJOR if rng.random() < 0.6 else HARMONIC_MINOR
  score = Score(int(rng.integers(48, 55)), scale, 60.0 / rng.uniform(88.0, 116.0), rng)
  progression = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
  release = min(RELEASE_SECONDS, seconds / 3.0)
  ending = min(3.0, max(0.25 * seconds, release))   # final chord + its decay
  bar = 4 * score.beat
  order = [pattern for _ in range(int(seconds / bar) // len(PATTERNS) + 1)
           for pattern in rng.permutation(len(PATTERNS))]
  t = 0.05
  for i, pattern in enumerate(order):
    if t + bar > seconds - ending:
      break
    velocity = float(rng.choice([PIANO, MEZZO_FORTE, FORTE]))
    PATTERNS[pattern](score, progression[i % len(progression)], t, velocity)
    t += bar
  final_chord(score, t, seconds - release)

  midi = pretty_midi.PrettyMIDI(initial_tempo=60.0 / score.beat)
  for hand, notes in score.notes.items():
    instrument = pretty_midi.Instrument(program=PROGRAM, name=hand)
    instrument.notes = [pretty_midi.Note(velocity=v, pitch=p, start=s, end=e)
                        for p, s, e, v in sorted(notes, key=lambda n: (n[1], n[0]))]
    for start, end in score.pedal:
      instrument.control_changes += [pretty_midi.ControlChange(64, 127, start),
                                     pretty_midi.ControlChange(64, 0, end)]
    midi.instruments.append(instrument)
  return midi


# --- Rendering -----------------------------------------------------------------------

def pan_gains(pan: float):
  """Constant-power (left, right) gains of a pan position in [-1, 1]."""
  angle = (pan + 1.0) * np.pi / 4.0
  return np.cos(angle), np.sin(angle)


def render(midi, num_samples: int, sample_rate: int = 44100) -> np.ndarray:
  """Renders each instrument with FluidSynth, pans it by :data:`PANS` and mixes to stereo.

  Each hand gets a fresh synthesizer (no state shared between renders). The mix is
  scaled to a peak of PEAK_DB, cut or padded to ``num_samples`` and faded out over the
  last FADE_SECONDS.
  Returns:
    float32 ``[num_samples, 2]``.
  """
  require_fluidsynth()
  sf2 = soundfont_path()
  mix = np.zeros([num_samples, 2], np.float64)
  for instrument in midi.instruments:
    if not instrument.notes:
      continue
    mono = np.asarray(instrument.fluidsynth(fs=sample_rate, synthesizer=sf2), np.float64)
    mono = mono[:num_samples]
    mix[:len(mono)] += mono[:, None] * np.array(pan_gains(PANS.get(instrument.name, 0.0)))
  peak = np.max(np.abs(mix))
  if peak > 0:
    mix *= signals.db_to_gain(PEAK_DB) / peak
  fade = min(num_samples, int(FADE_SECONDS * sample_rate))
  mix[num_samples - fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
  return mix.astype(np.float32)


def stereo_piano(seconds: float = DEFAULT_SECONDS, sample_rate: int = 44100,
                 seed: int = 0) -> np.ndarray:
  """The piano test set: :func:`compose` then :func:`render`.

  Returns float32 ``[round(seconds * sample_rate), 2]``.
  Raises:
    FluidSynthMissingError: libfluidsynth or pyfluidsynth is not installed.
  """
  require_fluidsynth()
  return render(compose(seconds, seed), int(round(seconds * sample_rate)), sample_rate)
