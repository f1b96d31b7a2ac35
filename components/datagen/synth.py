"""The default data set (``fxemu synth``): dry signals through real effects, as WAV pairs.

For every effect E and every dry signal NAME it writes ``E - pre - NAME.wav`` (dry) and
``E - post - NAME.wav`` (wet): 16-bit PCM stereo, the same naming as recordings of a
real effect, so users' own recordings drop in the same way. The dry signals are a
signal set (:data:`SIGNAL_SETS`: the rich capture signal of
:mod:`components.datagen.capture_signals`, or the classic sweeps of
:mod:`components.datagen.signals`) and the piano of :mod:`components.datagen.piano` (the test material); the effects are the
presets of :mod:`components.datagen.effects` or a plugin file.
"""
from __future__ import annotations

import filecmp
import logging
import os

import numpy as np
import tqdm

from components.audio import wav
from components.datagen import capture_signals
from components.datagen import effects
from components.datagen import piano
from components.datagen import signals

#: Signal set name -> names of its dry training signals (each ``seconds_per_signal`` long).
SIGNAL_SETS = {'rich': capture_signals.NAMES, 'classic': signals.WAVEFORMS}
DEFAULT_SIGNAL_SET = 'rich'
PIANO_NAME = piano.NAME
DEFAULT_EFFECTS = tuple(effects.PRESETS)
DEFAULT_SIGNAL_SECONDS = signals.DEFAULT_SECONDS
DEFAULT_PIANO_SECONDS = piano.DEFAULT_SECONDS
DEFAULT_SAMPLE_RATE = 44100
SEPARATOR = ' - '
PRE, POST = 'pre', 'post'


def list_names(signal_set: str = DEFAULT_SIGNAL_SET) -> tuple:
  """Names of the dry signals of ``signal_set`` and the piano, in the order they are made."""
  if signal_set not in SIGNAL_SETS:
    raise ValueError(f'unknown signal set {signal_set!r}; choose from {", ".join(SIGNAL_SETS)}')
  return SIGNAL_SETS[signal_set] + (PIANO_NAME,)


def file_name(effect: str, side: str, name: str) -> str:
  """'E - pre - NAME.wav' or 'E - post - NAME.wav'."""
  return f'{effect}{SEPARATOR}{side}{SEPARATOR}{name}.wav'


def dry_signal(name: str, seconds_per_signal: float, piano_seconds: float,
               sample_rate: int, seed: int) -> np.ndarray:
  """The dry signal ``name`` (of any set, or the piano) as float32 ``[samples, 2]``."""
  if name == PIANO_NAME:
    return piano.stereo_piano(piano_seconds, sample_rate, seed)
  if name in signals.WAVEFORMS:
    return signals.stereo_sweep(name, seconds_per_signal, sample_rate, seed)
  return capture_signals.capture_signal(name, seconds_per_signal, sample_rate, seed)


def resolve_effects(preset_names, plugin: str | None, plugin_parameters: dict | None) -> dict:
  """Effect name -> board for the presets ``preset_names`` plus the plugin, if any.

  Raises:
    ValueError: an unknown preset, or a plugin whose name clashes with a preset.
    effects.PluginLoadError: the plugin cannot be loaded or configured.
  """
  if isinstance(preset_names, str):
    preset_names = (preset_names,)
  boards = {name: effects.preset(name) for name in dict.fromkeys(preset_names)}
  if plugin is not None:
    name = effects.plugin_effect_name(plugin)
    if name in boards:
      raise ValueError(f'the plugin {plugin} would be named {name!r}, like an effect '
                       'already chosen; rename the plugin file or leave that preset out')
    boards[name] = effects.load_plugin_effect(plugin, plugin_parameters)
  if not boards:
    raise ValueError('no effect chosen: give at least one preset or a plugin')
  return boards


def write_if_changed(path: str, audio: np.ndarray, sample_rate: int) -> bool:
  """Writes 16-bit PCM ``audio`` to ``path`` unless it already holds exactly those bytes.

  An unchanged file keeps its modification time (so downstream caches stay valid).
  Returns True if the file was (re)written.
  """
  if not os.path.exists(path):
    wav.write_wav(path, audio, sample_rate)
    return True
  directory, base = os.path.split(os.path.abspath(path))
  candidate = os.path.join(directory, f'.{base}.partial')
  try:
    wav.write_wav(candidate, audio, sample_rate)
    if filecmp.cmp(candidate, path, shallow=False):
      return False
    os.replace(candidate, path)
    return True
  finally:
    if os.path.exists(candidate):
      os.unlink(candidate)


