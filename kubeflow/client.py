"""``fxemu kubeflow``: compile the pipeline and hand it to a self-hosted Kubeflow Pipelines 2.x.

    fxemu kubeflow compile [settings]                       -> KFP v2 pipeline spec (JSON)
    fxemu kubeflow upload --endpoint URL [settings]         -> uploads it as a pipeline
    fxemu kubeflow run --endpoint URL [--experiment NAME]   -> uploads and starts a run

For Vertex AI Pipelines use TFX's own CLI with the same compiler:
    tfx pipeline create --engine vertex --pipeline_path kubeflow/runner.py
"""
from __future__ import annotations

import argparse
import sys
import time

from kubeflow.settings import KubeflowSettings
from pipeline.configs import PipelineConfig
from pipeline.flags import add_dataclass_flags
from pipeline.flags import dataclass_from_flags
from pipeline.flags import TRAIN_FIELDS_SET_BY_PIPELINE
from trainer.config import TrainConfig


def _client(endpoint: str, namespace: str):
  import kfp  # pylint: disable=import-outside-toplevel  (start-up: kfp)
  return kfp.Client(host=endpoint, namespace=namespace or None)


def _compile(args):
  from kubeflow import runner  # pylint: disable=import-outside-toplevel  (start-up: TFX)
  path = runner.compile_pipeline(dataclass_from_flags(PipelineConfig, args),
                                 dataclass_from_flags(TrainConfig, args),
                                 dataclass_from_flags(KubeflowSettings, args))
  print(f'pipeline spec: {path}')
  return path


def _upload(args):
  path = _compile(args)
  client = _client(args.endpoint, args.namespace)
  name = args.pipeline_name or f'fxemu-{args.effect or "overdrive"}'
  existing = client.get_pipeline_id(name)
  if existing:
    version = client.upload_pipeline_version(path, pipeline_version_name=f'{name}-{_stamp()}',
                                             pipeline_id=existing)
    print(f'uploaded a new version of pipeline {name}: {version.pipeline_version_id}')
  else:
    pipeline = client.upload_pipeline(path, pipeline_name=name)
    print(f'uploaded pipeline {name}: {pipeline.pipeline_id}')
  return path, client


def _run(args):
  path, client = _upload(args)
  run = client.create_run_from_pipeline_package(
      path, arguments={}, experiment_name=args.experiment, enable_caching=True)
  print(f'started run {run.run_id} in experiment {args.experiment}')
  return 0


def _stamp():
  return time.strftime('%Y%m%d-%H%M%S')


def add_kubeflow_command(commands) -> None:
  """Registers ``fxemu kubeflow compile|upload|run``."""
  kubeflow = commands.add_parser(
      'kubeflow', help='compile/upload/run the pipeline on Kubeflow Pipelines 2.x',
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  actions = kubeflow.add_subparsers(dest='action', required=True, metavar='ACTION')
  for action, func, text in (('compile', _compile, 'write the KFP v2 pipeline spec'),
                             ('upload', _upload, 'compile and upload it with kfp.Client'),
                             ('run', _run, 'compile, upload and start a run')):
    parser = actions.add_parser(action, help=text, description=text)
    if action != 'compile':
      parser.add_argument('--endpoint', required=True,
                          help='Kubeflow Pipelines API URL, e.g. http://localhost:8080')
      parser.add_argument('--namespace', default='', help='Kubeflow namespace (multi-user)')
      parser.add_argument('--pipeline-name', default='', help='name in the KFP UI')
    if action == 'run':
      parser.add_argument('--experiment', default='fxemu', help='KFP experiment')
    add_dataclass_flags(parser, KubeflowSettings, 'cluster')
    # On the cluster, Beam args and the artifact root come from the cluster settings.
    add_dataclass_flags(parser, PipelineConfig, 'data and pipeline',
                        skip=('beam_args', 'output_dir'))
    add_dataclass_flags(parser, TrainConfig, 'model and training',
                        skip=TRAIN_FIELDS_SET_BY_PIPELINE)
    parser.set_defaults(func=lambda args, f=func: (f(args), 0)[1])


if __name__ == '__main__':
  sys.exit('use: fxemu kubeflow ...')
