"""The wet side: real effect implementations from Spotify's pedalboard.

A preset is a function returning a fresh ``pedalboard.Pedalboard`` with fixed settings.
Nothing adapts to the audio (no normalisation): the same effect applies identically to
every file, and the fixed output gains keep the outputs of the dry signals of
:mod:`components.datagen.signals` and :mod:`components.datagen.piano` (peaks at most about
-1.5 dBFS)
below full scale. Any VST3 (or, on macOS, Audio Unit) plugin can be used instead with
:func:`load_plugin_effect`.

A preset may also be an :class:`EffectChain`: pedalboard boards with memoryless NumPy
waveshapers between them, for the nonlinearities pedalboard does not offer (an
asymmetric, tube-like curve that makes even harmonics). Cabinet impulse responses are
synthesized here (:func:`cabinet_ir`) and loaded into ``pedalboard.Convolution``.

Audio is float32 ``[samples, channels]`` as elsewhere in fxemu; levels are in dB.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Callable, Sequence, Union

import numpy as np
import pedalboard

#: Sample rate the synthesized cabinet impulse response is made at (Hz); pedalboard
#: resamples it to the audio's rate.
CABINET_SAMPLE_RATE = 44100


@dataclasses.dataclass(frozen=True)
class AsymmetricShaper:
  """Memoryless tube-like curve ``y = tanh(g x + b) - tanh(b)`` (``g`` from ``drive_db``).

  The bias b shifts the operating point, so positive and negative half-waves saturate
  differently (even harmonics, like a single-ended triode stage); subtracting tanh(b)
  keeps silence silent (0 in, 0 out). Works on ``[channels, samples]`` float32.
  """
  drive_db: float
  bias: float

  def __call__(self, audio: np.ndarray) -> np.ndarray:
    gain = 10.0 ** (self.drive_db / 20.0)
    return (np.tanh(gain * audio.astype(np.float64) + self.bias)
            - np.tanh(self.bias)).astype(np.float32)


Stage = Union[pedalboard.Pedalboard, Callable[[np.ndarray], np.ndarray]]


@dataclasses.dataclass
class EffectChain:
  """Stages applied in order: pedalboard boards, and memoryless NumPy functions of
  ``[channels, samples]`` audio (see :class:`AsymmetricShaper`)."""
  stages: Sequence[Stage]


def cabinet_ir(seconds: float = 0.04, sample_rate: int = CABINET_SAMPLE_RATE,
               seed: int = 7) -> np.ndarray:
  """A synthetic guitar-cabinet impulse response, float32 ``[samples]``, unit peak gain.

  A burst of noise decaying with time constant ``seconds / 8``, shaped by pedalboard
  filters into a 4x12-like response: two high-passes at 90 Hz, a low resonance (+6 dB at
  120 Hz), a presence peak (+5 dB at 2.5 kHz) and three low-passes at 5-6 kHz (the cone's
  break-up); the last quarter fades out. Deterministic for a seed.
  """
  n = int(round(seconds * sample_rate))
  rng = np.random.default_rng(seed)
  t = np.arange(n) / sample_rate
  burst = (rng.standard_normal(n) * np.exp(-t / (seconds / 8.0))).astype(np.float32)
  speaker = pedalboard.Pedalboard([
      pedalboard.HighpassFilter(90.0), pedalboard.HighpassFilter(90.0),
      pedalboard.PeakFilter(120.0, 6.0, 1.0), pedalboard.PeakFilter(2500.0, 5.0, 0.8),
      pedalboard.LowpassFilter(5000.0), pedalboard.LowpassFilter(5000.0),
      pedalboard.LowpassFilter(6000.0)])
  ir = speaker.process(burst[None], float(sample_rate))[0].astype(np.float64)
  fade = n // 4
  ir[n - fade:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(fade) / fade)
  return (ir / np.max(np.abs(np.fft.rfft(ir, 8 * n)))).astype(np.float32)


def lowpass() -> pedalboard.Pedalboard:
  """Linear: two first-order low-pass filters at 1 kHz (-6 dB at 1 kHz, -12 dB/octave above)."""
  return pedalboard.Pedalboard([pedalboard.LowpassFilter(cutoff_frequency_hz=1000.0),
                                pedalboard.LowpassFilter(cutoff_frequency_hz=1000.0)])


def overdrive() -> pedalboard.Pedalboard:
  """Nonlinear: high-pass 150 Hz, tanh drive +24 dB, tone low-pass 3.5 kHz, output -6 dB."""
  return pedalboard.Pedalboard([pedalboard.HighpassFilter(cutoff_frequency_hz=150.0),
                                pedalboard.Distortion(drive_db=24.0),
                                pedalboard.LowpassFilter(cutoff_frequency_hz=3500.0),
                                pedalboard.Gain(gain_db=-6.0)])


def compressor() -> pedalboard.Pedalboard:
  """Dynamics: compressor threshold -30 dBFS, ratio 4:1, attack 5 ms, release 100 ms,
  make-up gain +10 dB."""
  return pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-30.0, ratio=4.0,
                                                      attack_ms=5.0, release_ms=100.0),
                                pedalboard.Gain(gain_db=10.0)])


def fuzz() -> pedalboard.Pedalboard:
  """Nonlinear: high-pass 100 Hz, +30 dB into a hard clipper at -12 dBFS, tone low-pass
  5 kHz, output -2 dB (square-wave-like fuzz, odd harmonics up to the clip edge)."""
  return pedalboard.Pedalboard([pedalboard.HighpassFilter(cutoff_frequency_hz=100.0),
                                pedalboard.Gain(gain_db=30.0),
                                pedalboard.Clipping(threshold_db=-12.0),
                                pedalboard.LowpassFilter(cutoff_frequency_hz=5000.0),
                                pedalboard.Gain(gain_db=-2.0)])


def tube_cab() -> EffectChain:
  """Nonlinear with a long linear tail: high-pass 80 Hz, asymmetric tanh drive +18 dB
  (bias 0.4: even harmonics), tone: peak +4 dB at 800 Hz and high shelf -6 dB at 3 kHz,
  then a synthetic 40 ms 4x12-like cabinet impulse response (pedalboard.Convolution),
  output -3 dB."""
  return EffectChain([
      pedalboard.Pedalboard([pedalboard.HighpassFilter(cutoff_frequency_hz=80.0)]),
      AsymmetricShaper(drive_db=18.0, bias=0.4),
      pedalboard.Pedalboard([
          pedalboard.PeakFilter(cutoff_frequency_hz=800.0, gain_db=4.0, q=0.7),
          pedalboard.HighShelfFilter(cutoff_frequency_hz=3000.0, gain_db=-6.0),
          pedalboard.Convolution(cabinet_ir(), sample_rate=CABINET_SAMPLE_RATE),
          pedalboard.Gain(gain_db=-3.0)])])


def comp_drive() -> pedalboard.Pedalboard:
  """Dynamics into distortion: compressor threshold -24 dBFS, ratio 6:1, attack 3 ms,
  release 150 ms, make-up +12 dB, then tanh drive +12 dB, tone low-pass 4 kHz, output
  -8 dB (the drive's grit depends on the compressor's slowly moving gain)."""
  return pedalboard.Pedalboard([pedalboard.Compressor(threshold_db=-24.0, ratio=6.0,
                                                      attack_ms=3.0, release_ms=150.0),
                                pedalboard.Gain(gain_db=12.0),
                                pedalboard.Distortion(drive_db=12.0),
                                pedalboard.LowpassFilter(cutoff_frequency_hz=4000.0),
                                pedalboard.Gain(gain_db=-8.0)])


#: Preset name -> function returning a fresh board or chain.
PRESETS = {'lowpass': lowpass, 'overdrive': overdrive, 'compressor': compressor,
           'fuzz': fuzz, 'tube_cab': tube_cab, 'comp_drive': comp_drive}


class PluginLoadError(ValueError):
  """An effect plugin that cannot be used; the message names the file and the problem."""


def describe_presets() -> str:
  """One line per preset ('name: settings'), for command-line help."""
  return '\n'.join(f'{name}: {" ".join(fn.__doc__.split())}' for name, fn in PRESETS.items())


def preset(name: str) -> pedalboard.Pedalboard:
  """A fresh board for the preset ``name``; ValueError naming the choices if unknown."""
  if name not in PRESETS:
    raise ValueError(f'unknown effect preset {name!r}; choose from {", ".join(PRESETS)}')
  return PRESETS[name]()


def plugin_effect_name(path: str) -> str:
  """Name of a plugin's effect: the file stem, lower-cased, runs of anything other than
  letters, digits, '_' and '-' replaced by one '_' (so never the ' - ' separator of
  data set file names). E.g. '/x/My Fuzz (x64).vst3' -> 'my_fuzz_x64'."""
  stem = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
  name = re.sub(r'[^a-z0-9_-]+', '_', stem.lower()).strip('_-')
  return name or 'plugin'


def load_plugin_effect(path: str, parameters: dict | None = None) -> pedalboard.Pedalboard:
  """A board holding the VST3/AU plugin at ``path`` with ``parameters`` set.

  Args:
    path: a .vst3 file or bundle (or .component on macOS).
    parameters: plugin parameter name (as in the plugin's ``.parameters``) -> value.
  Raises:
    PluginLoadError: the path does not exist, the plugin cannot be loaded, it is an
      instrument rather than an effect, or a parameter is unknown or rejects its value.
  """
  if not os.path.exists(path):
    raise PluginLoadError(f'{path}: no such plugin file or bundle')
  try:
    plugin = pedalboard.load_plugin(path)
  except Exception as e:  # pylint: disable=broad-except
    raise PluginLoadError(f'{path}: cannot be loaded as a VST3/AU plugin '
                          f'({" ".join(str(e).split())})') from e
  if not plugin.is_effect:
    raise PluginLoadError(f'{path}: is an instrument, not an audio effect')
  for name, value in (parameters or {}).items():
    if name not in plugin.parameters:
      raise PluginLoadError(f'{path}: no parameter {name!r}; it has: '
                            f'{", ".join(sorted(plugin.parameters))}')
    try:
      setattr(plugin, name, value)
    except Exception as e:  # pylint: disable=broad-except
      raise PluginLoadError(f'{path}: parameter {name!r} rejects {value!r} ({e}); '
                            f'{plugin.parameters[name]}') from e
  return pedalboard.Pedalboard([plugin])


def apply_effect(board: Union[pedalboard.Pedalboard, EffectChain], audio: np.ndarray,
                 sample_rate: int) -> np.ndarray:
  """Processes ``audio`` float ``[samples, channels]`` from a freshly reset state.

  Output that a plugin holds back (latency) is flushed with silence, so the result is
  as long as the input. Returns float32 ``[samples, channels]``.
  Raises:
    ValueError: the effect produced NaN or infinite samples.
  """
  wet = np.ascontiguousarray(np.asarray(audio, np.float32).T)   # [channels, samples]
  for stage in (board.stages if isinstance(board, EffectChain) else [board]):
    if isinstance(stage, pedalboard.Pedalboard):
      wet = _process_board(stage, wet, sample_rate)
    else:
      wet = stage(wet)
  if not np.all(np.isfinite(wet)):
    raise ValueError('the effect produced NaN or infinite samples')
  return np.ascontiguousarray(wet.T, np.float32)


def _process_board(board: pedalboard.Pedalboard, dry: np.ndarray,
                   sample_rate: int) -> np.ndarray:
  """``[channels, samples]`` through ``board`` from a reset state, latency flushed."""
  wet = board.process(dry, float(sample_rate), reset=True)
  missing = dry.shape[1] - wet.shape[1]
  if missing > 0:
    silence = np.zeros([dry.shape[0], max(missing, 4096)], np.float32)  # unambiguous layout
    flushed = board.process(silence, float(sample_rate), reset=False)
    wet = np.concatenate([wet, flushed], axis=1)[:, :dry.shape[1]]
  return wet
