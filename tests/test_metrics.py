"""Tests of the custom TFMA metric trainer.metrics.AudioErrorMetrics, end to end.

A tiny conv model (its FIR branch fitted by least squares to source 'lowpass', no
gradient training) is exported and evaluated with tfma.run_model_analysis through its
``serving_examples`` signature, sliced by ``source``; the metric values are checked
against NumPy (components.audio.dsp) and thresholds against the expected blessing.
"""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top
import tensorflow_model_analysis as tfma  # pylint: disable=g-import-not-at-top

from components.audio import dsp  # pylint: disable=g-import-not-at-top
from trainer import architectures  # pylint: disable=g-import-not-at-top
from trainer import export  # pylint: disable=g-import-not-at-top
from trainer import fir_init  # pylint: disable=g-import-not-at-top
from tensorflow_model_analysis.metrics import metric_types  # pylint: disable=g-import-not-at-top
from trainer import metrics  # pylint: disable=g-import-not-at-top
from trainer import testing  # pylint: disable=g-import-not-at-top
from trainer.config import TrainConfig  # pylint: disable=g-import-not-at-top

SR = 16000
WINDOW, CONTEXT = 1024, 256
CONFIG = TrainConfig(model='conv', train_seconds=0,
                     sample_rate=SR, window_samples=WINDOW, context_samples=CONTEXT,
                     conv_stride=16, conv_kernel=32, latent_channels=8,
                     latent_dilations=(1, 2), fir_taps=48, fir_lookahead=8)
FIR = testing.lowpass_fir(31, 0.1)


def _effects():
  """source -> (dry, wet): one the model emulates well, one it does not."""
  a = testing.noise(SR, seed=1)
  b = testing.noise(SR // 2 + 300, seed=2)   # not a multiple of the window: padded tail
  a[-200:] = 0.0   # Silence at the end: the filter's ringing stays inside the file.
  return {'lowpass': (a, testing.apply_causal_fir(a, FIR)),
          'drive': (b, np.tanh(4.0 * b).astype(np.float32))}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('metrics'))
  tracks = _effects()
  patterns = testing.write_dataset(os.path.join(root, 'examples'), {'test': tracks},
                                   WINDOW, CONTEXT, WINDOW, SR)
  # Model: the FIR branch fitted on 'lowpass' windows, the rest untrained (zero output).
  records = testing.window_examples(*tracks['lowpass'], WINDOW, CONTEXT, WINDOW // 2, 'x')
  parsed = [tf.io.parse_single_example(r, {
      'dry': tf.io.FixedLenFeature([WINDOW + 2 * CONTEXT], tf.float32),
      'wet': tf.io.FixedLenFeature([WINDOW], tf.float32)}) for r in records]
  dry = np.stack([p['dry'].numpy() for p in parsed])
  wet = np.stack([p['wet'].numpy() for p in parsed])
  model = architectures.build_model(CONFIG)
  architectures.fir_layer(model).set_filter(
      fir_init.fit_fir_windows(dry, wet, CONFIG.fir_taps, CONFIG.fir_lookahead, CONTEXT))
  model_dir = export.export_serving_model(model, CONFIG, os.path.join(root, 'model'))
  return {'root': root, 'pattern': patterns['test'], 'model_dir': model_dir, 'tracks': tracks}


def _expected(setup):
  """Per-slice sums computed with NumPy from the test records and the served predictions."""
  loaded = tf.saved_model.load(setup['model_dir'])
  serve = loaded.signatures['serving_examples']
  by_source = {}
  for record in tf.data.TFRecordDataset(tf.io.gfile.glob(setup['pattern']), 'GZIP'):
    example = tf.train.Example.FromString(record.numpy())
    feature = example.features.feature
    source = feature['source'].bytes_list.value[0].decode()
    dry = np.array(feature['dry'].float_list.value, np.float32)
    wet = np.array(feature['wet'].float_list.value, np.float32)
    pred = serve(examples=tf.constant([record.numpy()]))['wet'].numpy()[0]
    for key in (source, ''):
      entry = by_source.setdefault(key, {'wet': [], 'pred': [], 'dry': [], 'stft': 0.0})
      entry['stft'] = entry['stft'] + dsp.mrstft_sums(wet, pred)   # frames inside the window
      entry['wet'].append(wet)
      entry['pred'].append(pred)
      entry['dry'].append(dry[CONTEXT:CONTEXT + WINDOW])
  out = {}
  for key, entry in by_source.items():
    wet, pred, dry = (np.concatenate(entry[k]) for k in ('wet', 'pred', 'dry'))
    out[key] = {'esr': dsp.esr(wet, pred), 'esr_db': dsp.esr_db(wet, pred),
                'rmse': dsp.rmse(wet, pred), 'identity_esr_db': dsp.esr_db(wet, dry),
                'esr_db_vs_identity': dsp.esr_db(wet, pred) - dsp.esr_db(wet, dry),
                'identity_rmse': dsp.rmse(wet, dry),
                'mrstft': dsp.mrstft_from_sums(entry['stft'])}
    assert out[key]['mrstft'] > 0.0
  return out


def _upper(value):
  return tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(upper_bound={'value': value}))


