"""Runs the pipeline in its own process (for the kill-and-resume test).

    python -m tests.pipeline_process '{"pipeline": {...PipelineConfig}, "train": {...TrainConfig}}'
"""
import json
import os
import sys

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')


def main():
  from pipeline import local_runner
  from pipeline.configs import PipelineConfig
  from trainer.config import TrainConfig
  args = json.loads(sys.argv[1])
  local_runner.run(PipelineConfig(**args['pipeline']),
                   TrainConfig.from_custom_config(args['train']))


if __name__ == '__main__':
  main()
