"""``fxemu serve MODEL_BASE``: TF Serving's REST API over a pushed model
(:mod:`pipeline.inference.serve`); also ``python -m pipeline.cli.serve_command``."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import List, Optional

from pipeline.inference import serve


def add_serve_command(subparsers) -> None:
  """Adds ``fxemu serve MODEL_BASE`` to an argparse subparsers object."""
  parser = subparsers.add_parser(
      'serve', help='serve a pushed model over TF Serving\'s REST API',
      description='Serve the newest version of a pushed model with TF Serving\'s REST API '
      '(status, metadata, predict) and pick up new versions as the Pusher writes them. '
      'For production use tensorflow/serving (kubeflow/serving.yaml).')
  parser.add_argument('model_base', metavar='MODEL_BASE',
                      help='model base directory holding <version>/saved_model.pb')
  parser.add_argument('--port', type=int, default=serve.DEFAULT_PORT,
                      help=f'TCP port (default: {serve.DEFAULT_PORT}; 0 = any free port)')
  parser.add_argument('--host', default='127.0.0.1',
                      help='address to bind (default: 127.0.0.1, this machine only; '
                      '0.0.0.0 exposes the server to the network)')
  parser.add_argument('--model-name', default=None, metavar='NAME',
                      help='model name in the URLs (default: the base directory\'s name)')
  parser.add_argument('--max-request-mb', type=float,
                      default=serve.DEFAULT_MAX_REQUEST_BYTES / float(1 << 20),
                      help='largest request body accepted, MiB; larger ones get 413 '
                      f'(default: {serve.DEFAULT_MAX_REQUEST_BYTES >> 20:d})')
  parser.add_argument('--poll-seconds', type=float, default=serve.DEFAULT_POLL_SECONDS,
                      help='how often to look for new versions, s '
                      f'(default: {serve.DEFAULT_POLL_SECONDS:g})')
  parser.add_argument('--intra-op-threads', type=int, default=0, metavar='N',
                      help='threads TensorFlow may use inside one operation (0 = its default, '
                      'all cores; 1 gives steadier latency on a busy machine)')
  parser.set_defaults(func=run_serve_command)


def run_serve_command(args) -> int:
  """``fxemu serve``: runs until interrupted (Ctrl-C or SIGTERM); returns the exit status."""
  if not os.path.isdir(args.model_base) and '://' not in args.model_base:
    print(f'fxemu serve: error: {args.model_base}: no such directory', file=sys.stderr)
    return 1
  handler = logging.StreamHandler(sys.stderr)   # version changes stay visible whatever the
  handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))   # root logger's level
  serve.log.addHandler(handler)
  serve.log.setLevel(logging.INFO)
  serve.log.propagate = False
  if getattr(args, 'intra_op_threads', 0):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel  (start-up: TensorFlow)
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
  try:
    server = serve.make_server(args.model_base, args.port, args.host, args.model_name,
                         int(args.max_request_mb * (1 << 20)), args.poll_seconds)
  except OSError as e:
    print(f'fxemu serve: error: cannot listen on {args.host}:{args.port} ({e})', file=sys.stderr)
    return 1
  current = server.watcher.current
  state = f'version {current.version}' if current else 'no version yet (waiting for one)'
  print(f'serving {server.model_name} ({state}) from {args.model_base} at {server.url}',
        flush=True)

  def stop(signum, frame):  # pylint: disable=unused-argument
    raise KeyboardInterrupt
  signal.signal(signal.SIGTERM, stop)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
  return 0


def main(argv: Optional[List[str]] = None) -> int:
  """``python -m pipeline.cli.serve_command MODEL_BASE [options]``: the same as ``fxemu serve``."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  parser = argparse.ArgumentParser(prog='fxemu')
  add_serve_command(parser.add_subparsers(dest='command', required=True))
  args = parser.parse_args(['serve'] + list(sys.argv[1:] if argv is None else argv))
  return args.func(args)


if __name__ == '__main__':
  sys.exit(main())

