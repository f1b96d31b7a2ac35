"""fxemu serve: TF Serving's REST API over real HTTP on 127.0.0.1, errors, version pick-up."""
import argparse
import base64
import json
import os
import shutil
import threading

import numpy as np
import pytest
import requests

from components.audio import wav
from pipeline.inference import apply
from pipeline.inference import serve
from pipeline.cli import serve_command
from tests.test_apply import RATE, export_tiny_model

MAX_BYTES = 256 << 10   # small request limit, so oversized requests are cheap to make


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """Two exported versions of the tiny model (different weights), outside any base dir."""
  root = tmp_path_factory.mktemp('exports')
  return {1: export_tiny_model(str(root / 'a'), seed=0),
          2: export_tiny_model(str(root / 'b'), seed=1)}


def _start(base: str, **kwargs):
  server = serve.make_server(base, port=0, max_request_bytes=MAX_BYTES, poll_seconds=0.2,
                             **kwargs)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  return server


def _stop(server):
  server.shutdown()
  server.server_close()


@pytest.fixture(scope='module')
def server(tmp_path_factory, exported):
  base = tmp_path_factory.mktemp('serving') / 'lowpass'
  shutil.copytree(exported[1], base / '1')
  server = _start(str(base))
  yield server
  _stop(server)


@pytest.fixture(scope='module')
def direct(exported):
  return {v: apply.LocalModel(path) for v, path in exported.items()}


def _audio(batch=2, samples=500, seed=3):
  return np.random.default_rng(seed).uniform(-0.8, 0.8, [batch, samples]).astype(np.float32)


def _post(server, body, suffix=':predict', **kwargs):
  data = body if isinstance(body, (bytes, str)) else json.dumps(body)
  return requests.post(server.url + suffix, data=data, timeout=30, **kwargs)


def _alive(server):
  status = requests.get(server.url, timeout=10)
  assert status.status_code == 200
  x = _audio(1, 64)
  answer = _post(server, {'instances': x.tolist()})
  assert answer.status_code == 200 and np.asarray(answer.json()['predictions']).shape == (1, 64)


# --- Status and metadata -------------------------------------------------------------------

def test_binds_loopback_by_default(server):
  assert server.server_address[0] == '127.0.0.1'
  assert server.url.endswith('/v1/models/lowpass')


def test_model_status(server):
  answer = requests.get(server.url, timeout=10)
  assert answer.status_code == 200
  assert answer.json() == {'model_version_status': [
      {'version': '1', 'state': 'AVAILABLE', 'status': {'error_code': 'OK', 'error_message': ''}}]}
  assert requests.get(server.url + '/versions/1', timeout=10).json() == answer.json()
  missing = requests.get(server.url + '/versions/7', timeout=10)
  assert missing.status_code == 404 and 'error' in missing.json()


def test_metadata(server):
  answer = requests.get(server.url + '/metadata', timeout=10)
  assert answer.status_code == 200
  meta = answer.json()
  assert meta['model_spec'] == {'name': 'lowpass', 'signature_name': '', 'version': '1'}
  signature = meta['metadata']['signature_def']['signature_def']['serving_default']
  assert signature['method_name'] == 'tensorflow/serving/predict'
  for group, key in (('inputs', 'audio'), ('outputs', 'wet')):
    tensor = signature[group][key]
    assert tensor['dtype'] == 'DT_FLOAT'
    assert [d['size'] for d in tensor['tensor_shape']['dim']] == ['-1', '-1']
  assert 'serving_examples' in meta['metadata']['signature_def']['signature_def']
  assert meta['metadata']['fxemu']['sample_rate'] == RATE
  assert requests.get(server.url + '/versions/1/metadata', timeout=10).json() == meta


# --- Predict -------------------------------------------------------------------------------

def test_predict_row_and_columnar_equal_the_saved_model(server, direct):
  x = _audio()
  expected = direct[1].predict(x)
  bodies = {
      'predictions': [{'instances': x.tolist()},
                      {'instances': [{'audio': row} for row in x.tolist()]},
                      {'instances': x.tolist(), 'signature_name': 'serving_default'}],
      'outputs': [{'inputs': {'audio': x.tolist()}}, {'inputs': x.tolist()}],
  }
  for key, requests_ in bodies.items():
    for body in requests_:
      for suffix in (':predict', '/versions/1:predict'):
        answer = _post(server, body, suffix)
        assert answer.status_code == 200, answer.text
        assert list(answer.json()) == [key]
        np.testing.assert_allclose(np.asarray(answer.json()[key], np.float32), expected,
                                   atol=1e-6)


