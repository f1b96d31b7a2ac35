"""Real distributed training on CPU: two workers over 127.0.0.1, and MirroredStrategy.

Each run is a separate process (a TensorFlow runtime can join one cluster only). The
models must match single-worker training with the same global batch to a tolerance.
The two workers get their cluster from Vertex AI's CLUSTER_SPEC (made into a TF_CONFIG).
"""
import json
import os
import subprocess
import sys
import time

import numpy as np
import portpicker
import pytest
import tensorflow as tf

from components.audio import dsp
from tests.conftest import REPO
from trainer import distribute
from trainer import testing
from trainer.config import TrainConfig

SR = 16000
WINDOW, CONTEXT, HOP = 2048, 512, 1024
PER_REPLICA_BATCH = 4
CONFIG = dict(model='conv', train_seconds=0,
              sample_rate=SR, window_samples=WINDOW, context_samples=CONTEXT, conv_stride=16,
              conv_kernel=32, latent_channels=8, latent_dilations=(1, 2), fir_taps=32,
              fir_init='zeros', epochs=10, early_stopping_patience=0, learning_rate=1e-2,
              warmup_steps=5, seed=3)
FIR = testing.lowpass_fir(31, 0.15)


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('data'))
  tracks = {s: {k: (x, testing.apply_causal_fir(x, FIR)) for k, x in d.items()}
            for s, d in {'train': {f'n{i}': testing.noise(3 * SR, i) for i in range(2)},
                         'eval': {'e': testing.noise(SR, 10)},
                         'test': {'t': testing.noise(SR, 11)}}.items()}
  return testing.write_dataset(root, tracks, WINDOW, CONTEXT, HOP, SR)


