"""TrainConfig: every option of the trainer, with defaults and help texts.

The pipeline passes it to the TFX Trainer as ``custom_config`` (a flat JSON-able dict,
see :meth:`TrainConfig.to_custom_config`) and ``run_fn`` reads it back with
:meth:`TrainConfig.from_custom_config`. Every field has a default and ``metadata['help']``:
:mod:`pipeline.flags` makes the command-line flags and ``FXEMU_*`` variables of them.

Lengths are in samples unless a name says otherwise.
"""
from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, List, Mapping, Optional, Tuple

MODELS = ('hybrid', 'wavenet', 'conv', 'dense', 'tcn')
#: Peak learning rate of each model when ``learning_rate`` is 0 (Adam): the full-rate models
#: train at Neural Amp Modeler's 0.004, the frame-rate ones at 0.001 as before.
MODEL_LEARNING_RATES = {'hybrid': 4e-3, 'wavenet': 4e-3, 'conv': 1e-3, 'dense': 1e-3,
                        'tcn': 1e-3}
#: Learning-rate schedule and weight averaging of each model when ``lr_schedule`` is empty and
#: ``ema_momentum`` negative: the full-rate models keep Neural Amp Modeler's nearly constant
#: rate and score (and export) the moving average of their weights (pedals A and the presets:
#: benchmarks/quality_notes.md, session 11); the others keep the cosine, without averaging.
MODEL_LR_SCHEDULES = {'hybrid': 'constant', 'wavenet': 'constant'}
MODEL_EMA_MOMENTA = {'hybrid': 0.995, 'wavenet': 0.995}
#: Training crop of each model when ``train_crop_samples`` is 0: the full-rate models learn
#: from random 8,192-sample pieces of the examples (more, cheaper optimizer steps, and a new
#: position every time: Neural Amp Modeler's batches are 16 x 8,192 samples); the frame-rate
#: models take whole windows as before.
MODEL_TRAIN_CROPS = {'hybrid': 8192, 'wavenet': 8192}
#: The hybrid's settings for a capture whose levels do not cover the test audio's (the capture
#: check's level-coverage warning, a nonlinear effect), where the model must extrapolate:
#: a narrower conditioning path and weight decay, at about the default's cost. The pipeline puts
#: them over the defaults (components/capture_settings.py; --no-capture-settings: never).
#: Against the defaults (benchmarks/quality_notes.md, sessions 16 and 17): recorded hardware
#: pedals, 540 s, -9.13 dB (three seeds) against -7.66 and -8.48; the classic sweeps with a
#: piano 20 dB quieter, 240 s, comp_drive -24.53 against -23.64, overdrive -27.22 against
#: -20.35. (With --wavenet-channels 12,6 as well: the pedals -9.92, comp_drive -22.49.)
NARROW_CAPTURE_SETTINGS = {'condition_latent_channels': 16, 'weight_decay': 0.1}
LOSS_TERMS = ('mse', 'esr', 'esr_per_example', 'esr_preemphasis', 'mrstft', 'dc')
LR_SCHEDULES = ('cosine', 'constant', 'plateau')
FIR_INITS = ('least_squares', 'zeros', 'auto')
ACTIVATIONS = ('tanh', 'relu', 'gelu', 'elu', 'softsign')
#: The full-rate layers also take leaky_relu (slope 0.01, as Neural Amp Modeler 0.13's default).
WAVENET_ACTIVATIONS = ACTIVATIONS + ('leaky_relu',)
#: Initial weights of the full-rate layers: Keras's ``glorot_uniform``, or ``fan_in_uniform``
#: (uniform within +-1/sqrt(fan_in): PyTorch's default for Conv1d, so Neural Amp Modeler's).
WAVENET_INITIALIZERS = ('glorot_uniform', 'fan_in_uniform')
MIXED_PRECISION = ('auto', 'off', 'mixed_float16', 'mixed_bfloat16')
# custom_config keys that belong to TFX's Google Cloud AI Platform / Vertex Training
# extension (tfx.extensions.google_cloud_ai_platform), not to fxemu: the Trainer passes
# the whole custom_config to run_fn, so these are let through (and ignored).
EXTENSION_KEY_PREFIXES = ('ai_platform_',)


