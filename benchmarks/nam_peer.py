"""Trains Neural Amp Modeler (NAM) on prepared WAV pairs and writes its test predictions.

Runs inside the peer environment (``.venv-peers``, made by ``benchmarks/peers.py`` with
``neural-amp-modeler`` and a CPU build of torch); it never imports fxemu, and fxemu never
imports it. ``benchmarks/peers.py`` writes the job and scores the predictions with
fxemu's own ESR code, so both tools are measured the same way.

    .venv-peers/bin/python benchmarks/nam_peer.py JOB.json

JOB.json::

    {"train": [{"x": "dry.wav", "y": "wet.wav"}, ...],       # contiguous mono stretches
     "validation": [{"x": ..., "y": ...}, ...],
     "test": [{"x": "dry.wav", "out": "predicted-NAME.wav"}],  # whole mono tracks
     "seconds": 540, "outdir": "...", "seed": 0, "threads": 0}

NAM is used as its own simplified trainer sets it up (``nam.train.core``): its default
model (in 0.13 the packed WaveNet of ``config_model_packed.json``, two submodels trained
side by side), loss (ESR + 0.0005 x multi-resolution STFT), Adam at lr 0.004 with
ExponentialLR (gamma 0.994), batches of 16 x 8,192 output samples, validation every epoch,
the output normalised to -18 dBFS RMS for training (undone on the predictions), and the
best checkpoint of each submodel by validation loss. Only the stopping rule differs:
Lightning's ``max_time`` ends training after ``seconds`` of wall-clock time, the same
budget fxemu's Trainer gets.

Writes ``OUTDIR/nam_result.json``: per submodel, its name, parameter count, receptive
field (samples) and the test predictions (float32 mono WAV files named
``out`` with ``.SUBMODEL`` before the extension), plus epochs and steps run and the
training seconds.
"""
from __future__ import annotations

import json
import os
import sys
import time
import wave

import numpy as np


def _write_float_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """Mono float32 WAV (format 3), written without extra dependencies."""
  data = np.asarray(audio, '<f4').tobytes()
  header = b''.join([
      b'RIFF', (36 + len(data)).to_bytes(4, 'little'), b'WAVE',
      b'fmt ', (16).to_bytes(4, 'little'), (3).to_bytes(2, 'little'), (1).to_bytes(2, 'little'),
      int(sample_rate).to_bytes(4, 'little'), (4 * int(sample_rate)).to_bytes(4, 'little'),
      (4).to_bytes(2, 'little'), (32).to_bytes(2, 'little'),
      b'data', len(data).to_bytes(4, 'little')])
  tmp = path + '.tmp'
  with open(tmp, 'wb') as f:
    f.write(header + data)
  os.replace(tmp, path)


def _read_pcm_wav(path: str):
  """Mono 16/24/32-bit PCM WAV -> (float64 [samples], sample_rate)."""
  with wave.open(path, 'rb') as w:
    width, rate, frames = w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())
    if w.getnchannels() != 1:
      raise ValueError(f'{path}: expected mono, got {w.getnchannels()} channels')
  if width == 3:
    raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
    ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8)
            | (raw[:, 2].astype(np.int32) << 16))
    ints = np.where(ints >= 1 << 23, ints - (1 << 24), ints)
    return ints / float(1 << 23), rate
  dtype = {2: '<i2', 4: '<i4'}[width]
  return np.frombuffer(frames, dtype).astype(np.float64) / float(1 << (8 * width - 1)), rate


