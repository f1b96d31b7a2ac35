"""Input pipeline cost: training steps/s fed by trainer.data against tensors in memory.

    python benchmarks/input_pipeline.py [--examples DIR] [--effect lowpass] [--model conv]
                                        [--epochs 2] [--json]

The default model (TrainConfig defaults, the pipeline's 0.5 s windows and 0.25 s
context, batch 8) is compiled as ``trainer.model.run_fn`` compiles it, then trained:

* ``in memory``: from one batch already in memory (``Dataset.from_tensors(batch).repeat()``):
  the model's own speed, no input work;
* ``tf.data, first epoch``: ``trainer.data.make_dataset`` on the GZIP TFRecords, as
  ``run_fn`` builds it (read, inflate, parse, cache, shuffle, batch, prefetch; repeat),
  the pass that reads the files and fills the cache;
* ``tf.data, later epochs``: the same dataset once cached.

Each is a ``model.fit`` of whole epochs of the training split (the in-memory rows are
measured before and after the tf.data rows, their mean is the reference). ``cost`` =
1 - (steps/s fed by tf.data) / (steps/s from memory) (goal: <= 10 %). ``training run``
weights the first epoch and later ones as a run of ``--run-epochs`` epochs does.
A ``tf.data alone`` row drains the pipeline with no model: how much faster than the
model it can deliver. The examples are made by the AudioExampleGen (in-process Beam)
from the default data unless ``--examples`` points at an Examples artifact's folder.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Dict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def make_examples(effect: str, scratch: str, data_dir: str = '') -> str:
  """Runs the AudioExampleGen on the default data; returns the Examples folder."""
  data = common.default_data(effect, scratch, data_dir)
  out = os.path.join(scratch, 'examples')
  common.run_example_gen(common.example_gen_props(data, effect), out,
                         ['--direct_running_mode=in_memory'])
  return out


def train_config(model: str, **overrides):
  """TrainConfig with the pipeline's data contract (window/context of PipelineConfig)."""
  from pipeline.configs import PipelineConfig  # pylint: disable=import-outside-toplevel
  from trainer.config import TrainConfig  # pylint: disable=import-outside-toplevel
  pipeline = PipelineConfig()
  return TrainConfig(model=model, sample_rate=pipeline.sample_rate,
                     window_samples=pipeline.samples(pipeline.window_seconds),
                     context_samples=pipeline.samples(pipeline.context_seconds), **overrides)


def compiled_model(config, total_steps: int):
  """The training model, compiled as trainer.model.run_fn compiles it."""
  import tf_keras as keras  # pylint: disable=import-outside-toplevel
  from trainer import losses  # pylint: disable=import-outside-toplevel
  from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
  from trainer import train_metrics  # pylint: disable=import-outside-toplevel
  keras.utils.set_random_seed(config.seed)
  core, model, skip = model_lib.build_for_training(config)
  if skip:   # The whole model for the FLOPs per sample, as exported.
    core = model_lib.float32_copy(core, config)
  model.compile(optimizer=model_lib.make_optimizer(config, total_steps),
                loss=losses.make_loss(config),
                metrics=[train_metrics.ESR(), train_metrics.ESRdB()])
  return core, model


class EpochTimes:
  """Keras callback factory: wall time of every epoch."""

  def __new__(cls):
    import tf_keras as keras  # pylint: disable=import-outside-toplevel

    class _Times(keras.callbacks.Callback):
      def __init__(self):
        super().__init__()
        self.seconds = []

      def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

      def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
    return _Times()