def _field(default, help_text: str):
  if isinstance(default, (list, tuple)):
    return dataclasses.field(default_factory=lambda: tuple(default), metadata={'help': help_text})
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass
class TrainConfig:
  """Options of the fxemu trainer. See each field's ``metadata['help']``."""

  # --- Data contract (must match the ExampleGen's parameters) ----------------------
  sample_rate: int = _field(44100, 'Sample rate of the examples (Hz).')
  window_samples: int = _field(32768, 'Length of the wet target of each example (samples); '
                               'must equal the ExampleGen window.')
  context_samples: int = _field(16384, 'Dry samples on each side of the target (samples); must '
                                'equal the ExampleGen context. Should be >= the model\'s '
                                'receptive field (past side) for exact training targets.')

  # --- Model -----------------------------------------------------------------------
  model: str = _field('hybrid', 'Architecture: hybrid (a NAM-style WaveNet at the sample '
                      'rate, conditioned by a causal conv -> dense/dilated latent -> '
                      'Conv1DTranspose path, plus a linear FIR branch), wavenet (the same '
                      'without the conv path), conv (strided conv -> dense/dilated latent -> '
                      'Conv1DTranspose plus the FIR branch; the earlier default, about 10x '
                      'faster to run, weaker on nonlinear effects), dense (fully connected '
                      'framewise baseline) or tcn (gated dilated sample-rate conv stack).')
  activation: str = _field('tanh', f'Nonlinearity of hidden layers: {", ".join(ACTIVATIONS)}.')
  causal: bool = _field(True, 'Latent/TCN convolutions see only the past (the effect is '
                        'causal), which doubles the useful memory for the same cost.')
  conv_stride: int = _field(64, 'conv: stride S of the encoder and decoder (samples per latent '
                            'frame). Inputs are processed in multiples of S (block_multiple).')
  conv_kernel: int = _field(128, 'conv: kernel K of the encoder/decoder (samples, >= S, K - S '
                            'even): frames overlap by (K - S) / 2 samples on each side.')
  latent_channels: int = _field(64, 'conv: channels of the latent frames.')
  latent_dense_layers: int = _field(2, 'conv: pointwise Dense layers applied to every latent '
                                    'frame (nonlinear capacity).')
  latent_kernel: int = _field(3, 'conv: kernel (frames, odd) of the dilated latent convolutions.')
  latent_dilations: Tuple[int, ...] = _field(
      (1, 2, 4, 8, 16, 32, 64), 'conv: dilations of the residual latent Conv1D blocks '
      '(comma-separated); memory = S * sum((kernel - 1) * dilation) samples.')
  fir_taps: int = _field(256, 'All models but dense: taps of the parallel linear FIR branch '
                         '(0 = none).')
  fir_lookahead: int = _field(16, 'All models but dense: taps of the FIR branch that look '
                              'ahead (future samples), for slightly misaligned recordings.')
  fir_init: str = _field('auto', 'Initial FIR branch: least_squares (fitted to the '
                         'training data before training; linear effects start solved), zeros, '
                         'or auto (the least-squares filter if it fits the training examples '
                         'to fir_auto_esr_db or better, else zeros).')
  fir_auto_esr_db: float = _field(-20.0, 'fir_init auto: the least-squares start is kept when '
                                  'its ESR on the training examples is at most this (dB): a '
                                  'nearly linear effect. On a nonlinear one the fitted start '
                                  'held the model back (pedals A: 2.8 dB, benchmarks/'
                                  'quality_notes.md).')
  fir_lr_scale: float = _field(0.1, 'Learning-rate multiplier of the FIR branch (a fitted '
                               'filter needs small steps).')
  fir_init_examples: int = _field(256, 'Training examples (spread evenly over the split) used '
                                 'for the least-squares FIR fit.')
  modulation_channels: int = _field(0, 'conv: channels of a time-varying filter branch: the '
                                    'decoder also emits M gains per sample that multiply M '
                                    'learned short FIRs of the input (compressors). 0 = none.')
  modulation_taps: int = _field(32, 'conv: taps of each modulated FIR.')
  agc_strength: float = _field(0.0, 'All models but dense: level-normalising front end (for '
                               'compressors): the input is multiplied by a gain g(t) '
                               'computed in dB from causal RMS envelopes, g_dB = sum_w a_w '
                               '(env_w_dB - agc_reference_db), the a_w starting at -agc_strength / '
                               'len(agc_windows_ms) (1 = output level independent of input '
                               'level) and then learned. Log-domain, so it extrapolates from '
                               'training levels to quieter or louder material. 0 = off.')
  agc_windows_ms: Tuple[int, ...] = _field((5, 50, 200), 'Lengths (ms) of the causal RMS '
                                           'windows of the agc envelopes (comma-separated).')
  agc_reference_db: float = _field(-20.0, 'agc: input level (dBFS RMS) at which g = 0 dB.')
  agc_floor_db: float = _field(-50.0, 'agc: envelopes below this level (dBFS) count as this '
                               'level, so silence is not amplified without bound.')
  agc_max_gain_db: float = _field(30.0, 'agc: |g_dB| is limited to this.')
  dense_frame_samples: int = _field(512, 'dense: frame length N (samples in = samples out).')
  dense_units: int = _field(512, 'dense: units of each hidden layer.')
  dense_layers: int = _field(2, 'dense: hidden layers.')
  tcn_channels: int = _field(16, 'tcn: channels.')
  tcn_kernel: int = _field(3, 'tcn: kernel size (samples).')
  tcn_dilations: Tuple[int, ...] = _field(
      (1, 2, 4, 8, 16, 32, 64, 128, 256, 512), 'tcn: dilations of the gated residual layers.')
  wavenet_channels: Tuple[int, ...] = _field(
      (8, 4), 'wavenet/hybrid: channels of each layer array of the full-rate path (one '
      'number per array; the arrays run in series, each adding its layers\' outputs to a '
      'shared head, as in Neural Amp Modeler\'s standard WaveNet).')
  wavenet_kernel: int = _field(3, 'wavenet/hybrid: kernel size (samples) of the dilated '
                               'convolutions.')
  wavenet_dilations: Tuple[int, ...] = _field(
      (1, 2, 4, 8, 16, 32, 64, 128, 256, 512), 'wavenet/hybrid: dilations of the layers of '
      'every array; receptive field = arrays x (kernel - 1) x sum(dilations) + 1 samples.')
  wavenet_activation: str = _field('tanh', 'wavenet/hybrid: activation of the layers, one of '
                                   f'{", ".join(WAVENET_ACTIVATIONS)}.')
  wavenet_initializer: str = _field('glorot_uniform', 'wavenet/hybrid: initial weights of '
                                    'the layer arrays\' convolutions: glorot_uniform, or '
                                    'fan_in_uniform (+-1/sqrt(fan_in), PyTorch\'s default and '
                                    'so Neural Amp Modeler\'s: about 0.6 times as large).')
  wavenet_gated: bool = _field(False, 'wavenet/hybrid: gated layers (tanh x sigmoid, twice '
                               'the convolution cost) instead of one activation.')
  wavenet_head_scale: float = _field(0.02, 'wavenet/hybrid: factor on the head\'s output.')
  condition_channels: int = _field(4, 'hybrid: channels of the slow conditioning signal the '
                                   'conv-transpose path decodes (level, dynamics, long '
                                   'memory) and feeds, beside the audio, into every layer of '
                                   'the full-rate path. The path is causal: its strided '
                                   'encoder (conv_stride, conv_kernel), latent and '
                                   'Conv1DTranspose decoder see only the past.')
  condition_latent_channels: int = _field(32, 'hybrid: channels of the conditioning path\'s '
                                          'latent frames.')
  condition_dilations: Tuple[int, ...] = _field(
      (1, 2, 4, 8, 16), 'hybrid: dilations (frames) of the conditioning path\'s causal latent '
      'convolutions (kernel latent_kernel); its memory is about conv_stride x (latent_kernel '
      '- 1) x sum(condition_dilations) samples.')

  # --- Training --------------------------------------------------------------------
  loss: str = _field('esr', 'Training loss: a term or a weighted sum of terms such as '
                     f'"esr_preemphasis+0.1*mrstft"; terms: {", ".join(LOSS_TERMS)}.')
  preemphasis: float = _field(0.95, 'Coefficient a of the pre-emphasis filter 1 - a z^-1 '
                              '(esr_preemphasis loss).')
  stft_fft_sizes: Tuple[int, ...] = _field((2048, 512, 128), 'mrstft: FFT sizes (hop = size/4).')
  epochs: int = _field(50, 'Maximum number of passes over the training split.')
  train_seconds: float = _field(360.0, 'Wall-clock training budget, s (0 = none): training '
                                'stops when it is spent (or at the epoch/step limit), and '
                                'the cosine learning-rate schedule runs over the budget\'s '
                                'time instead of over steps, so the rate reaches its minimum '
                                'when the time is up whatever the machine\'s speed.')
  batch_size: int = _field(8, 'Examples per batch per replica (global batch = this x replicas).')
  learning_rate: float = _field(0.0, 'Peak learning rate (Adam); 0 = the model\'s default '
                                '(' + ', '.join(f'{m} {r:g}' for m, r in
                                                MODEL_LEARNING_RATES.items()) + ').')
  train_crop_samples: int = _field(
      0, 'Length of the random piece of each training example\'s window that a training '
      'step sees (samples; a new random offset every time, the receptive field\'s context '
      'kept around it); 0 = the model\'s default (' + ', '.join(
          f'{m} {n}' for m, n in MODEL_TRAIN_CROPS.items()) + ', whole window otherwise). '
      'Validation always scores whole windows.')
  lr_schedule: str = _field('', f'Learning-rate schedule: {", ".join(LR_SCHEDULES)} (cosine '
                            'decays to lr * min_lr_fraction over all steps, or over '
                            'train_seconds); empty = the model\'s default (' + ', '.join(
                                f'{m} {v}' for m, v in MODEL_LR_SCHEDULES.items())
                            + ', cosine otherwise).')
  warmup_steps: int = _field(100, 'Linear learning-rate warm-up steps (cosine schedule; at '
                             'most a quarter of all steps).')
  min_lr_fraction: float = _field(0.02, 'Final learning rate as a fraction of the peak.')
  clipnorm: float = _field(1.0, 'Gradient norm clipping (0 = off).')
  weight_decay: float = _field(0.0, 'Decoupled weight decay (AdamW): every step shrinks each '
                               'weight w by learning_rate * weight_decay * w; biases and the '
                               'FIR branch are left alone. 0 = off.')
  ema_momentum: float = _field(-1.0, 'Weight averaging: the optimizer keeps an exponential '
                               'moving average of the weights with this momentum per step '
                               '(0.995: about the last 200 steps); every validation scores '
                               'the averaged weights, and the best of them are exported. '
                               '0 = off; negative = the model\'s default (' + ', '.join(
                                   f'{m} {v:g}' for m, v in MODEL_EMA_MOMENTA.items())
                               + ', off otherwise).')
  early_stopping_patience: int = _field(10, 'Epochs without improvement of the eval ESR before '
                                        'training stops (0 = never stop early).')
  shuffle_buffer: int = _field(1024, 'Examples in the shuffle buffer.')
  cache: bool = _field(True, 'Cache the parsed training/eval examples in memory.')
  seed: int = _field(0, 'Random seed (weights, shuffling).')
  mixed_precision: str = dataclasses.field(default='off', metadata={
      'choices': MIXED_PRECISION,
      'help': 'Keras mixed precision of training (off by default: float16 resolves about '
              '-66 dB, short of what linear effects reach, e.g. -73 dB on lowpass): auto '
              '(mixed_float16 when the trainer '
              'sees GPUs of compute capability >= 7.0, float32 otherwise), off (float32), '
              'mixed_float16 (dynamic loss scaling) or mixed_bfloat16 (TPUs, Ampere+ GPUs, '
              'recent CPUs). The input, the FIR/AGC branches, the output and the loss stay '
              'float32, and the model is exported in float32 either way.'})

  def __post_init__(self):
    for name in ('latent_dilations', 'tcn_dilations', 'stft_fft_sizes', 'agc_windows_ms',
                 'wavenet_channels', 'wavenet_dilations', 'condition_dilations'):
      setattr(self, name, tuple(int(v) for v in _as_sequence(getattr(self, name))))
    self.validate()

  def validate(self) -> None:
    """Raises ValueError naming the first inconsistent option."""
    def check(ok, message):
      if not ok:
        raise ValueError(f'TrainConfig: {message}')
    check(self.model in MODELS, f'model must be one of {MODELS}, got {self.model!r}')
    check(self.activation in ACTIVATIONS, f'activation must be one of {ACTIVATIONS}')
    check(self.lr_schedule in LR_SCHEDULES + ('',),
          f'lr_schedule must be one of {LR_SCHEDULES} or empty')
    check(self.fir_init in FIR_INITS, f'fir_init must be one of {FIR_INITS}')
    check(self.mixed_precision in MIXED_PRECISION,
          f'mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}')
    for name in ('sample_rate', 'window_samples', 'conv_stride', 'conv_kernel',
                 'latent_channels', 'latent_kernel', 'dense_frame_samples', 'dense_units',
                 'tcn_channels', 'tcn_kernel', 'epochs', 'batch_size', 'modulation_taps',
                 'wavenet_kernel', 'condition_latent_channels'):
      check(getattr(self, name) > 0, f'{name} must be positive, got {getattr(self, name)}')
    for name in ('context_samples', 'fir_taps', 'fir_lookahead', 'latent_dense_layers',
                 'dense_layers', 'modulation_channels', 'warmup_steps', 'clipnorm',
                 'weight_decay',
                 'early_stopping_patience', 'shuffle_buffer', 'fir_init_examples',
                 'condition_channels'):
      check(getattr(self, name) >= 0, f'{name} must be >= 0, got {getattr(self, name)}')
    check(self.conv_kernel >= self.conv_stride and (self.conv_kernel - self.conv_stride) % 2 == 0,
          f'conv_kernel ({self.conv_kernel}) must be >= conv_stride ({self.conv_stride}) '
          'and differ from it by an even number')
    check(self.latent_kernel % 2 == 1, 'latent_kernel must be odd')
    check(self.fir_taps == 0 or self.fir_lookahead < self.fir_taps,
          'fir_lookahead must be smaller than fir_taps')
    check(all(d > 0 for d in self.latent_dilations + self.tcn_dilations
              + self.condition_dilations),
          'dilations must be positive')
    check(len(self.tcn_dilations) > 0, 'tcn_dilations must not be empty')
    check(len(self.wavenet_channels) > 0 and all(c > 0 for c in self.wavenet_channels),
          'wavenet_channels must be positive and not empty')
    check(len(self.wavenet_dilations) > 0 and all(d > 0 for d in self.wavenet_dilations),
          'wavenet_dilations must be positive and not empty')
    check(self.wavenet_activation in WAVENET_ACTIVATIONS,
          f'wavenet_activation must be one of {WAVENET_ACTIVATIONS}')
    check(self.wavenet_initializer in WAVENET_INITIALIZERS,
          f'wavenet_initializer must be one of {WAVENET_INITIALIZERS}')
    check(self.ema_momentum < 1.0, 'ema_momentum must be below 1')
    check(self.train_seconds >= 0.0, 'train_seconds must be >= 0')
    check(self.agc_strength >= 0.0, 'agc_strength must be >= 0')
    check(not self.agc_strength or (len(self.agc_windows_ms) > 0
                                    and all(w > 0 for w in self.agc_windows_ms)),
          'agc_windows_ms must be positive and not empty when agc_strength > 0')
    check(self.agc_max_gain_db > 0.0, 'agc_max_gain_db must be positive')
    check(all(n >= 8 for n in self.stft_fft_sizes), 'stft_fft_sizes must be >= 8')
    check(self.train_crop_samples >= 0, 'train_crop_samples must be >= 0 (0 = the model\'s default)')
    check(0.0 <= self.learning_rate, 'learning_rate must be >= 0 (0 = the model\'s default)')
    check(0.0 < self.fir_lr_scale, 'fir_lr_scale must be positive')
    check(0.0 <= self.min_lr_fraction <= 1.0, 'min_lr_fraction must be in [0, 1]')
    check(0.0 <= self.preemphasis < 1.0, 'preemphasis must be in [0, 1)')
    try:
      parse_loss_spec(self.loss)
    except ValueError as e:
      raise ValueError(f'TrainConfig: loss: {e}') from e

  @property
  def peak_learning_rate(self) -> float:
    """``learning_rate``, or the model's default (:data:`MODEL_LEARNING_RATES`) if it is 0."""
    return self.learning_rate or MODEL_LEARNING_RATES[self.model]

  @property
  def schedule(self) -> str:
    """``lr_schedule``, or the model's default (:data:`MODEL_LR_SCHEDULES`) if empty."""
    return self.lr_schedule or MODEL_LR_SCHEDULES.get(self.model, 'cosine')

  @property
  def averaging_momentum(self) -> float:
    """``ema_momentum``, or the model's default (:data:`MODEL_EMA_MOMENTA`) if negative;
    0 = no weight averaging."""
    if self.ema_momentum < 0.0:
      return MODEL_EMA_MOMENTA.get(self.model, 0.0)
    return self.ema_momentum

  @property
  def train_window_samples(self) -> int:
    """Wet samples per training example a step sees: ``train_crop_samples`` (or the model's
    default, :data:`MODEL_TRAIN_CROPS`), at most the whole ``window_samples``."""
    crop = self.train_crop_samples or MODEL_TRAIN_CROPS.get(self.model, 0)
    return min(crop, self.window_samples) if crop else self.window_samples

  @property
  def input_samples(self) -> int:
    """Length of the ``dry`` feature: window + 2 * context."""
    return self.window_samples + 2 * self.context_samples

  def to_custom_config(self) -> Dict[str, Any]:
    """The options as a flat JSON-able dict (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      out[f.name] = list(value) if isinstance(value, tuple) else value
    return out

  @classmethod
  def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> 'TrainConfig':
    """Inverse of :meth:`to_custom_config`; missing keys take their defaults.

    Keys of TFX's Vertex / AI Platform Training extension (``ai_platform_*``, see
    ``EXTENSION_KEY_PREFIXES``) are ignored: that Trainer reads them from the same dict.

    Raises:
      ValueError: unknown keys (typos must not be silently ignored) or invalid values.
    """
    custom_config = {k: v for k, v in (custom_config or {}).items()
                     if not k.startswith(EXTENSION_KEY_PREFIXES)}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(custom_config) - names)
    if unknown:
      raise ValueError(f'TrainConfig: unknown options {unknown}; known: {sorted(names)}')
    return cls(**{k: cls._coerce(k, v) for k, v in custom_config.items()})

  def with_tuned(self, hyperparameters: Mapping[str, Any]) -> 'TrainConfig':
    """This config with a Tuner's values in place. ``hyperparameters``: KerasTuner's
    ``HyperParameters.get_config()`` (what TFX's Tuner writes as ``best_hyperparameters``)
    or its ``values``, named like the fields; a sequence may be a string ('8,4').
    Raises ValueError for an unknown name or an invalid value."""
    return TrainConfig.from_custom_config({**self.to_custom_config(),
                                           **tuned_values(hyperparameters)})

  @classmethod
  def field_help(cls) -> Dict[str, str]:
    """name -> help text, in declaration order."""
    return {f.name: f.metadata['help'] for f in dataclasses.fields(cls)}

  @classmethod
  def _coerce(cls, name: str, value: Any) -> Any:
    kind = typing.get_type_hints(cls)[name]
    if kind is bool:
      if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered not in ('true', 'false', '1', '0', 'yes', 'no'):
          raise ValueError(f'TrainConfig: {name} must be a boolean, got {value!r}')
        return lowered in ('true', '1', 'yes')
      return bool(value)
    if kind is int:
      if isinstance(value, float) and not value.is_integer():
        raise ValueError(f'TrainConfig: {name} must be an integer, got {value!r}')
      return int(value)
    if kind in (float, str):
      return kind(value)
    return tuple(int(v) for v in _as_sequence(value))


def parse_loss_spec(spec: str) -> List[Tuple[float, str]]:
  """``"esr+0.1*mrstft"`` -> ``[(1.0, 'esr'), (0.1, 'mrstft')]``.

  Raises:
    ValueError: empty spec, unknown term or bad weight.
  """
  terms = []
  for part in (spec or '').replace(' ', '').split('+'):
    if not part:
      raise ValueError(f'empty term in loss spec {spec!r}')
    weight, _, name = part.rpartition('*')
    try:
      weight = float(weight) if weight else 1.0
    except ValueError as e:
      raise ValueError(f'bad weight {weight!r} in loss spec {spec!r}') from e
    if name not in LOSS_TERMS:
      raise ValueError(f'unknown loss term {name!r} in {spec!r}; choose from {LOSS_TERMS}')
    terms.append((weight, name))
  return terms


def _as_sequence(value) -> Tuple:
  if isinstance(value, str):
    return tuple(v for v in (p.strip() for p in value.split(',')) if v)
  if isinstance(value, (int, float)):
    return (value,)
  return tuple(value)


def narrow_capture_settings(config: TrainConfig) -> Dict[str, Any]:
  """:data:`NARROW_CAPTURE_SETTINGS` without those ``config`` sets (a field that differs
  from its default: the user's choice stands); ``{}`` unless the model is the hybrid."""
  if config.model != 'hybrid':
    return {}
  defaults = TrainConfig()
  return {name: value for name, value in NARROW_CAPTURE_SETTINGS.items()
          if getattr(config, name) == getattr(defaults, name)}


def tuned_values(hyperparameters: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
  """The values of a Tuner's ``hyperparameters``: KerasTuner's ``get_config()`` (what TFX's
  Tuner writes: ``{"values": {...}, ...}``) or the values themselves; {} for None."""
  return dict(hyperparameters.get('values', hyperparameters)) if hyperparameters else {}
