"""Model quality on a directory of dry/wet recordings, through the real pipeline.

    benchmarks/quality.py --data ../shared/seed-audio [--effect lowpass] [--json]

For each effect and protocol it prints ESR (dB), RMSE, train time and parameter count of:
  identity     output = input (doing nothing)
  fir          least-squares FIR (512 taps, 64 of them look-ahead) fitted by fxemu itself
               on the training material: the best linear model
  dense        the original project's fully connected baseline (trained by the pipeline)
  conv, ...    the neural models (trained by the pipeline)
Protocols:
  A  train/eval on the synthetic signals, test on the whole piano piece (the original
     project's protocol)
  B  train/eval on the synthetic signals plus the first 60 % of the piano piece, test on
     the last 40 %
Every neural row is a full pipeline run (AudioExampleGen ... Evaluator) and its figures
are the Evaluator's. The piano predictions are written as WAV next to a spectrogram PNG
(dry / wet / predicted / error) under --out. With --json the last stdout line is one
JSON object {effect: {protocol: {model: {esr_db, rmse, train_seconds, params}}}}.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import emit_json, print_table, quiet_tensorflow  # noqa: E402

PROTOCOLS = {'A': 1.0, 'B': 0.4}   # protocol -> test_tail (fraction of piano that is test)
FIR_TAPS, FIR_LOOKAHEAD = 512, 64


def _tracks(data, effect, test_patterns, test_tail):
  """(train_pairs, test_pairs): lists of (dry, wet) mono tracks for the protocol."""
  from components import pairs as pairs_lib
  from components import wav
  train, test = [], []
  for pair in pairs_lib.find_pairs(data, effect):
    dry, _ = wav.read_wav(pair.pre_path)
    wet, _ = wav.read_wav(pair.post_path)
    n = min(len(dry), len(wet))
    is_test = pairs_lib.matches_any(pair.name, test_patterns)
    cut = int(round(n * (1 - test_tail))) if is_test else n
    for c in range(dry.shape[1]):
      if cut > 0:
        train.append((dry[:cut, c], wet[:cut, c]))
      if is_test:
        test.append((dry[cut:n, c], wet[cut:n, c]))
  return train, test


def linear_references(data, effect, test_patterns, test_tail):
  """Identity and least-squares FIR figures on the test tracks (summed over channels)."""
  import numpy as np
  from components import dsp
  train, test = _tracks(data, effect, test_patterns, test_tail)
  start = time.time()
  fir = dsp.fit_fir([d for d, _ in train], [w for _, w in train], FIR_TAPS, FIR_LOOKAHEAD)
  fir_seconds = time.time() - start
  def figures(predict):
    err = sum(float(np.sum((w.astype(np.float64) - predict(d)) ** 2)) for d, w in test)
    energy = sum(float(np.sum(w.astype(np.float64) ** 2)) for _, w in test)
    samples = sum(len(w) for _, w in test)
    return {'esr_db': dsp.to_db(err / energy), 'rmse': float(np.sqrt(err / samples))}
  identity = figures(lambda d: d.astype(np.float64))
  identity.update(train_seconds=0.0, params=0)
  linear = figures(lambda d: dsp.apply_fir(d, fir, FIR_LOOKAHEAD).astype(np.float64))
  linear.update(train_seconds=fir_seconds, params=FIR_TAPS)
  return {'identity': identity, 'fir': linear}


def run_model(data, effect, protocol, model, out, train_overrides):
  """One full pipeline run; returns the Evaluator's figures and the model directory."""
  from pipeline import local_runner
  from pipeline import results
  from pipeline.configs import PipelineConfig
  from trainer.config import TrainConfig
  config = PipelineConfig(data_dir=data, effect=effect,
                          output_dir=os.path.join(out, 'runs', effect, protocol, model),
                          test_tail=PROTOCOLS[protocol], esr_threshold_db=100.0)
  train = TrainConfig(model=model, **train_overrides)
  local_runner.run(config, train)
  result = results.read_run(config.metadata_path, config.pipeline_name)
  overall = result.metrics['overall']
  trainer_seconds = next((s.seconds for s in result.stages if s.name == 'Trainer'), float('nan'))
  model_dir = os.path.join(result.model_uri, 'Format-Serving')
  with open(os.path.join(model_dir, 'assets', 'fxemu.json')) as f:
    params = json.load(f).get('parameter_count', 0)
  return ({'esr_db': overall['esr_db'], 'rmse': overall['rmse'],
           'train_seconds': trainer_seconds, 'params': int(params)}, model_dir)


