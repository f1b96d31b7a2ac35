"""One training process for tests/test_distributed_training.py (run as a subprocess).

    python -m tests.distributed_worker ARGS_JSON

ARGS_JSON: {"train": pattern, "eval": pattern, "serving": dir, "run": dir, "config": {...},
"logical_cpus": N (optional)}. TF_CONFIG / FXEMU_MIRRORED_DEVICES come from the environment.
"""
import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def main():
  args = json.loads(sys.argv[1])
  import tensorflow as tf
  if args.get('logical_cpus'):
    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args['logical_cpus'])
  from tfx.components.trainer.fn_args_utils import FnArgs
  from trainer import model
  model.run_fn(FnArgs(train_files=[args['train']], eval_files=[args['eval']],
                      serving_model_dir=args['serving'], model_run_dir=args['run'],
                      custom_config=args['config']))


if __name__ == '__main__':
  main()