def _eval_config(esr_db_bound, vs_identity_bound):
  """The EvalConfig to wire into the Evaluator, with thresholds on two keys."""
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name='serving_examples', label_key='wet',
                                  prediction_key='wet')],
      slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=['source'])],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name='ExampleCount'),
          tfma.MetricConfig(class_name='AudioErrorMetrics', module='trainer.metrics'),
          tfma.MetricConfig(class_name='AudioESRdB', module='trainer.metrics',
                            threshold=_upper(esr_db_bound)),
          tfma.MetricConfig(class_name='AudioESRdBVsIdentity', module='trainer.metrics',
                            threshold=_upper(vs_identity_bound)),
      ])])


def _run(setup, eval_config, name):
  output = os.path.join(setup['root'], name)
  # As the TFX Evaluator builds it (the model type is inferred as tf_generic).
  shared = tfma.default_eval_shared_model(eval_saved_model_path=setup['model_dir'],
                                          model_name='', eval_config=eval_config)
  result = tfma.run_model_analysis(eval_shared_model=shared, eval_config=eval_config,
                                   data_location=setup['pattern'], output_path=output)
  values = {}
  for slice_key, slice_metrics in result.slicing_metrics:
    name = dict(slice_key).get('source', b'')
    name = name.decode() if isinstance(name, bytes) else str(name)
    values[name] = {k: v['doubleValue'] for k, v in slice_metrics[''][''].items()}
  return values, tfma.load_validation_result(output)


def test_metric_values_and_thresholds(setup):
  expected = _expected(setup)
  assert expected['lowpass']['esr_db'] < -40.0       # the emulated effect
  assert expected['drive']['esr_db_vs_identity'] > 0.0  # worse than doing nothing
  lowpass, drive = expected['lowpass']['esr_db'], expected['drive']['esr_db']

  # One run: thresholds that the lowpass slice passes and the drive slice fails.
  values, validation = _run(setup, _eval_config((lowpass + drive) / 2, 0.0), 'mixed')
  assert set(values) == {'', 'lowpass', 'drive'}
  for source, metric_values in expected.items():
    got = values[source]
    for key in metrics.KEYS:
      np.testing.assert_allclose(got[key], metric_values[key], rtol=1e-4, atol=1e-6,
                                 err_msg=f'{source}: {key}')
  n_lowpass = len(dsp.window_starts(SR, WINDOW, WINDOW, pad_end=True))
  assert values['lowpass']['example_count'] == n_lowpass
  # The test split tiles each file: the slice's ESR is the whole-file ESR.
  loaded = tf.saved_model.load(setup['model_dir'])
  dry, wet = setup['tracks']['lowpass']
  whole = loaded.signatures['serving_default'](audio=tf.constant(dry[None]))['wet'].numpy()[0]
  np.testing.assert_allclose(values['lowpass']['esr_db'], dsp.esr_db(wet, whole), atol=0.5)

  assert not validation.validation_ok
  failures = {(dict((c.column, c.bytes_value) for c in v.slice_key.single_slice_keys)
               .get('source', b''), f.metric_key.name)
              for v in validation.metric_validations_per_slice for f in v.failures}
  # The overall slice mixes both sources: it fails whichever bound the drive part breaks.
  assert (b'drive', 'esr_db') in failures and (b'drive', 'esr_db_vs_identity') in failures
  assert not any(source == b"lowpass" for source, _ in failures), (failures, values, validation)

  # Bounds every slice meets -> blessed.
  _, validation = _run(setup, _eval_config(
      max(v['esr_db'] for v in expected.values()) + 1.0,
      max(v['esr_db_vs_identity'] for v in expected.values()) + 1.0), 'pass')
  assert validation.validation_ok, validation