def main(job_path: str) -> int:
  with open(job_path) as f:
    job = json.load(f)
  if job.get('threads'):
    os.environ['OMP_NUM_THREADS'] = str(job['threads'])
  # pylint: disable=import-outside-toplevel
  import pytorch_lightning as pl
  import torch
  from torch.utils.data import DataLoader
  from nam.data import Split, apply_joint_dataset_hooks, get_joint_dataset_hooks, init_dataset
  from nam.train import core, full
  from nam.train import lightning_module
  if job.get('threads'):
    torch.set_num_threads(int(job['threads']))
  torch.manual_seed(int(job.get('seed', 0)))
  outdir = job['outdir']
  os.makedirs(outdir, exist_ok=True)

  # The simplified trainer's model and learning settings (nam.train.core._get_configs),
  # with our files in place of its standard capture signal and a wall-clock stop.
  model_config = core._get_packed_model_config()  # pylint: disable=protected-access
  no_pre_silence = {'require_input_pre_silence': None}
  data_config = {
      'train': [{'x_path': p['x'], 'y_path': p['y'], 'ny': core._NY_DEFAULT,  # pylint: disable=protected-access
                 **no_pre_silence} for p in job['train']],
      'validation': [{'x_path': p['x'], 'y_path': p['y'], 'ny': None, **no_pre_silence}
                     for p in job['validation']],
      'common': {'delay': 0, 'allow_unequal_lengths': False},
      'joint': [{'name': 'nam.data.normalize_joint_dataset_output',
                 'kwargs': {'level_rms_dbfs': -18.0}}],
  }
  seconds = float(job['seconds'])
  learning_config = {
      'train_dataloader': {'batch_size': 16, 'shuffle': True, 'pin_memory': False,
                           'drop_last': True, 'num_workers': 0},
      'val_dataloader': {},
      'trainer': {'max_epochs': -1, 'accelerator': 'cpu', 'devices': 1,
                  'max_time': {'seconds': seconds}, 'enable_progress_bar': False,
                  'logger': False},
  }

  module_cls = lightning_module.PackedLightningModule
  model = module_cls.init_from_config(model_config)
  data_config['common']['nx'] = model.net.receptive_field
  train_set = init_dataset(data_config, Split.TRAIN)
  validation_set = init_dataset(data_config, Split.VALIDATION)
  apply_joint_dataset_hooks(dataset_train=train_set, dataset_validation=validation_set,
                            hooks=get_joint_dataset_hooks(data_config['joint']))
  y_scale = train_set.datasets[0]._y_scale  # pylint: disable=protected-access
  model.net.sample_rate = train_set.sample_rate
  for dataset in (train_set, validation_set):
    dataset.handshake(model.net)
    model.net.handshake(dataset)
  train_loader = DataLoader(train_set, **learning_config['train_dataloader'])
  validation_loader = DataLoader(validation_set, **learning_config['val_dataloader'])
  callbacks = full._create_callbacks(learning_config, packed=True)  # pylint: disable=protected-access
  packed_best = next(c for c in callbacks if isinstance(c, lightning_module.PackedBestCheckpoint))
  trainer = pl.Trainer(callbacks=callbacks, default_root_dir=outdir,
                       **learning_config['trainer'])
  start = time.time()
  trainer.fit(model, train_loader, validation_loader)
  train_seconds = time.time() - start
  best = trainer.checkpoint_callback.best_model_path
  if best:
    model = module_cls.load_from_checkpoint(best, **module_cls.parse_config(model_config))
  model.cpu()
  model.eval()
  model.net.sample_rate = train_set.sample_rate
  core._apply_packed_best_checkpoints(model, model_config, packed_best.checkpoint_paths)  # pylint: disable=protected-access

  submodels = []
  with torch.no_grad():
    for index, name in enumerate(model.net.submodel_names):
      net = model.net.extract_submodel(index)
      net.eval()
      outputs = []
      for test in job['test']:
        x, rate = _read_pcm_wav(test['x'])
        y = net(torch.tensor(x, dtype=torch.float32), pad_start=True).numpy()
        stem, ext = os.path.splitext(test['out'])
        path = f'{stem}.{name}{ext}'
        _write_float_wav(path, y / y_scale, rate)
        outputs.append(path)
      submodels.append({'name': name, 'predictions': outputs,
                        'parameters': int(sum(p.numel() for p in net.parameters())),
                        'receptive_field_samples': int(net.receptive_field)})
  result = {'submodels': submodels, 'train_seconds': train_seconds,
            'epochs': int(trainer.current_epoch), 'steps': int(trainer.global_step),
            'output_scale': float(y_scale), 'nam_version': _nam_version(),
            'torch_version': torch.__version__, 'threads': torch.get_num_threads()}
  with open(os.path.join(outdir, 'nam_result.json'), 'w') as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result))
  return 0


def _nam_version() -> str:
  import nam  # pylint: disable=import-outside-toplevel
  return getattr(nam, '__version__', '?')


if __name__ == '__main__':
  sys.exit(main(sys.argv[1]))