def write_pair(out_dir: str, effect: str, board, name: str, dry: np.ndarray,
               sample_rate: int) -> list:
  """Writes ``dry`` and its wet version through ``board`` as the pair (effect, name).

  Returns [pre path, post path]. Logs a warning if the wet signal would clip.
  """
  wet = effects.apply_effect(board, dry, sample_rate)
  peak = float(np.max(np.abs(wet)))
  if peak > 1.0:
    logging.warning('%s peaks at %+.1f dBFS: the 16-bit file clips it',
                    file_name(effect, POST, name), 20 * np.log10(peak))
  paths = []
  for side, audio in ((PRE, dry), (POST, wet)):
    paths.append(os.path.join(out_dir, file_name(effect, side, name)))
    write_if_changed(paths[-1], audio, sample_rate)
  return paths


def synthesize(out_dir: str, effects=DEFAULT_EFFECTS, plugin: str | None = None,
               plugin_parameters: dict | None = None,
               seconds_per_signal: float = DEFAULT_SIGNAL_SECONDS,
               piano_seconds: float = DEFAULT_PIANO_SECONDS,
               sample_rate: int = DEFAULT_SAMPLE_RATE, seed: int = 0,
               progress: bool = True, dry_only: str | None = None,
               signal_set: str = DEFAULT_SIGNAL_SET) -> list:
  """Writes the dry/wet data set for the chosen effects into ``out_dir``.

  Args:
    out_dir: directory to write into (created if missing).
    effects: names of presets in :data:`components.datagen.effects.PRESETS` (may be empty when
      ``plugin`` is given).
    plugin: path of a VST3/AU plugin rendered as one more effect, named after its file
      (see :func:`components.datagen.effects.plugin_effect_name`).
    plugin_parameters: plugin parameter name -> value.
    seconds_per_signal: length of each training signal (seconds).
    piano_seconds: length of the piano test set (seconds).
    sample_rate: Hz.
    seed: the same seed (and arguments) gives byte-identical files.
    progress: show a progress bar (on stderr, when it is a terminal).
    dry_only: instead of rendering effects, write only the dry files, as
      ``DRY_ONLY - pre - NAME.wav``: the material to play through a hardware effect
      (re-amping), whose recorded outputs become ``DRY_ONLY - post - NAME.wav``.
    signal_set: the training signals, a key of :data:`SIGNAL_SETS` ('rich' by default;
      'classic' is the earlier set of five sweeps).
  Returns:
    paths of all files of the data set, pre before post, effect by effect. Files that
    already hold identical bytes are left untouched.
  Raises:
    ValueError, effects.PluginLoadError, piano.FluidSynthMissingError: before anything
      is written.
  """
  if seconds_per_signal <= 0 or piano_seconds <= 0:
    raise ValueError('seconds_per_signal and piano_seconds must be positive')
  if plugin_parameters and plugin is None:
    raise ValueError('plugin_parameters were given without a plugin')
  if dry_only is not None:
    if not dry_only.strip() or ' - ' in dry_only or os.sep in dry_only:
      raise ValueError(f'dry_only: {dry_only!r} is not a usable effect name (non-empty, '
                       'no " - ", no path separator)')
    if plugin:
      raise ValueError('dry_only writes no effects: drop the plugin')
    boards = {}
  else:
    boards = resolve_effects(effects, plugin, plugin_parameters)
  names = list_names(signal_set)
  piano.require_fluidsynth()
  paths = []
  # disable=None: off when stderr is not a terminal (no carriage returns in logs).
  with tqdm.tqdm(total=len(names) * (1 + len(boards)), desc='fxemu synth', unit='steps',
                 disable=None if progress else True, leave=False) as bar:
    dry = {}
    for name in names:
      bar.set_postfix_str(f'generating {name}')
      dry[name] = dry_signal(name, seconds_per_signal, piano_seconds, sample_rate, seed)
      if dry_only is not None:
        paths.append(os.path.join(out_dir, file_name(dry_only, PRE, name)))
        write_if_changed(paths[-1], dry[name], sample_rate)
      bar.update()
    for effect, board in boards.items():
      for name in names:
        bar.set_postfix_str(f'{effect} {name}')
        paths += write_pair(out_dir, effect, board, name, dry[name], sample_rate)
        bar.update()
  return paths
