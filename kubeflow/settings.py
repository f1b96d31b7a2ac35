"""Cluster settings for running the fxemu pipeline on Kubeflow Pipelines / Vertex AI."""
from __future__ import annotations

import dataclasses


def _field(default, help_text):
  return dataclasses.field(default=default, metadata={'help': help_text})


@dataclasses.dataclass
class KubeflowSettings:
  """Where things live in the cluster and what each step may use."""
  image: str = _field('fxemu:latest', 'Container image every step runs in (built from '
                      'kubeflow/Dockerfile and pushed to a registry the cluster can pull from).')
  pipeline_root: str = _field('gs://YOUR_BUCKET/fxemu/pipelines', 'Where artifacts go: '
                              'gs://, s3:// or a path on a mounted volume (PVC).')
  data_root: str = _field('gs://YOUR_BUCKET/fxemu/data', 'Directory of the recordings as '
                          'the steps see it.')
  serving_root: str = _field('gs://YOUR_BUCKET/fxemu/serving', 'TF Serving model base '
                             'directories: the Pusher writes SERVING_ROOT/EFFECT/VERSION.')
  beam_args: str = _field('--direct_running_mode=multi_threading --direct_num_workers=0',
                          'Beam args of the Beam steps (e.g. --runner=DataflowRunner '
                          '--project=... --region=... --temp_location=gs://... '
                          '--setup_file=/fxemu/setup.py, or a Flink/Spark job endpoint).')
  trainer_gpus: int = _field(1, 'GPUs the Trainer asks for (0 = CPU only).')
  gpu_type: str = _field('nvidia.com/gpu', 'Accelerator type of the Trainer: the Kubernetes '
                         'resource name (self-hosted KFP) or a Vertex type like NVIDIA_TESLA_T4 '
                         '(required for GPUs with --trainer-workers > 1). Mixed precision on '
                         'GPUs: see --mixed-precision.')
  trainer_workers: int = _field(1, 'Training replicas. 1: the Trainer trains inside its '
                                'pipeline step. N > 1: the Trainer step submits a Vertex AI '
                                'Training CustomJob (TFX\'s google_cloud_ai_platform Trainer) '
                                'of 1 chief + N - 1 workers, each a TRAINER_MACHINE_TYPE with '
                                'TRAINER_GPUS of GPU_TYPE running the image, which train with '
                                'MultiWorkerMirroredStrategy and waits for it. Needs a gs:// '
                                'pipeline root and Google Cloud credentials in the step (Vertex '
                                'AI Pipelines, or KFP on GKE with Workload Identity).')
  trainer_machine_type: str = _field('n1-standard-8', 'Vertex AI machine type of each '
                                     'training replica (with --trainer-workers > 1).')
  vertex_project: str = _field('', 'Google Cloud project of the Vertex AI Training job '
                               '(required with --trainer-workers > 1).')
  vertex_region: str = _field('', 'Vertex AI region of the training job, e.g. europe-west4 '
                              '(required with --trainer-workers > 1).')
  trainer_cpu: float = _field(8.0, 'vCPUs of the Trainer step (with --trainer-workers > 1 '
                              'the step only submits and watches the job: 1 vCPU, 4 GB).')
  trainer_memory_gb: float = _field(32.0, 'Memory of the Trainer step, GB.')
  beam_cpu: float = _field(4.0, 'vCPUs of each Beam step (ExampleGen, StatisticsGen, Evaluator).')
  beam_memory_gb: float = _field(16.0, 'Memory of each Beam step, GB.')
  schema_file: str = _field('/fxemu/schema/schema.pbtxt', 'The curated schema as the steps '
                            'see it (kubeflow/Dockerfile copies the repository to /fxemu).')
  output_file: str = _field('fxemu_pipeline.json', 'Where the compiled KFP v2 pipeline spec '
                            'is written.')