def test_binary_b64_rows_equal_json_rows(server, direct):
  """``{"b64": base64 of little-endian float32}`` rows (TF Serving's binary encoding):
  the answer comes back as binary rows, bit-equal to the SavedModel's output for the same
  batch (oneDNN's kernels may round a batch of one row differently from a batch of two)."""
  x = _audio()
  expected = {n: direct[1].predict(x[:n]) for n in (1, len(x))}
  rows = [{'b64': base64.b64encode(row.astype('<f4').tobytes()).decode()} for row in x]
  for body, key in (({'instances': rows}, 'predictions'),
                    ({'instances': [{'audio': r} for r in rows]}, 'predictions'),
                    ({'inputs': rows}, 'outputs'), ({'inputs': {'audio': rows}}, 'outputs'),
                    ({'inputs': {'audio': rows[0]}}, 'outputs')):
    answer = _post(server, body)
    assert answer.status_code == 200, answer.text
    wet = serve.decode_b64_rows(answer.json()[key])
    assert wet.dtype == np.float32
    np.testing.assert_array_equal(wet, expected[len(wet)])
    assert len(wet) == (1 if body.get('inputs', {}) == {'audio': rows[0]} else 2)


def test_integer_samples_are_accepted(server, direct):
  answer = _post(server, {'instances': [[0, 1, 0, -1] * 16]})
  assert answer.status_code == 200
  expected = direct[1].predict(np.asarray([[0, 1, 0, -1] * 16], np.float32))
  np.testing.assert_allclose(answer.json()['predictions'], expected, atol=1e-6)


