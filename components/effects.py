"""The wet side: real effect implementations from Spotify's pedalboard.

A preset is a function returning a fresh ``pedalboard.Pedalboard`` with fixed settings.
Nothing adapts to the audio (no normalisation): the same effect applies identically to
every file, and the fixed output gains keep the outputs of the dry signals of
:mod:`components.signals` and :mod:`components.piano` (peaks at most about -1.5 dBFS)
below full scale. Any VST3 (or, on macOS, Audio Unit) plugin can be used instead with
:func:`load_plugin_effect`.

Audio is float32 ``[samples, channels]`` as elsewhere in fxemu; levels are in dB.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pedalboard


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


#: Preset name -> function returning a fresh board.
PRESETS = {'lowpass': lowpass, 'overdrive': overdrive, 'compressor': compressor}


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


def apply_effect(board: pedalboard.Pedalboard, audio: np.ndarray,
                 sample_rate: int) -> np.ndarray:
  """Processes ``audio`` float ``[samples, channels]`` from a freshly reset state.

  Output that a plugin holds back (latency) is flushed with silence, so the result is
  as long as the input. Returns float32 ``[samples, channels]``.
  Raises:
    ValueError: the effect produced NaN or infinite samples.
  """
  dry = np.ascontiguousarray(np.asarray(audio, np.float32).T)   # [channels, samples]
  wet = board.process(dry, float(sample_rate), reset=True)
  missing = dry.shape[1] - wet.shape[1]
  if missing > 0:
    silence = np.zeros([dry.shape[0], max(missing, 4096)], np.float32)  # unambiguous layout
    flushed = board.process(silence, float(sample_rate), reset=False)
    wet = np.concatenate([wet, flushed], axis=1)[:, :dry.shape[1]]
  if not np.all(np.isfinite(wet)):
    raise ValueError('the effect produced NaN or infinite samples')
  return np.ascontiguousarray(wet.T, np.float32)
