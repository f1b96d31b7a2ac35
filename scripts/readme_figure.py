"""The README's picture: dry / wet / predicted / error spectrograms of the default run.

    .venv/bin/python scripts/readme_figure.py [--output-dir work] [--effect overdrive]

Uses the newest model pushed by ``make run`` and the piano test piece of the default data
(both made by fxemu itself), and writes ``docs/spectrograms.png``.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

SECONDS = 8.0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output-dir', default='work', help='the run\'s --output-dir')
  parser.add_argument('--effect', default='overdrive')
  parser.add_argument('--out', default=os.path.join('docs', 'spectrograms.png'))
  args = parser.parse_args(argv)
  import tensorflow as tf
  from components.audio import dsp
  from components.audio import wav
  from pipeline.report import plots
  from schema import contract
  base = os.path.join(args.output_dir, 'serving', args.effect)
  versions = sorted((v for v in os.listdir(base) if v.isdigit()), key=int)
  if not versions:
    parser.error(f'{base}: no pushed model; run `make run` first')
  data = os.path.join(args.output_dir, 'data')
  dry, info = wav.read_wav(os.path.join(data, f'{args.effect} - pre - piano.wav'))
  wet, _ = wav.read_wav(os.path.join(data, f'{args.effect} - post - piano.wav'))
  n = min(len(dry), len(wet), int(SECONDS * info.sample_rate))
  model = tf.saved_model.load(os.path.join(base, versions[-1]))
  signature = model.signatures[contract.SERVING_SIGNATURE]
  predicted = signature(**{contract.AUDIO_INPUT: tf.constant(dry[:n].T)})[
      contract.WET_OUTPUT].numpy().T
  title = (f'{args.effect}, piano test piece (never trained on): ESR '
           f'{dsp.esr_db(wet[:n], predicted):.1f} dB (output = input: '
           f'{dsp.esr_db(wet[:n], dry[:n]):.1f} dB)')
  plots.plot_comparison(dry[:n, 0], wet[:n, 0], predicted[:, 0], info.sample_rate, args.out,
                        title=title)
  print(args.out)
  return 0


if __name__ == '__main__':
  sys.exit(main())
