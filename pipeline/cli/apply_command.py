"""``fxemu apply MODEL IN OUT``: a model over a WAV file, whole-file blocks
(:func:`pipeline.inference.apply.apply_file`) or the ``stream`` signature with
``--block-size`` (:func:`pipeline.inference.stream.apply_file_streaming`)."""
from __future__ import annotations

import sys

from components.audio import wav
from pipeline.inference import apply
from pipeline.inference import stream
from schema import contract


def add_apply_command(subparsers) -> None:
  """Adds ``fxemu apply MODEL IN OUT`` to an argparse subparsers object."""
  parser = subparsers.add_parser(
      'apply', help='run a trained model over a WAV file',
      description='Process a WAV file with a pushed model (any length, mono or stereo, '
      '8/16/24/32-bit integer or 32-bit float). Long files are processed in blocks with '
      'enough context for the receptive field, so the output has no seams.')
  parser.add_argument('model', metavar='MODEL',
                      help='model base directory (the newest version is used), one version '
                      'directory, or a TF Serving REST endpoint such as '
                      'http://127.0.0.1:8501/v1/models/NAME')
  parser.add_argument('input', metavar='IN.wav', help='dry input WAV file')
  parser.add_argument('output', metavar='OUT.wav', help='wet output WAV file (written atomically)')
  parser.add_argument('--subtype', choices=sorted(wav.SUBTYPES), default=None,
                      help='output sample format (default: the input\'s)')
  parser.add_argument('--block-seconds', type=float, default=apply.DEFAULT_BLOCK_SECONDS,
                      help='seconds of audio per model call (0 = whole file at once); '
                      'the output does not depend on it (default: '
                      f'{apply.DEFAULT_BLOCK_SECONDS:g})')
  parser.add_argument('--model-info', default=None, metavar='PATH',
                      help='for an endpoint that does not report the model\'s sample rate and '
                      'receptive field (tensorflow_model_server): the model\'s version '
                      f'directory or its assets/{contract.MODEL_INFO_FILE}')
  parser.add_argument('--block-size', type=int, default=None, metavar='N',
                      help='stream the file in blocks of N samples through the model\'s '
                      '"stream" signature (O(N) per block, state carried from block to block; '
                      'models without it use seamless N-sample blocks); the output equals the '
                      'whole-file output. Overrides --block-seconds')
  parser.add_argument('--quiet', action='store_true', help='no progress bar or summary')
  parser.set_defaults(func=run_apply_command)


def run_apply_command(args) -> int:
  """``fxemu apply``: returns the exit status (0 ok, 1 error)."""
  try:
    if getattr(args, 'block_size', None) is not None:
      model = apply.open_model(args.model, args.model_info)
      result = stream.apply_file_streaming(model, args.input, args.output, args.block_size,
                                           subtype=args.subtype, verbose=not args.quiet)
    else:
      result = apply.apply_file(args.model, args.input, args.output, subtype=args.subtype,
                                block_seconds=args.block_seconds, progress=not args.quiet,
                                model_info=args.model_info)
  except (wav.AudioFileError, apply.ModelError, ValueError) as e:
    print(f'fxemu apply: error: {e}', file=sys.stderr)
    return 1
  if not args.quiet:
    seconds = result.frames / float(result.sample_rate)
    version = f' version {result.model_version}' if result.model_version else ''
    print(f'wrote {result.out_path}: {seconds:.2f} s, {result.channels} ch, '
          f'{result.sample_rate} Hz, {result.subtype} (model{version}, {result.blocks} block'
          f'{"s" if result.blocks != 1 else ""})')
  return 0
