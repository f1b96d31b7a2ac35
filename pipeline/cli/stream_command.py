"""``fxemu stream MODEL`` (stdin to stdout, block by block) and ``fxemu export --tflite``:
the command lines of :mod:`pipeline.inference.stream`."""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import BinaryIO, Optional

from components.audio import wav
from pipeline.inference import apply
from pipeline.inference import stream
from schema import contract

def add_stream_command(subparsers) -> None:
  """Adds ``fxemu stream MODEL`` to an argparse subparsers object."""
  parser = subparsers.add_parser(
      'stream', help='run a model on audio from stdin to stdout, block by block',
      description='Stream audio through a model: read stdin, write stdout, one block at a '
      'time through the model\'s "stream" signature (O(block) per block, the state carried '
      'between blocks). Input is a WAV stream (the default: header, then samples; the '
      'output is a WAV of the same format) or raw interleaved little-endian PCM (--raw f32 '
      '= 32-bit float, --raw s16 = 16-bit signed integer; --rate and --channels say the '
      'rest; the output is the same raw format). The model\'s latency (look-ahead, in '
      'samples) is printed on stderr. By default the output is aligned with the input (the '
      'first LATENCY output samples are dropped and the end is flushed with LATENCY samples '
      'of silence), so it equals `fxemu apply`; --no-align writes the real-time stream '
      'instead (LATENCY samples late).',
      epilog='examples:\n'
      '  fxemu stream work/serving/overdrive < dry.wav > wet.wav\n'
      '  sox in.wav -t raw -e float -b 32 -c 1 -r 44100 - | \\\n'
      '      fxemu stream work/serving/overdrive --raw f32 --rate 44100 --channels 1 | \\\n'
      '      aplay -f FLOAT_LE -c 1 -r 44100',
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('model', metavar='MODEL',
                      help='model base directory (newest version) or one version directory')
  parser.add_argument('--block-size', type=int, default=stream.DEFAULT_BLOCK, metavar='N',
                      help=f'samples per block (default: {stream.DEFAULT_BLOCK})')
  parser.add_argument('--raw', choices=sorted(stream.RAW_FORMATS), default=None,
                      help='raw PCM instead of WAV, in and out: f32 (float32) or s16 (int16), '
                      'little-endian, channels interleaved')
  parser.add_argument('--rate', type=int, default=None,
                      help='sample rate of raw input, Hz (default: the model\'s); must be the '
                      'model\'s')
  parser.add_argument('--channels', type=int, default=1, help='channels of raw input (default: 1)')
  parser.add_argument('--align', default=True, action=argparse.BooleanOptionalAction,
                      help='drop the latency so the output lines up with the input '
                      '(default: on)')
  parser.add_argument('--tflite', default=None, metavar='FILE',
                      help='run this TFLite form of the model (fxemu export --tflite) instead '
                      'of the SavedModel; MODEL still gives the sample rate and latency')
  parser.set_defaults(func=run_stream_command)


def run_stream_command(args, stdin: Optional[BinaryIO] = None,
                       stdout: Optional[BinaryIO] = None) -> int:
  """``fxemu stream``: returns the exit status (0 ok, 1 error)."""
  stdin = stdin or sys.stdin.buffer
  stdout = stdout or sys.stdout.buffer
  try:
    if args.block_size < 1:
      raise ValueError(f'--block-size must be >= 1, got {args.block_size}')
    model = apply.open_model(args.model)
    rate = model.info.sample_rate
    if args.raw:
      subtype, channels = stream.RAW_FORMATS[args.raw][2], args.channels
      if channels < 1:
        raise ValueError(f'--channels must be >= 1, got {channels}')
      in_rate, total = args.rate or rate, None
    else:
      format_tag, channels, in_rate, bits, total = stream.read_wav_header(stdin)
      subtype = stream.subtype_of(format_tag, bits)
    if in_rate != rate:
      raise wav.AudioFileError('<stdin>', f'sample rate is {in_rate} Hz but the model '
                               f'({model.info.source}) expects {rate} Hz; resample first')
    runner = stream.open_stream(model, channels, args.tflite)
    print(f'fxemu stream: latency {runner.latency} samples ({1000.0 * runner.latency / rate:.2f}'
          f' ms at {rate} Hz){" (aligned: dropped from the output)" if args.align else ""}; '
          f'{channels} ch, {subtype}, blocks of {args.block_size} samples', file=sys.stderr,
          flush=True)
    if not args.raw:
      stdout.write(stream.wav_stream_header(channels, rate, subtype, total))
    start = time.perf_counter()
    frames = stream.stream_pcm(runner, stdin, stdout, subtype, channels, args.block_size, total,
                        align=args.align)
    stdout.flush()
    seconds = time.perf_counter() - start
    audio = frames / float(rate)
    print(f'fxemu stream: {frames} frames ({audio:.2f} s) in {seconds:.2f} s'
          f'{f" ({audio / seconds:.1f}x real time)" if seconds > 0 and frames else ""}',
          file=sys.stderr)
  except (wav.AudioFileError, apply.ModelError, ValueError) as e:
    print(f'fxemu stream: error: {e}', file=sys.stderr)
    return 1
  except BrokenPipeError:
    return 1
  return 0


def add_export_command(subparsers) -> None:
  """Adds ``fxemu export --tflite MODEL_DIR [OUT]``."""
  parser = subparsers.add_parser(
      'export', help='convert a pushed model for other runtimes (TFLite)',
      description='Write the TFLite form of a model\'s "stream" signature (audio block + '
      'state -> wet block + state): TFLite built-in operators plus a few select TF ops '
      '(tf.lite.Interpreter and TFLite runtimes built with Flex support run it). Its '
      'output matches the SavedModel\'s to float rounding. The state size and the latency '
      '(samples) are printed; `fxemu stream MODEL --tflite OUT` runs it. With --block-size '
      f'N it holds instead a much faster form for N-sample blocks '
      f'("{contract.STREAM_FIXED_SIGNATURE}": static '
      'shapes, built-in operators only, run by TFLite\'s XNNPACK delegate), the form an '
      'audio plugin loads.')
  parser.add_argument('--tflite', action='store_true', required=True,
                      help='write the TFLite form of the stream signature (the only format)')
  parser.add_argument('model', metavar='MODEL_DIR',
                      help='model base directory (newest version) or one version directory')
  parser.add_argument('output', metavar='OUT', nargs='?', default=None,
                      help='output file (default: MODEL_VERSION_DIR/stream.tflite)')
  parser.add_argument('--block-size', type=int, default=None, metavar='N',
                      help='write the fast form for blocks of exactly N samples, one channel '
                      '(static shapes, built-in TFLite operators only; N a multiple of the '
                      'model\'s frame, stream_frame_samples in the model\'s metadata). `fxemu '
                      'stream MODEL --tflite OUT` runs it when its --block-size is N; other '
                      'blocks (a file\'s last) go through the SavedModel\'s stream signature')
  parser.set_defaults(func=run_export_command)


def run_export_command(args) -> int:
  try:
    out, state_size, latency, version_dir = stream.export_tflite(args.model, args.output,
                                                                 args.block_size)
  except (apply.ModelError, ValueError) as e:
    print(f'fxemu export: error: {e}', file=sys.stderr)
    return 1
  form = (f'"{contract.STREAM_FIXED_SIGNATURE}" (audio [1, {args.block_size}], state [1, '
          f'{state_size}])' if args.block_size else
          f'"{contract.STREAM_SIGNATURE}" (audio [channels, n], state [channels, {state_size}])')
  print(f'wrote {out} ({os.path.getsize(out)} bytes) from {version_dir}: signature {form} -> '
        f'(wet, state); latency {latency} samples')
  print(f'latency: {latency} samples', file=sys.stderr)
  return 0

