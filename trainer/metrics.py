"""Custom TFMA metrics: error-to-signal ratios of audio predictions, per slice.

The model is evaluated through its ``serving_examples`` signature, whose ``wet`` output
is the prediction of the ``wet`` label. All metrics share one pass over the data (a
combiner of sums); each key is derived from it.

Keys (one value per slice; sums run over every sample of every example of the slice).
The test split tiles each test part with hop = window, but
:func:`components.audio.split_plan.plan_track` moves the last window back to end at the
end of the recording, so it overlaps its neighbour and the samples they share count
twice: the values are whole-file values up to that one doubled stretch per file and
channel (the run report scores the whole files exactly):

* ``esr``: ``sum((y - y_hat)^2) / sum(y^2)``, y = wet label, y_hat = prediction.
* ``esr_db``: ``10 log10(esr)``.
* ``rmse``: ``sqrt(sum((y - y_hat)^2) / samples)`` (full-scale units).
* ``identity_esr_db``: ESR in dB of doing nothing (y_hat = the dry input's centre,
  ``dry[c : c + len(wet)]`` with ``c = (len(dry) - len(wet)) // 2``).
* ``esr_db_vs_identity``: ``esr_db - identity_esr_db``; negative = better than nothing.
* ``identity_rmse``: RMSE of doing nothing.
* ``mrstft``: multi-resolution STFT distance (:func:`components.audio.dsp.mrstft_from_sums`):
  spectral convergence plus log-magnitude error, averaged over FFT sizes 2048, 512, 128.
  Phase-invariant, so it credits a modulated effect (phaser, chorus) whose LFO phase a
  model cannot know. Its frames lie inside each example's window.

``AudioErrorMetrics`` outputs all five keys. To put a threshold on one key, add the
single-key metric of that key with the threshold (TFMA matches a ``MetricConfig``'s
threshold to the metric's *name*; ``MetricsSpec.thresholds`` only applies to in-graph
metrics and reports "Metric not found" for these)::

  def upper(value):
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
        upper_bound={'value': value}))

  tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name='serving_examples',
                                  label_key=contract.WET, prediction_key=contract.WET_OUTPUT)],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[contract.SOURCE])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='AudioErrorMetrics', module='trainer.metrics'),
          tfma.MetricConfig(class_name='AudioESRdB', module='trainer.metrics',
                            threshold=upper(-20.0)),
          tfma.MetricConfig(class_name='AudioESRdBVsIdentity', module='trainer.metrics',
                            threshold=upper(0.0))])])

A threshold applies to every slice (overall and each ``source``), unless it is given
as a per-slice threshold.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Optional, Sequence

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import util

from components.audio import dsp
from schema import contract

ESR = 'esr'
ESR_DB = 'esr_db'
RMSE = 'rmse'
IDENTITY_ESR_DB = 'identity_esr_db'
ESR_DB_VS_IDENTITY = 'esr_db_vs_identity'
IDENTITY_RMSE = 'identity_rmse'
MRSTFT = 'mrstft'
KEYS = (ESR, ESR_DB, RMSE, IDENTITY_ESR_DB, ESR_DB_VS_IDENTITY, IDENTITY_RMSE, MRSTFT)


# --- Formulas: dsp.ErrorSums (reference = output = input) -> value ---------------------

FORMULAS: Dict[str, Callable[[dsp.ErrorSums], float]] = {
    ESR: lambda s: s.esr(),
    ESR_DB: lambda s: s.esr_db(),
    RMSE: lambda s: s.rmse(),
    IDENTITY_ESR_DB: lambda s: s.reference_esr_db(),
    ESR_DB_VS_IDENTITY: lambda s: s.esr_db() - s.reference_esr_db(),
    IDENTITY_RMSE: lambda s: s.reference_rmse(),
    MRSTFT: lambda s: s.mrstft(),
}


# --- Metrics -------------------------------------------------------------------------

class AudioErrorMetrics(metric_types.Metric):
  """All of :data:`KEYS` per slice (see the module docstring).

  Args:
    name: the metric's name (not an output key; the keys are :data:`KEYS`).
    dry_feature_key: feature holding the model input; its centre is the identity output.
  """

  def __init__(self, name: str = 'audio_error_metrics', dry_feature_key: str = contract.DRY):
    super().__init__(metric_util.merge_per_key_computations(_computations),
                     name=name, formulas=list(KEYS), key_names=list(KEYS),
                     dry_feature_key=dry_feature_key)


class _SingleKeyMetric(metric_types.Metric):
  """One key, named ``name`` (so that a MetricConfig threshold can refer to it)."""
  FORMULA = ''

  def __init__(self, name: Optional[str] = None, dry_feature_key: str = contract.DRY):
    super().__init__(metric_util.merge_per_key_computations(_computations),
                     name=name or self.FORMULA, formulas=[self.FORMULA],
                     key_names=[name or self.FORMULA], dry_feature_key=dry_feature_key)


class AudioESR(_SingleKeyMetric):
  """``esr``: error-to-signal ratio of the slice."""
  FORMULA = ESR


class AudioESRdB(_SingleKeyMetric):
  """``esr_db``: ESR of the slice in dB."""
  FORMULA = ESR_DB


class AudioRMSE(_SingleKeyMetric):
  """``rmse``: root-mean-square error of the slice (full-scale units)."""
  FORMULA = RMSE


class AudioIdentityESRdB(_SingleKeyMetric):
  """``identity_esr_db``: ESR in dB of outputting the dry input unchanged."""
  FORMULA = IDENTITY_ESR_DB


class AudioESRdBVsIdentity(_SingleKeyMetric):
  """``esr_db_vs_identity``: esr_db - identity_esr_db (negative = better than nothing)."""
  FORMULA = ESR_DB_VS_IDENTITY


class AudioIdentityRMSE(_SingleKeyMetric):
  """``identity_rmse``: RMSE of outputting the dry input unchanged."""
  FORMULA = IDENTITY_RMSE


class AudioMRSTFT(_SingleKeyMetric):
  """``mrstft``: multi-resolution STFT distance of the slice (phase-invariant)."""
  FORMULA = MRSTFT


for _cls in (AudioErrorMetrics, AudioESR, AudioESRdB, AudioRMSE, AudioIdentityESRdB,
             AudioESRdBVsIdentity, AudioIdentityRMSE, AudioMRSTFT):
  metric_types.register_metric(_cls)


class _Derive:
  """Derived-metric function: the value of one formula from the shared sums."""

  def __init__(self, sums_key: metric_types.MetricKey, key: metric_types.MetricKey,
               formula: str):
    self._sums_key, self._key, self._formula = sums_key, key, formula

  def __call__(self, metrics: Dict[metric_types.MetricKey, Any]):
    return {self._key: FORMULAS[self._formula](metrics[self._sums_key])}


def _computations(
    name: str = '',
    formulas: Sequence[str] = KEYS,
    key_names: Sequence[str] = KEYS,
    dry_feature_key: str = contract.DRY,
    eval_config: Optional[config_pb2.EvalConfig] = None,
    model_name: str = '',
    output_name: str = '',
    sub_key: Optional[metric_types.SubKey] = None,
    example_weighted: bool = False) -> metric_types.MetricComputations:
  """The shared sums computation plus one derived computation per requested key."""
  del name  # Keys are named by key_names.
  def key(key_name):
    return metric_types.MetricKey(name=key_name, model_name=model_name,
                                  output_name=output_name, sub_key=sub_key,
                                  example_weighted=example_weighted)
  # A private key (leading '_'): TFMA computes it once for all metrics and drops it.
  sums_key = key(f'_audio_error_sums_{dry_feature_key}')
  computations = [metric_types.MetricComputation(
      keys=[sums_key],
      preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[dry_feature_key])],
      combiner=_AudioErrorCombiner(sums_key, dry_feature_key, eval_config, model_name,
                                   output_name, example_weighted))]
  for formula, key_name in zip(formulas, key_names):
    if formula not in FORMULAS:
      raise ValueError(f'unknown audio metric {formula!r}; choose from {KEYS}')
    computations.append(metric_types.DerivedMetricComputation(
        keys=[key(key_name)], result=_Derive(sums_key, key(key_name), formula)))
  return computations


class _AudioErrorCombiner(beam.CombineFn):
  """Accumulates :class:`components.audio.dsp.ErrorSums` over a slice (the reference is
  output = input); outputs them under a private key."""

  def __init__(self, key: metric_types.MetricKey, dry_feature_key: str,
               eval_config: Optional[config_pb2.EvalConfig], model_name: str,
               output_name: str, example_weighted: bool):
    self._key = key
    self._dry_key = dry_feature_key
    self._eval_config = eval_config
    self._model_name = model_name
    self._output_name = output_name
    self._example_weighted = example_weighted

  def create_accumulator(self) -> dsp.ErrorSums:
    return dsp.ErrorSums()

  def add_input(self, accumulator: dsp.ErrorSums,
                element: metric_types.StandardMetricInputs) -> dsp.ErrorSums:
    dry = util.get_by_keys(element.features, [self._dry_key], optional=True)
    if dry is None:
      raise ValueError(f'the audio metrics need the feature {self._dry_key!r} (the model '
                       'input) in the evaluated examples')
    for label, prediction, weight in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config, model_name=self._model_name,
        output_name=self._output_name, example_weighted=self._example_weighted,
        flatten=False, squeeze=False, require_single_example_weight=True):
      label = np.asarray(label, np.float64)
      prediction = np.asarray(prediction, np.float64).reshape(label.shape)
      dry_values = np.asarray(dry, np.float64)
      length = label.shape[-1]
      context = (dry_values.shape[-1] - length) // 2
      if context < 0:
        raise ValueError(f'feature {self._dry_key!r} ({dry_values.shape[-1]} samples) is '
                         f'shorter than the label ({length} samples)')
      centre = dry_values[..., context:context + length].reshape(label.shape)
      accumulator.add(label, prediction, float(np.asarray(weight).reshape(-1)[0]),
                      reference=centre)
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[dsp.ErrorSums]) -> dsp.ErrorSums:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for other in accumulators:
      result.merge(other)
    return result

  def extract_output(self, accumulator: dsp.ErrorSums
                     ) -> Dict[metric_types.MetricKey, dsp.ErrorSums]:
    return {self._key: accumulator}
