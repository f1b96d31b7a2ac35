"""The fxemu Trainer outside the pipeline, for several workers on a self-hosted cluster.

    python -m kubeflow.train_job --examples URI --model-dir DIR [--run-dir DIR] [options]

Runs ``trainer.model.run_fn`` (what the pipeline's Trainer step runs) on the examples an
``AudioExampleGen`` wrote (``URI/Split-train``, ``URI/Split-eval``). Every replica of a
Kubeflow Training Operator TFJob (``kubeflow/tfjob-trainer.yaml``) runs this same command;
the operator sets ``TF_CONFIG`` on each, so they train with MultiWorkerMirroredStrategy,
the chief writes the SavedModel to ``--model-dir`` and the others wait for it. The
model-and-training options are those of ``fxemu run``, plus the window geometry in
samples, which must match the examples (run_fn checks it).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

from pipeline.flags import add_dataclass_flags  # pylint: disable=wrong-import-position
from pipeline.flags import dataclass_from_flags  # pylint: disable=wrong-import-position
from trainer.config import TrainConfig


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m kubeflow.train_job', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--examples', required=True,
                      help='URI of an AudioExampleGen Examples artifact (has Split-train/)')
  parser.add_argument('--model-dir', required=True,
                      help='where the chief writes the SavedModel (a gs:// or shared path)')
  parser.add_argument('--run-dir', default='',
                      help='TensorBoard logs and the training summary (default: '
                      'MODEL_DIR-run)')
  parser.add_argument('--train-steps', type=int, default=0,
                      help='upper bound on optimizer steps (0 = epochs only)')
  add_dataclass_flags(parser, TrainConfig, 'model and training')
  return parser


def fn_args(args: argparse.Namespace):
  """The TFX FnArgs run_fn receives in the pipeline, from the command line."""
  from tfx.components.trainer.fn_args_utils import FnArgs  # start-up: TFX
  examples = args.examples.rstrip('/')
  return FnArgs(train_files=[f'{examples}/Split-train/*'],
                eval_files=[f'{examples}/Split-eval/*'],
                train_steps=args.train_steps or None, eval_steps=None,
                serving_model_dir=args.model_dir,
                model_run_dir=args.run_dir or args.model_dir.rstrip('/') + '-run',
                custom_config=dataclass_from_flags(TrainConfig, args).to_custom_config())


def main(argv: Optional[List[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  from trainer import model  # pylint: disable=import-outside-toplevel  (start-up: TFX)
  model.run_fn(fn_args(args))
  return 0


if __name__ == '__main__':
  sys.exit(main())
