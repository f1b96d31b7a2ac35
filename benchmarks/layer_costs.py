"""Where a WaveNet layer's time goes, op by op, against one plain pass over memory.

    python benchmarks/layer_costs.py [--seconds 10] [--widths 8,4] [--json]

The default model's layers run at the sample rate on ``[channels, samples, C]`` tensors
(10 s of stereo: ``[2, 441000, C]`` float32, 28 MB at C = 8), with C = 8 or 4: too few
channels for the arithmetic to dominate, so each op costs about one pass over memory, and
fusing ops saves more than cutting FLOPs. This benchmark times each op of
:class:`trainer.layers.WaveNetLayer` (and the layer itself) on such tensors as
``tf.function`` graphs, best of ``--repeats``, and prints each as a ratio to a reference
measured in the same run: ``copy``, one elementwise pass (``x * 1``). The ``conv + bias``
rows show whether oneDNN fuses the bias into the convolution (``bias_add`` straight after
it) or not (a separate add). The condition has ``1 + condition_channels`` channels, as in
the default ``hybrid``; the dilation is ``--dilation``.

``--json``: the last line holds ``c{C}_{op}_ms`` and ``c{C}_{op}_ratio`` per op and width.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Dict, List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from trainer.config import TrainConfig  # noqa: E402  (a dataclass module: no TensorFlow)

REFERENCE = 'copy'


def best_ms(fn: Callable, args, repeats: int) -> float:
  """Best wall time (ms) of ``fn(*args)`` as a traced graph, after one warm-up call."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (after the env flags)
  graph = tf.function(fn)
  first = lambda out: out[0] if isinstance(out, (tuple, list)) else out
  first(graph(*args)).numpy()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    first(graph(*args)).numpy()
    times.append(time.perf_counter() - start)
  return 1000.0 * min(times)


def op_table(width: int, samples: int, rows: int, dilation: int, condition: int,
             repeats: int) -> List[Dict[str, object]]:
  """``[{'op', 'ms', 'ratio'}]`` for one layer width on ``[rows, samples, width]``."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from trainer import layers  # pylint: disable=import-outside-toplevel
  rng = tf.random.Generator.from_seed(width)
  h = rng.normal([rows, samples, width])
  cond = rng.normal([rows, samples, condition])
  kernel = rng.normal([3, width, width])
  mix = rng.normal([1, condition, width])
  residual = rng.normal([1, width, width])
  bias = rng.normal([width])
  reach = 2 * dilation
  padded = tf.pad(h, [[0, 0], [reach, 0], [0, 0]])
  conv = lambda x: tf.nn.conv1d(x, kernel, 1, 'VALID', dilations=dilation)
  layer = layers.WaveNetLayer(width, 3, dilation)
  layer([h[:, :16], cond[:, :16]])   # builds the weights
  ops = {
      REFERENCE: (lambda x: x * 1.0, (h,)),
      'pad': (lambda x: tf.pad(x, [[0, 0], [reach, 0], [0, 0]]), (h,)),
      'dilated_conv': (conv, (padded,)),
      'conv_bias_add': (lambda x: tf.nn.bias_add(conv(x), bias), (padded,)),
      'conv_plus_bias': (lambda x: conv(x) + bias, (padded,)),
      'condition_mix': (lambda c: tf.nn.conv1d(c, mix, 1, 'VALID'), (cond,)),
      'residual_1x1': (lambda x: tf.nn.conv1d(x, residual, 1, 'VALID'), (h,)),
      'add': (lambda x, y: x + y, (h, h)),
      'tanh_minus_tanh_bias': (lambda x: tf.tanh(x) - tf.tanh(bias), (h,)),
      'wavenet_layer': (lambda x, c: layer([x, c]), (h, cond)),
  }
  times = {name: best_ms(fn, args, repeats) for name, (fn, args) in ops.items()}
  return [{'op': name, 'ms': ms, 'ratio': ms / times[REFERENCE]} for name, ms in times.items()]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--seconds', type=float, default=10.0, help='audio per tensor (s)')
  parser.add_argument('--channels', type=int, default=2, help='batch rows (2 = stereo)')
  parser.add_argument('--widths', default='8,4', help='layer widths C, comma-separated')
  parser.add_argument('--dilation', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=7)
  common.add_runtime_flags(parser)
  args = parser.parse_args(argv)
  common.apply_runtime_flags(args)
  common.quiet_tensorflow()
  config = TrainConfig()
  samples = int(args.seconds * config.sample_rate)
  figures = {'samples': samples, 'rows': args.channels, 'dilation': args.dilation}
  for width in [int(w) for w in args.widths.split(',') if w]:
    table = op_table(width, samples, args.channels, args.dilation,
                     1 + config.condition_channels, args.repeats)
    print(f'C = {width}: [{args.channels}, {samples}, {width}] float32; ratio = time / '
          f'one copy pass ({REFERENCE})')
    common.print_table(['op', 'ms', 'ratio'], [[r['op'], r['ms'], r['ratio']] for r in table])
    print()
    for r in table:
      figures[f'c{width}_{r["op"]}_ms'] = r['ms']
      figures[f'c{width}_{r["op"]}_ratio'] = r['ratio']
  if args.json:
    common.emit_json(figures)
  return 0


if __name__ == '__main__':
  sys.exit(main())
