"""Model quality on a directory of dry/wet recordings, through the real pipeline.

    benchmarks/quality.py --data ../shared/seed-audio [--effect lowpass] [--json]

For each effect and protocol it prints ESR (dB), RMSE, train time and parameter count of:
  identity     output = input (doing nothing)
  fir          least-squares FIR (512 taps, 64 of them look-ahead) fitted by fxemu itself
               on the training material: the best linear model
  dense        the original project's fully connected baseline (trained by the pipeline)
  conv         the conv -> dense -> Conv1DTranspose model (trained by the pipeline)
  conv_agc     conv with the level-normalising front end (agc_strength=1), for compressors
  tcn          the causal gated dilated-convolution option
  wavenet      NAM-style layer arrays at the sample rate
  hybrid       wavenet conditioned by a causal conv-transpose path
(against Neural Amp Modeler, on a wall-clock budget: benchmarks/peers.py)
Protocols:
  A  train/eval on the synthetic signals, test on the whole piano piece (the original
     project's protocol)
  B  train/eval on the synthetic signals plus the first 60 % of the piano piece, test on
     the last 40 %
Every neural row is a full pipeline run (AudioExampleGen ... Evaluator) and its figures
are the Evaluator's. The models of one effect and protocol share one pipeline output
directory, so the data steps run once and later models hit the cache. The piano
predictions are written as WAV next to a spectrogram PNG (dry / wet / predicted / error)
under --out, and a second table shows where the remaining error is: the share of the error
energy and the ESR within each frequency band, and the worst passages (2 s segments).
With --json the last stdout line is one JSON object
{effect: {protocol: {model: {esr_db, rmse, train_seconds, params, bands, worst_passages}}}}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import emit_json, print_table, quiet_tensorflow  # noqa: E402
from schema import contract  # noqa: E402

PROTOCOLS = {'A': 1.0, 'B': 0.4}   # protocol -> test_tail (fraction of piano that is test)
# Model rows: name -> TrainConfig overrides (on top of --train).
MODEL_VARIANTS = {
    'dense': {'model': 'dense'},
    'conv': {'model': 'conv'},
    'conv_agc': {'model': 'conv', 'agc_strength': 1.0},
    'tcn': {'model': 'tcn'},
    'wavenet': {'model': 'wavenet'},
    'hybrid': {'model': 'hybrid'},
}
PASSAGE_SECONDS = 2.0
WORST_PASSAGES = 3


def linear_references(data, effect, test_patterns, test_tail):
  """Identity and least-squares FIR figures on the test tracks (summed over channels).

  The same references as the run report (:mod:`pipeline.report.evaluation`): the FIR has
  ``FIR_TAPS`` taps (``FIR_LOOKAHEAD`` of them ahead) and is fitted on every
  training track of the protocol.
  """
  from pipeline.report import evaluation
  summary = {'input_base': data, 'effect': effect, 'test_patterns': test_patterns,
             'test_tail': test_tail}
  training, tests = evaluation.load_pairs(summary)
  start = time.time()
  fir = evaluation.fir_references(training, tests)[('', '')]
  fir.update(train_seconds=time.time() - start, params=evaluation.FIR_TAPS)
  identity = evaluation.identity_references(tests)[('', '')]
  identity.update(train_seconds=0.0, params=0)
  return {'identity': identity, 'fir': fir}


def run_model(data, effect, protocol, model, out, train_overrides):
  """One full pipeline run; returns the Evaluator's figures and the model directory.

  The release gate is opened (every model is blessed) so that each row is measured the
  same way; the figures are the Evaluator's on the test split.
  """
  from pipeline import local_runner
  from pipeline import results
  from pipeline.configs import PipelineConfig
  from trainer.config import TrainConfig
  config = PipelineConfig(data_dir=data, effect=effect,
                          output_dir=os.path.join(out, 'runs', effect, protocol),
                          test_tail=PROTOCOLS[protocol], esr_threshold_db=100.0,
                          max_regression_db=100.0)
  train = TrainConfig(**{**train_overrides, **MODEL_VARIANTS[model]})
  local_runner.run(config, train)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  overall = result.metrics['overall']
  trainer_seconds = next((s.seconds for s in result.stages if s.name == 'Trainer'), float('nan'))
  model_dir = os.path.join(result.model_uri, 'Format-Serving')
  with open(os.path.join(model_dir, 'assets', contract.MODEL_INFO_FILE)) as f:
    params = json.load(f).get('parameter_count', 0)
  return ({'esr_db': overall['esr_db'], 'rmse': overall['rmse'],
           'train_seconds': trainer_seconds, 'params': int(params)}, model_dir)


def write_predictions(data, effect, protocol, model_dir, model, test_patterns, out):
  """Predicted piano WAV and a dry/wet/predicted/error spectrogram PNG per test pair.

  Returns the error breakdown over the test audio (all test pairs and channels):
  ``{'bands': [{hz, esr_db, error_share}], 'worst_passages': [{file, seconds, esr_db,
  error_share, level_db}]}``.
  """
  import numpy as np
  import tensorflow as tf
  from components.audio import dsp
  from components.audio import pairs as pairs_lib
  from components.audio import wav
  from pipeline.report.plots import plot_comparison
  loaded = tf.saved_model.load(model_dir)
  serve = loaded.signatures[contract.SERVING_SIGNATURE]
  targets, predictions, passages = [], [], []
  for pair in pairs_lib.find_pairs(data, effect):
    if not pairs_lib.matches_any(pair.name, test_patterns):
      continue
    dry, info = wav.read_wav(pair.pre_path)
    wet, _ = wav.read_wav(pair.post_path)
    n = min(len(dry), len(wet))
    outputs = serve(**{contract.AUDIO_INPUT: tf.constant(dry[:n].T)})
    predicted = outputs[contract.WET_OUTPUT].numpy().T
    cut = int(round(n * (1 - PROTOCOLS[protocol])))
    stem = os.path.join(out, 'predictions', f'{effect} - {protocol} - {model} - {pair.name}')
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    wav.write_wav(stem + '.wav', np.clip(predicted, -1, 1), info.sample_rate)
    plot_comparison(dry[cut:n, 0], wet[cut:n, 0], predicted[cut:, 0], info.sample_rate,
                    stem + '.png', title=f'{effect}, protocol {protocol}, {model}: {pair.name}')
    segment = int(PASSAGE_SECONDS * info.sample_rate)
    for c in range(wet.shape[1]):
      targets.append(wet[cut:n, c])
      predictions.append(predicted[cut:, c])
      starts, esr_db, _, level_db = dsp.esr_by_segment(wet[cut:n, c], predicted[cut:, c], segment)
      energy = np.add.reduceat((wet[cut:n, c].astype(np.float64) - predicted[cut:, c]) ** 2,
                               starts)
      passages += [(e, pair.name, c, (cut + s) / info.sample_rate, d, l)
                   for s, d, l, e in zip(starts, esr_db, level_db, energy)]
  if not targets:
    return {'bands': [], 'worst_passages': []}
  return error_breakdown(np.concatenate(targets), np.concatenate(predictions), passages,
                         info.sample_rate)


def error_breakdown(target, predicted, passages, sample_rate):
  """Per-band ESR/share of ``target - predicted`` and the passages holding most error.

  ``passages``: (error energy, file, channel, start s, ESR dB, level dB) per segment.
  """
  from components.audio import dsp
  esr_db, share = dsp.esr_by_band(target, predicted, sample_rate)
  edges = list(dsp.DEFAULT_BAND_EDGES_HZ) + [sample_rate / 2]
  bands = [{'hz': f'{edges[i]:.0f}-{edges[i + 1]:.0f}', 'esr_db': float(esr_db[i]),
            'error_share': float(share[i])} for i in range(len(esr_db))]
  total = sum(p[0] for p in passages) or 1.0
  worst = sorted(passages, key=lambda p: -p[0])[:WORST_PASSAGES]
  return {'bands': bands,
          'worst_passages': [{'file': name, 'channel': channel,
                              'seconds': f'{start:.0f}-{start + PASSAGE_SECONDS:.0f}',
                              'esr_db': float(db), 'error_share': float(energy / total),
                              'level_db': float(level)}
                             for energy, name, channel, start, db, level in worst]}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', required=True, help='directory of EFFECT - pre|post - NAME.wav')
  parser.add_argument('--effect', action='append', help='effect(s) to measure (default: all)')
  parser.add_argument('--models', default='dense,conv,conv_agc',
                      help=f'comma-separated rows: {", ".join(MODEL_VARIANTS)}')
  parser.add_argument('--protocols', default='A,B', help='comma-separated: A, B')
  parser.add_argument('--epochs', type=int, default=8,
                      help='epoch limit of every model (0 = the TrainConfig default)')
  parser.add_argument('--train', default='{}', help='JSON of extra TrainConfig overrides')
  parser.add_argument('--out', default='work/benchmarks/quality', help='runs and predictions')
  parser.add_argument('--json', action='store_true', help='last line: JSON of the figures')
  args = parser.parse_args(argv)
  quiet_tensorflow()
  from components.audio import pairs as pairs_lib
  from pipeline.configs import DEFAULT_TEST_PATTERN
  test_patterns = DEFAULT_TEST_PATTERN.split(',')
  effects = args.effect or sorted({p.effect for p in pairs_lib.find_pairs(args.data)})
  overrides = json.loads(args.train)
  if args.epochs:
    overrides['epochs'] = args.epochs
  models = args.models.split(',')
  unknown = [m for m in models if m not in MODEL_VARIANTS]
  if unknown:
    parser.error(f'unknown models {unknown}; choose from {list(MODEL_VARIANTS)}')
  figures, rows, band_rows, passage_rows = {}, [], [], []
  for effect in effects:
    for protocol in args.protocols.split(','):
      per_model = linear_references(args.data, effect, test_patterns, PROTOCOLS[protocol])
      for model in models:
        per_model[model], model_dir = run_model(args.data, effect, protocol, model, args.out,
                                                overrides)
        breakdown = write_predictions(args.data, effect, protocol, model_dir, model,
                                      test_patterns, args.out)
        per_model[model].update(breakdown)
        band_rows.append([effect, protocol, model] + [
            f'{b["esr_db"]:.1f} ({100 * b["error_share"]:.0f}%)' for b in breakdown['bands']])
        passage_rows += [[effect, protocol, model, p['file'], p['channel'], p['seconds'],
                          p['level_db'], p['esr_db'], f'{100 * p["error_share"]:.0f}%']
                         for p in breakdown['worst_passages']]
      identity_db = per_model['identity']['esr_db']
      for model, f in per_model.items():
        rows.append([effect, protocol, model, f['esr_db'], f['esr_db'] - identity_db, f['rmse'],
                     f['train_seconds'], f['params']])
      figures.setdefault(effect, {})[protocol] = per_model
  print_table(['effect', 'protocol', 'model', 'ESR dB', 'vs identity dB', 'RMSE',
               'train s', 'params'], rows)
  if band_rows:
    bands = figures[effects[0]][args.protocols.split(',')[0]][models[0]]['bands']
    print('\nwhere the error is, by frequency band (Hz): ESR dB within the band '
          '(share of the total error energy)')
    print_table(['effect', 'protocol', 'model'] + [b['hz'] for b in bands], band_rows)
    print(f'\nthe {WORST_PASSAGES} passages ({PASSAGE_SECONDS:.0f} s, one channel) holding the '
          'most error energy')
    print_table(['effect', 'protocol', 'model', 'file', 'ch', 'seconds', 'wet level dB',
                 'ESR dB', 'error share'], passage_rows)
  print(f'\npredictions and spectrograms: {os.path.join(args.out, "predictions")}')
  if args.json:
    emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
