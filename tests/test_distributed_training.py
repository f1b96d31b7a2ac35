"""Real distributed training on CPU: two workers over 127.0.0.1, and MirroredStrategy.

Each run is a separate process (a TensorFlow runtime can join one cluster only). The
models must match single-worker training with the same global batch to a tolerance.
"""
import json
import os
import subprocess
import sys

import numpy as np
import portpicker
import pytest
import tensorflow as tf

from components import dsp
from tests.conftest import REPO
from trainer import testing
from trainer.config import TrainConfig

SR = 16000
WINDOW, CONTEXT, HOP = 2048, 512, 1024
PER_REPLICA_BATCH = 4
CONFIG = dict(sample_rate=SR, window_samples=WINDOW, context_samples=CONTEXT, conv_stride=16,
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


def _launch(tmp_path, dataset, name, batch_size, env=None, logical_cpus=0):
  config = TrainConfig(**dict(CONFIG, batch_size=batch_size)).to_custom_config()
  args = {'train': dataset['train'], 'eval': dataset['eval'],
          'serving': str(tmp_path / name / 'serving'), 'run': str(tmp_path / name / 'run'),
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


def test_two_workers_on_localhost_match_single_worker(tmp_path, dataset, reference):
  ports = [portpicker.pick_unused_port() for _ in range(2)]
  cluster = {'chief': [f'127.0.0.1:{ports[0]}'], 'worker': [f'127.0.0.1:{ports[1]}']}
  processes = [
      _launch(tmp_path, dataset, kind, PER_REPLICA_BATCH, env={'TF_CONFIG': json.dumps(
          {'cluster': cluster, 'task': {'type': kind, 'index': 0}})})
      for kind in ('chief', 'worker')]
  _wait(*processes)
  chief = str(tmp_path / 'chief' / 'serving')
  assert os.path.isfile(os.path.join(chief, 'saved_model.pb'))
  assert not os.path.exists(tmp_path / 'worker' / 'serving'), 'only the chief exports'
  _compare(reference, chief)


def test_mirrored_strategy_over_two_logical_cpus_matches_single_worker(tmp_path, dataset,
                                                                      reference):
  _wait(_launch(tmp_path, dataset, 'mirrored', PER_REPLICA_BATCH, logical_cpus=2,
                env={'FXEMU_MIRRORED_DEVICES': '/cpu:0,/cpu:1'}))
  _compare(reference, str(tmp_path / 'mirrored' / 'serving'))
  with open(tmp_path / 'mirrored' / 'run' / 'fxemu_training.json') as f:
    assert json.load(f).get('replicas', 2) == 2