def write_predictions(data, effect, protocol, model_dir, model, test_patterns, out):
  """Predicted piano WAV and a dry/wet/predicted/error spectrogram PNG."""
  import numpy as np
  import tensorflow as tf
  from components import pairs as pairs_lib
  from components import wav
  from benchmarks.spectrograms import plot_comparison
  loaded = tf.saved_model.load(model_dir)
  serve = loaded.signatures['serving_default']
  paths = []
  for pair in pairs_lib.find_pairs(data, effect):
    if not pairs_lib.matches_any(pair.name, test_patterns):
      continue
    dry, info = wav.read_wav(pair.pre_path)
    wet, _ = wav.read_wav(pair.post_path)
    n = min(len(dry), len(wet))
    predicted = serve(audio=tf.constant(dry[:n].T))['wet'].numpy().T
    cut = int(round(n * (1 - PROTOCOLS[protocol])))
    stem = os.path.join(out, 'predictions', f'{effect} - {protocol} - {model} - {pair.name}')
    os.makedirs(os.path.dirname(stem), exist_ok=True)
    wav.write_wav(stem + '.wav', np.clip(predicted, -1, 1), info.sample_rate)
    plot_comparison(dry[cut:n, 0], wet[cut:n, 0], predicted[cut:, 0], info.sample_rate,
                    stem + '.png', title=f'{effect}, protocol {protocol}, {model}: {pair.name}')
    paths.append(stem + '.png')
  return paths


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--data', required=True, help='directory of EFFECT - pre|post - NAME.wav')
  parser.add_argument('--effect', action='append', help='effect(s) to measure (default: all)')
  parser.add_argument('--models', default='dense,conv', help='comma-separated models')
  parser.add_argument('--protocols', default='A,B', help='comma-separated: A, B')
  parser.add_argument('--epochs', type=int, default=None, help='override the epoch limit')
  parser.add_argument('--train', default='{}', help='JSON of extra TrainConfig overrides')
  parser.add_argument('--out', default='work/benchmarks/quality', help='runs and predictions')
  parser.add_argument('--json', action='store_true', help='last line: JSON of the figures')
  args = parser.parse_args(argv)
  quiet_tensorflow()
  from components import pairs as pairs_lib
  from pipeline.configs import DEFAULT_TEST_PATTERN
  test_patterns = DEFAULT_TEST_PATTERN.split(',')
  effects = args.effect or sorted({p.effect for p in pairs_lib.find_pairs(args.data)})
  overrides = json.loads(args.train)
  if args.epochs:
    overrides['epochs'] = args.epochs
  figures, rows = {}, []
  for effect in effects:
    for protocol in args.protocols.split(','):
      per_model = linear_references(args.data, effect, test_patterns, PROTOCOLS[protocol])
      for model in args.models.split(','):
        per_model[model], model_dir = run_model(args.data, effect, protocol, model, args.out,
                                                overrides)
        write_predictions(args.data, effect, protocol, model_dir, model, test_patterns, args.out)
      identity_db = per_model['identity']['esr_db']
      for model, f in per_model.items():
        rows.append([effect, protocol, model, f['esr_db'], f['esr_db'] - identity_db, f['rmse'],
                     f['train_seconds'], f['params']])
      figures.setdefault(effect, {})[protocol] = per_model
  print_table(['effect', 'protocol', 'model', 'ESR dB', 'vs identity dB', 'RMSE',
               'train s', 'params'], rows)
  print(f'\npredictions and spectrograms: {os.path.join(args.out, "predictions")}')
  if args.json:
    emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