def _launch(tmp_path, dataset, name, batch_size, env=None, logical_cpus=0, outputs=None):
  config = TrainConfig(**dict(CONFIG, batch_size=batch_size)).to_custom_config()
  args = {'train': dataset['train'], 'eval': dataset['eval'],
          'serving': str(tmp_path / (outputs or name) / 'serving'),
          'run': str(tmp_path / (outputs or name) / 'run'),
          'config': config, 'logical_cpus': logical_cpus}
  environment = dict(os.environ, PYTHONPATH=REPO, **(env or {}))
  return subprocess.Popen([sys.executable, '-m', 'tests.distributed_worker', json.dumps(args)],
                          cwd=REPO, env=environment, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def _wait(*processes, timeout=300):
  for process in processes:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, out[-3000:]


def _predict(path, audio):
  loaded = tf.saved_model.load(path)
  return loaded.signatures['serving_default'](audio=tf.constant(audio[None]))['wet'].numpy()[0]


@pytest.fixture(scope='module')
def reference(tmp_path_factory, dataset):
  """Single-process training with the global batch of two replicas."""
  tmp = tmp_path_factory.mktemp('single')
  _wait(_launch(tmp, dataset, 'single', 2 * PER_REPLICA_BATCH))
  return str(tmp / 'single' / 'serving')


def _compare(reference, candidate):
  audio = testing.noise(SR, 42)
  target = testing.apply_causal_fir(audio, FIR)
  ref, got = _predict(reference, audio), _predict(candidate, audio)
  ref_db, got_db = dsp.esr_db(target, ref), dsp.esr_db(target, got)
  assert ref_db < -10, f'single-worker training did not learn ({ref_db:.1f} dB)'
  assert abs(got_db - ref_db) < 3.0, (ref_db, got_db)
  assert dsp.esr_db(ref, got) < -15  # the two models agree sample by sample


def _cluster_env(variable, task_type, addresses):
  """TF_CONFIG (chief/worker), or CLUSTER_SPEC as Vertex AI sets it (workerpool0/1)."""
  if variable == 'TF_CONFIG':
    cluster = {'chief': addresses[:1], 'worker': addresses[1:]}
    return {'TF_CONFIG': json.dumps({'cluster': cluster, 'task': {'type': task_type,
                                                                  'index': 0}})}
  pool = {'chief': 'workerpool0', 'worker': 'workerpool1'}[task_type]
  cluster = {'workerpool0': addresses[:1], 'workerpool1': addresses[1:]}
  return {'CLUSTER_SPEC': json.dumps({'cluster': cluster, 'environment': 'cloud',
                                      'task': {'type': pool, 'index': 0}})}


# Only CLUSTER_SPEC, as Vertex AI sets it: it becomes the TF_CONFIG a TFJob would set
# (tested below without a cluster), so a second two-worker run with TF_CONFIG itself would
# run the same code for another 100 s of CI.
@pytest.mark.parametrize('variable', ['CLUSTER_SPEC'])
def test_two_workers_on_localhost_match_single_worker(tmp_path, dataset, reference, variable):
  # As on Vertex AI Training, both replicas get the same output directories; each has
  # its own TMPDIR, where a non-chief writes its scratch copies.
  addresses = [f'127.0.0.1:{portpicker.pick_unused_port()}' for _ in range(2)]
  scratch = {kind: tmp_path / f'tmp-{kind}' for kind in ('chief', 'worker')}
  processes = []
  for kind in ('chief', 'worker'):
    scratch[kind].mkdir()
    env = dict(_cluster_env(variable, kind, addresses), TMPDIR=str(scratch[kind]))
    env.pop('TF_CONFIG' if variable == 'CLUSTER_SPEC' else 'CLUSTER_SPEC', None)
    processes.append(_launch(tmp_path, dataset, kind, PER_REPLICA_BATCH, env=env,
                             outputs='cluster'))
  _wait(*processes)
  chief = str(tmp_path / 'cluster' / 'serving')
  assert os.path.isfile(os.path.join(chief, 'saved_model.pb'))
  assert not [p for p in os.listdir(scratch['worker']) if p.startswith('fxemu-')], \
      'the worker deletes its scratch copies'
  _compare(reference, chief)


def test_mirrored_strategy_over_two_logical_cpus_matches_single_worker(tmp_path, dataset,
                                                                      reference):
  _wait(_launch(tmp_path, dataset, 'mirrored', PER_REPLICA_BATCH, logical_cpus=2,
                env={'FXEMU_MIRRORED_DEVICES': '/cpu:0,/cpu:1'}))
  _compare(reference, str(tmp_path / 'mirrored' / 'serving'))
  with open(tmp_path / 'mirrored' / 'run' / 'fxemu_training.json') as f:
    assert json.load(f).get('replicas', 2) == 2


def test_cluster_spec_of_vertex_ai_becomes_a_tf_config(monkeypatch):
  spec = {'cluster': {'workerpool0': ['cmle-training-workerpool0-x-0:2222'],
                      'workerpool1': ['cmle-training-workerpool1-x-0:2222',
                                      'cmle-training-workerpool1-x-1:2222']},
          'environment': 'cloud', 'task': {'type': 'workerpool1', 'index': 1},
          'job': '{"worker_pool_specs": []}'}
  config = distribute.tf_config_from_cluster_spec(spec)
  assert config == {'cluster': {'chief': spec['cluster']['workerpool0'],
                                'worker': spec['cluster']['workerpool1']},
                    'task': {'type': 'worker', 'index': 1}}
  assert distribute.strategy_kind(config, num_gpus=0) == distribute.MULTI_WORKER
  assert not distribute.is_chief(config)
  monkeypatch.delenv('TF_CONFIG', raising=False)
  monkeypatch.setenv('CLUSTER_SPEC', json.dumps(spec))
  assert distribute.tf_config() == config
  # TF_CONFIG wins when both are set (Vertex sets both on distributed jobs).
  tf_config = {'cluster': {'chief': ['a:1'], 'worker': ['b:1']}, 'task': {'type': 'chief'}}
  monkeypatch.setenv('TF_CONFIG', json.dumps(tf_config))
  assert distribute.tf_config() == tf_config and distribute.is_chief()


def test_single_replica_cluster_spec_is_not_multi_worker(monkeypatch):
  # A one-replica Vertex job: CLUSTER_SPEC names only the primary pool.
  spec = {'cluster': {'workerpool0': ['host:2222']}, 'task': {'type': 'workerpool0', 'index': 0}}
  monkeypatch.delenv('TF_CONFIG', raising=False)
  monkeypatch.setenv('CLUSTER_SPEC', json.dumps(spec))
  config = distribute.tf_config()
  assert distribute.num_workers(config) == 1 and distribute.is_chief(config)
  assert distribute.strategy_kind(config, num_gpus=0) == distribute.DEFAULT
  assert distribute.tf_config_from_cluster_spec({}) == {}


def test_non_chief_waits_for_the_chiefs_model(tmp_path):
  chief_dir = tmp_path / 'serving'
  worker = {'cluster': {'chief': ['a:1'], 'worker': ['b:1']},
            'task': {'type': 'worker', 'index': 0}}
  scratch = distribute.write_dir(str(chief_dir), worker)
  assert scratch != str(chief_dir) and os.path.isdir(scratch)
  distribute.cleanup_write_dir(str(chief_dir), scratch)
  assert not os.path.exists(scratch)
  started = time.monotonic()
  distribute.wait_for_chief(str(chief_dir), scratch, timeout=0.5)   # no chief: gives up
  assert 0.4 < time.monotonic() - started < 10
  started = time.monotonic()
  distribute.wait_for_chief(str(chief_dir), str(chief_dir), timeout=60)   # the chief itself
  chief_dir.mkdir()
  distribute.wait_for_chief(str(chief_dir), scratch, timeout=60)   # the chief's is there
  assert time.monotonic() - started < 1