def _apply(metric, eval_config, elements):
  """Runs a metric's computations on StandardMetricInputs without Beam."""
  computations = metric.computations(eval_config=eval_config)
  base = [c for c in computations if isinstance(c, metric_types.MetricComputation)]
  derived = [c for c in computations if isinstance(c, metric_types.DerivedMetricComputation)]
  results = {}
  for computation in base:
    combiner = computation.combiner
    accumulators = []
    for chunk in (elements[:1], elements[1:]):   # exercise merge_accumulators
      acc = combiner.create_accumulator()
      for element in chunk:
        acc = combiner.add_input(acc, element)
      accumulators.append(acc)
    results.update(combiner.extract_output(combiner.merge_accumulators(accumulators)))
  for computation in derived:
    results.update(computation.result(results))
  return {k.name: v for k, v in results.items() if not k.name.startswith('_')}


def test_sums_run_over_samples_not_examples():
  rng = np.random.default_rng(0)
  # A loud and a quiet example: per-example averaging would weight them equally.
  wets = [rng.normal(0, 1.0, 64), rng.normal(0, 0.01, 64)]
  preds = [w + rng.normal(0, 0.1, 64) for w in wets]
  drys = [np.concatenate([np.zeros(8), 0.5 * w, np.zeros(8)]) for w in wets]
  elements = [metric_types.StandardMetricInputs(
      labels=w, predictions={'wet': p}, features={'dry': d})
      for w, p, d in zip(wets, preds, drys)]
  config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key='wet', prediction_key='wet')])
  got = _apply(metrics.AudioErrorMetrics(), config, elements)
  wet, pred = np.concatenate(wets), np.concatenate(preds)
  dry = np.concatenate([d[8:-8] for d in drys])
  assert set(got) == set(metrics.KEYS)
  np.testing.assert_allclose(got['esr'], dsp.esr(wet, pred), rtol=1e-9)
  np.testing.assert_allclose(got['esr_db'], dsp.esr_db(wet, pred), rtol=1e-9)
  np.testing.assert_allclose(got['rmse'], dsp.rmse(wet, pred), rtol=1e-9)
  np.testing.assert_allclose(got['identity_esr_db'], dsp.esr_db(wet, dry), rtol=1e-9)
  np.testing.assert_allclose(got['esr_db_vs_identity'],
                             dsp.esr_db(wet, pred) - dsp.esr_db(wet, dry), rtol=1e-9)
  single = _apply(metrics.AudioESRdBVsIdentity(), config, elements)
  assert single == {'esr_db_vs_identity': got['esr_db_vs_identity']}


def test_missing_dry_feature_is_a_clear_error():
  config = tfma.EvalConfig(model_specs=[tfma.ModelSpec(label_key='wet', prediction_key='wet')])
  element = metric_types.StandardMetricInputs(labels=np.ones(4), predictions={'wet': np.ones(4)},
                                              features={})
  with pytest.raises(ValueError, match='dry'):
    _apply(metrics.AudioESR(), config, [element, element])