def measure(examples: str, model_name: str, epochs: int, run_epochs: int) -> Dict:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from trainer import architectures  # pylint: disable=import-outside-toplevel
  from trainer import data  # pylint: disable=import-outside-toplevel
  from trainer import model as model_lib  # pylint: disable=import-outside-toplevel
  config = train_config(model_name)
  train_files = os.path.join(examples, 'Split-train')
  num_train = data.count_examples(train_files)
  steps = num_train // config.batch_size
  core, model = compiled_model(config, steps * (2 * epochs + 2))
  crop = model_lib.input_crop(config)   # the context the model cannot use, as run_fn drops it
  dry, wet = data.take_numpy(train_files, config, config.batch_size, crop=crop)
  in_memory = tf.data.Dataset.from_tensors((dry, wet)).repeat()

  def fit(dataset, n_epochs):
    times = EpochTimes()
    model.fit(dataset, epochs=n_epochs, steps_per_epoch=steps, verbose=0, callbacks=[times])
    return times.seconds

  fit(in_memory, 1)                                 # warm-up: tracing, kernel selection
  memory_before = fit(in_memory, epochs)
  real = data.make_dataset(train_files, config, config.batch_size, training=True, repeat=True,
                           crop=crop)
  real_times = fit(real, 1 + epochs)
  memory_after = fit(in_memory, epochs)
  memory_sps = steps * 2 * epochs / (sum(memory_before) + sum(memory_after))
  first_sps = steps / real_times[0]
  later_sps = steps * epochs / sum(real_times[1:])
  run_seconds = steps / first_sps + (run_epochs - 1) * steps / later_sps
  run_sps = steps * run_epochs / run_seconds

  # tf.data alone: a fresh dataset drained twice (first pass fills the cache).
  drain = data.make_dataset(train_files, config, config.batch_size, training=True, repeat=True,
                            crop=crop)
  iterator = iter(drain)
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  drain_first = steps / (time.perf_counter() - start)
  start = time.perf_counter()
  for _ in range(steps):
    next(iterator)
  drain_later = steps / (time.perf_counter() - start)

  from benchmarks.apply_speed import flops_per_sample  # pylint: disable=import-outside-toplevel
  return {
      'model': model_name, 'parameters': architectures.parameter_count(core),
      'flops_per_output_sample': flops_per_sample(core, config.sample_rate),
      'train_examples': num_train, 'batch_size': config.batch_size,
      'steps_per_epoch': steps, 'epochs_measured': epochs,
      'memory_steps_per_s': memory_sps,
      'memory_steps_per_s_before': steps * epochs / sum(memory_before),
      'memory_steps_per_s_after': steps * epochs / sum(memory_after),
      'tfdata_first_epoch_steps_per_s': first_sps,
      'tfdata_later_epochs_steps_per_s': later_sps,
      'tfdata_run_steps_per_s': run_sps, 'run_epochs': run_epochs,
      'cost_first_epoch': 1 - first_sps / memory_sps,
      'cost_later_epochs': 1 - later_sps / memory_sps,
      'cost_training_run': 1 - run_sps / memory_sps,
      'tfdata_alone_first_pass_batches_per_s': drain_first,
      'tfdata_alone_cached_batches_per_s': drain_later,
      'audio_seconds_per_step': config.batch_size * config.window_samples / config.sample_rate,
  }


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--examples', default='', help='Examples folder (with Split-train); '
                      'default: made from the default data')
  parser.add_argument('--data', default='', help='data for the examples (default: default data)')
  parser.add_argument('--effect', default='lowpass')
  parser.add_argument('--model', default='conv', help='architecture (default: conv)')
  parser.add_argument('--epochs', type=int, default=1,
                      help='epochs measured per in-memory / cached row (default: 1)')
  parser.add_argument('--run-epochs', type=int, default=8,
                      help='epochs of the "training run" row (default: 8)')
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  common.quiet_tensorflow()
  with tempfile.TemporaryDirectory(prefix='fxemu-input-') as scratch:
    examples = args.examples or make_examples(args.effect, scratch, args.data)
    f = measure(examples, args.model, args.epochs, args.run_epochs)
  print(f'\n{f["model"]} model ({f["parameters"]:,} parameters, '
        f'{f["flops_per_output_sample"]:,.0f} FLOPs per output sample), batch '
        f'{f["batch_size"]} ({f["audio_seconds_per_step"]:.1f} s of target audio per step), '
        f'{f["train_examples"]} training examples = {f["steps_per_epoch"]} steps per epoch; '
        f'{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}')
  memory = f['memory_steps_per_s']
  common.print_table(
      ['fed by', 'steps/s', 'vs memory', 'input cost'],
      [['tensors in memory (mean of before/after)', memory, '1.000', ''],
       ['  in memory, before', f['memory_steps_per_s_before'],
        f'{f["memory_steps_per_s_before"] / memory:.3f}', ''],
       ['  in memory, after', f['memory_steps_per_s_after'],
        f'{f["memory_steps_per_s_after"] / memory:.3f}', ''],
       ['tf.data, first epoch (reads files, fills cache)', f['tfdata_first_epoch_steps_per_s'],
        f'{f["tfdata_first_epoch_steps_per_s"] / memory:.3f}',
        f'{100 * f["cost_first_epoch"]:.1f} %'],
       ['tf.data, later epochs (cached)', f['tfdata_later_epochs_steps_per_s'],
        f'{f["tfdata_later_epochs_steps_per_s"] / memory:.3f}',
        f'{100 * f["cost_later_epochs"]:.1f} %'],
       [f'tf.data, training run of {f["run_epochs"]} epochs', f['tfdata_run_steps_per_s'],
        f'{f["tfdata_run_steps_per_s"] / memory:.3f}', f'{100 * f["cost_training_run"]:.1f} %'],
       ['tf.data alone, no model: first pass', f['tfdata_alone_first_pass_batches_per_s'],
        f'{f["tfdata_alone_first_pass_batches_per_s"] / memory:.1f}', ''],
       ['tf.data alone, no model: cached', f['tfdata_alone_cached_batches_per_s'],
        f'{f["tfdata_alone_cached_batches_per_s"] / memory:.1f}', '']])
  if args.json:
    f.update(benchmark='input_pipeline', cpus=os.cpu_count(), load_average=os.getloadavg()[0])
    common.emit_json(f)
  return 0


if __name__ == '__main__':
  sys.exit(main())
