"""Settings of the fxemu pipeline (data, windows, release gate, runner).

Model and training settings live in :class:`trainer.config.TrainConfig`; :mod:`pipeline.flags`
builds flags and reads ``FXEMU_*`` variables from both dataclasses, so every field's ``help``
is what ``fxemu run --help`` shows.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List

from pipeline.flags import flag_text
from trainer.config import NARROW_CAPTURE_SETTINGS

PIPELINE_NAME = 'fxemu'
DEFAULT_OUTPUT_DIR = 'work'
DEFAULT_TEST_PATTERN = '*piano*,*beethoven*'


def _field(default, help_text, **kwargs):
  return dataclasses.field(default=default, metadata={'help': help_text, **kwargs})


@dataclasses.dataclass
class PipelineConfig:
  """Where the data is, how it is windowed and split, and when a model is released."""
  data_dir: str = _field('', 'Directory of "EFFECT - pre|post - NAME.wav" pairs. Default: '
                         'OUTPUT_DIR/data, made with the default data set if it is missing.')
  effect: str = _field('overdrive', 'Which EFFECT of the data directory to learn.')
  output_dir: str = _field(DEFAULT_OUTPUT_DIR, 'Where pipeline artifacts, the ML Metadata '
                           'store and the pushed models go.')
  serving_dir: str = _field('', 'TF Serving model base directory the Pusher writes '
                            'versions into. Default: OUTPUT_DIR/serving/EFFECT.')
  sample_rate: int = _field(44100, 'Sample rate (Hz) every recording must have.')
  window_seconds: float = _field(0.5, 'Length of one example\'s target (wet) window, s.')
  hop_seconds: float = _field(0.25, 'Hop between training windows, s (windows overlap '
                              'when it is shorter than the window).')
  context_seconds: float = _field(0.25, 'Dry audio added before and after each window, s, '
                                  'so the model sees the past/future it needs.')
  block_seconds: float = _field(2.0, 'Train/eval are cut from contiguous blocks of this '
                                'length, s, so overlapping windows never leak between them.')
  eval_fraction: float = _field(0.2, 'Fraction of the training blocks kept for eval.')
  test_pattern: str = _field(DEFAULT_TEST_PATTERN, 'Comma-separated globs: pairs whose NAME '
                             'matches are the test set (held out from training).')
  test_tail: float = _field(1.0, 'Fraction at the end of each test recording used as test; '
                            'the part before it joins train/eval (1.0 = whole file is test).')
  align: bool = _field(False, 'Estimate each pair\'s latency (GCC-PHAT), report it and trim '
                       'it: the start of the wet side when it is late, of the dry side when '
                       'the wet leads (also allows pre/post of different length).')
  max_latency_seconds: float = _field(1.0, 'Latency search range, +-s, of --align and the '
                                      'capture check; a latency at its edge or beyond is an '
                                      'error naming this option.')
  allow_unlearnable: bool = _field(False, 'Let the run go on, with a warning, when the capture '
                                   'check finds a pair that cannot teach a model (wet leading '
                                   'dry, latency beyond the search range or the context, no '
                                   'coherence, nothing predicts the wet); by default the run '
                                   'stops before training. See fxemu check.')
  esr_threshold_db: float = _field(0.0, 'Release gate: bless a model only if its test ESR '
                                   'is at most this many dB (and better than output = input).')
  max_regression_db: float = _field(0.0, 'Release gate: a model whose test ESR is more than '
                                    'this many dB worse than the last blessed model is not '
                                    'pushed.')
  tune: bool = _field(False, 'Add TFX\'s Tuner before the Trainer: a KerasTuner random '
                      'search over the model family (hybrid, wavenet), the WaveNet channels, '
                      'the learning rate, the AGC front end and the FIR branch on or off '
                      '(trainer/tuning.py), each trial trained like the Trainer for '
                      'TUNE_SECONDS / TUNE_TRIALS and scored on the eval split; '
                      'the Trainer then trains the best with the full budget.')
  capture_settings: bool = _field(True, 'When the capture check warns that a test '
                                  'recording plays at levels no training recording reached '
                                  '(a nonlinear effect, whose response there the model must '
                                  'extrapolate), the hybrid trains with the settings that '
                                  'extrapolate better: '
                                  + flag_text(NARROW_CAPTURE_SETTINGS) + ', each one left at '
                                  'its default (a CaptureSettings step before the '
                                  'Trainer; not with --tune, whose search takes its place).')
  tune_trials: int = _field(4, 'Tuner trials (--tune).')
  tune_seconds: float = _field(480.0, 'Wall-clock seconds of all the Tuner\'s trials together '
                               '(--tune), on top of the Trainer\'s train_seconds.')
  train_steps: int = _field(20000, 'Upper bound on training steps (the Trainer stops earlier '
                            'at its epoch limit or by early stopping).')
  beam_args: str = _field('--direct_running_mode=multi_threading --direct_num_workers=0',
                          'Beam pipeline args, space-separated, passed straight to the runner. '
                          'The default runs the DirectRunner\'s bundles in threads (no worker '
                          'processes to start; see docs/performance.md).')
  enable_cache: bool = _field(True, 'Reuse the results of components whose inputs and '
                              'settings did not change.')

  # --- derived locations -------------------------------------------------------------
  @property
  def pipeline_name(self) -> str:
    """One pipeline per effect, so caches and release baselines never mix effects."""
    safe = ''.join(c if c.isalnum() or c in '-_' else '-' for c in self.effect)
    return f'{PIPELINE_NAME}-{safe}'

  @property
  def data_path(self) -> str:
    return self.data_dir or os.path.join(self.output_dir, 'data')

  @property
  def pipeline_root(self) -> str:
    return os.path.join(self.output_dir, 'pipelines', self.pipeline_name)

  @property
  def metadata_path(self) -> str:
    return os.path.join(self.output_dir, 'metadata', f'{self.pipeline_name}.sqlite')

  @property
  def serving_path(self) -> str:
    return self.serving_dir or os.path.join(self.output_dir, 'serving', self.effect)

  def samples(self, seconds: float) -> int:
    return int(round(seconds * self.sample_rate))

  @property
  def beam_pipeline_args(self) -> List[str]:
    return self.beam_args.split()

  @property
  def test_patterns(self) -> List[str]:
    return [p.strip() for p in self.test_pattern.split(',') if p.strip()]