def test_concurrent_requests(server, direct):
  x = _audio(1, 800)
  expected = direct[1].predict(x)
  results = []

  def client():
    with requests.Session() as session:
      for _ in range(3):
        answer = session.post(server.url + ':predict', json={'instances': x.tolist()},
                              timeout=30)
        results.append(np.allclose(answer.json()['predictions'], expected, atol=1e-6))
  threads = [threading.Thread(target=client) for _ in range(6)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert results == [True] * 18


# --- Errors --------------------------------------------------------------------------------

BAD_REQUESTS = [
    ('bad json', 'POST', ':predict', '{"instances": [[0.1, 0.2]', 400),
    ('not json text', 'POST', ':predict', b'\xff\xfe garbage', 400),
    ('not an object', 'POST', ':predict', '[[0.1, 0.2]]', 400),
    ('no instances', 'POST', ':predict', '{"foo": 1}', 400),
    ('both keys', 'POST', ':predict', '{"instances": [[1]], "inputs": [[1]]}', 400),
    ('flat list', 'POST', ':predict', '{"instances": [0.1, 0.2]}', 400),
    ('3-D', 'POST', ':predict', '{"instances": [[[0.1], [0.2]]]}', 400),
    ('ragged', 'POST', ':predict', '{"instances": [[0.1, 0.2], [0.3]]}', 400),
    ('strings', 'POST', ':predict', '{"instances": [["a", "b"]]}', 400),
    ('booleans', 'POST', ':predict', '{"instances": [[true, false]]}', 400),
    ('nulls', 'POST', ':predict', '{"instances": [[null, 0.1]]}', 400),
    ('NaN', 'POST', ':predict', '{"instances": [[NaN, 0.1]]}', 400),
    ('float32 overflow', 'POST', ':predict', '{"instances": [[1e300, 0.1]]}', 400),
    ('empty', 'POST', ':predict', '{"instances": []}', 400),
    ('empty rows', 'POST', ':predict', '{"instances": [[], []]}', 400),
    ('wrong input name', 'POST', ':predict', '{"inputs": {"dry": [[0.1]]}}', 400),
    ('wrong instance name', 'POST', ':predict', '{"instances": [{"dry": [0.1]}]}', 400),
    ('unknown signature', 'POST', ':predict', '{"signature_name": "x", "instances": [[1]]}', 400),
    ('unknown model', 'POST', '../nosuch:predict', '{"instances": [[0.1]]}', 404),
    ('unknown version', 'POST', '/versions/5:predict', '{"instances": [[0.1]]}', 404),
    ('unknown verb', 'POST', ':classify', '{"instances": [[0.1]]}', 404),
    ('unknown path', 'GET', '/nonsense', None, 404),
    ('GET predict', 'GET', ':predict', None, 405),
    ('oversized', 'POST', ':predict', json.dumps({'instances': [[0.25] * (MAX_BYTES // 5)]}), 413),
    ('deeply nested', 'POST', ':predict', '{"instances": ' + '[' * 5000 + '0.1' + ']' * 5000 + '}',
     400),
    ('deeply nested objects', 'POST', ':predict', '{"instances": [' + '{"a": ' * 5000 + '1' +
     '}' * 5000 + ']}', 400),
    ('deeply nested, unterminated', 'POST', ':predict', '{"inputs": ' + '[' * 50000, 400),
    ('nested below the recursion limit', 'POST', ':predict',
     '{"instances": ' + '[' * 600 + '0.1' + ']' * 600 + '}', 400),
    ('b64 not base64', 'POST', ':predict', '{"instances": [{"b64": "not base64!"}]}', 400),
    ('b64 not float32', 'POST', ':predict', '{"instances": [{"b64": "AAAAAP8="}]}', 400),
    ('b64 empty', 'POST', ':predict', '{"instances": [{"b64": ""}]}', 400),
    ('b64 NaN', 'POST', ':predict', '{"inputs": [{"b64": "AADAfw=="}]}', 400),
    ('b64 ragged', 'POST', ':predict', '{"inputs": [{"b64": "AAAAAA=="}, {"b64": "AAAAAAAAAAA="}]}',
     400),
    ('b64 mixed with numbers', 'POST', ':predict', '{"instances": [{"b64": "AAAAAA=="}, [0.1]]}',
     400),
    ('b64 not a string', 'POST', ':predict', '{"instances": [{"b64": [1]}]}', 400),
]


@pytest.mark.parametrize('name,method,suffix,body,status', BAD_REQUESTS,
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_requests_get_tf_serving_errors(server, name, method, suffix, body, status):
  del name
  url = server.url + suffix if not suffix.startswith('../') else \
      server.url.rsplit('/', 1)[0] + '/' + suffix[3:]
  answer = requests.request(method, url, data=body, timeout=30)
  assert answer.status_code == status, answer.text
  assert isinstance(answer.json()['error'], str) and answer.json()['error']
  _alive(server)


def test_unknown_routes_and_huge_bodies_do_not_take_it_down(server):
  assert requests.get(server.url.replace('/v1/models', '/v2/models'), timeout=10).status_code == 404
  try:   # beyond what the server drains: it may close before the client finishes sending
    answer = _post(server, b'[' + b'0,' * (3 * MAX_BYTES))
    assert answer.status_code == 413
  except requests.ConnectionError:
    pass
  chunked = requests.post(server.url + ':predict', data=iter([b'{"instances":', b'[[1]]}']),
                          timeout=10)
  assert chunked.status_code in (400, 411)
  _alive(server)


# --- Versions ------------------------------------------------------------------------------

def test_new_versions_are_picked_up_and_bad_ones_skipped(tmp_path, exported, direct):
  base = tmp_path / 'overdrive'
  shutil.copytree(exported[1], base / '1')
  server = _start(str(base))
  try:
    x = _audio(1, 300)
    version = lambda: requests.get(server.url, timeout=10).json()['model_version_status'][0]
    assert version()['version'] == '1'
    # A version still being written (no variables/ yet) is not loaded.
    (base / '2').mkdir()
    shutil.copy(os.path.join(exported[2], 'saved_model.pb'), base / '2')
    assert not serve.wait_until(lambda: version()['version'] == '2', 0.8)
    shutil.copytree(os.path.join(exported[2], 'variables'), base / '2' / 'variables')
    shutil.copytree(os.path.join(exported[2], 'assets'), base / '2' / 'assets')
    assert serve.wait_until(lambda: version()['version'] == '2', 30.0)
    answer = _post(server, {'instances': x.tolist()})
    np.testing.assert_allclose(answer.json()['predictions'], direct[2].predict(x), atol=1e-6)
    assert not np.allclose(direct[1].predict(x), direct[2].predict(x), atol=1e-3)
    # A broken newer version: the old one keeps serving, the status reports the failure.
    (base / '3' / 'variables').mkdir(parents=True)
    (base / '3' / 'saved_model.pb').write_bytes(b'not a saved model')
    statuses = lambda: requests.get(server.url, timeout=10).json()['model_version_status']
    assert serve.wait_until(lambda: statuses()[0]['version'] == '3', 30.0)
    assert statuses()[0]['state'] == 'END' and statuses()[0]['status']['error_message']
    assert statuses()[1] == {'version': '2', 'state': 'AVAILABLE',
                             'status': {'error_code': 'OK', 'error_message': ''}}
    answer = _post(server, {'instances': x.tolist()})
    np.testing.assert_allclose(answer.json()['predictions'], direct[2].predict(x), atol=1e-6)
  finally:
    _stop(server)


def test_empty_base_answers_404_until_a_version_arrives(tmp_path, exported):
  base = tmp_path / 'fuzz'
  base.mkdir()
  server = _start(str(base))
  try:
    assert requests.get(server.url, timeout=10).status_code == 404
    assert _post(server, {'instances': [[0.1]]}).status_code == 404
    shutil.copytree(exported[1], base / '5')
    assert serve.wait_until(lambda: requests.get(server.url, timeout=10).status_code == 200, 30.0)
  finally:
    _stop(server)


# --- apply through the server --------------------------------------------------------------

def test_apply_through_url_equals_apply_through_directory(tmp_path, server, direct):
  in_path = str(tmp_path / 'dry.wav')
  wav.write_wav(in_path, np.random.default_rng(5).uniform(-0.5, 0.5, [3000, 2]), RATE, 'PCM_24')
  remote = apply.open_model(server.url)
  assert (remote.info.sample_rate, remote.info.past_samples, remote.info.future_samples,
          remote.info.block_multiple, remote.version) == (
              direct[1].info.sample_rate, direct[1].info.past_samples,
              direct[1].info.future_samples, direct[1].info.block_multiple, '1')
  via_dir, via_url = str(tmp_path / 'dir.wav'), str(tmp_path / 'url.wav')
  apply.apply_file(direct[1], in_path, via_dir, subtype='FLOAT', block_seconds=0.05,
                   progress=False)
  result = apply.apply_file(server.url, in_path, via_url, subtype='FLOAT', block_seconds=0.05,
                            progress=False)
  assert result.blocks == 4 and result.model_version == '1'
  np.testing.assert_allclose(wav.read_wav(via_url)[0], wav.read_wav(via_dir)[0], atol=1e-6)
  # Endpoint with the version and the :predict suffix works too; errors name the URL.
  versioned = apply.open_model(server.url + '/versions/1:predict')
  np.testing.assert_allclose(versioned.predict(_audio(2, 100)),
                             direct[1].predict(_audio(2, 100)), atol=1e-6)
  with pytest.raises(apply.ModelError, match='HTTP 404'):
    apply.open_model(server.url + '/versions/9')


def test_remote_model_splits_large_files_into_requests_under_the_limit(tmp_path, server, direct):
  remote = apply.RemoteModel(server.url, max_request_bytes=MAX_BYTES // 2)
  x = np.random.default_rng(6).uniform(-0.5, 0.5, [20000, 2]).astype(np.float32)
  block = apply.block_samples_for(remote, None, channels=2)
  assert block is not None and block < 20000
  np.testing.assert_allclose(apply.process(remote, x, block), apply.process(direct[1], x),
                             atol=1e-6)


# --- Command line --------------------------------------------------------------------------

def test_cli_serve_options(tmp_path, capsys):
  parser = argparse.ArgumentParser(prog='fxemu')
  serve_command.add_serve_command(parser.add_subparsers(dest='command'))
  args = parser.parse_args(['serve', str(tmp_path / 'missing')])
  assert (args.port, args.host, args.model_name) == (8501, '127.0.0.1', None)
  assert args.func(args) == 1
  assert 'no such directory' in capsys.readouterr().err
  with pytest.raises(SystemExit):
    parser.parse_args(['serve', '--help'])
  text = capsys.readouterr().out
  for option in ('--port', '--host', '--model-name', '--max-request-mb', '--poll-seconds'):
    assert option in text
