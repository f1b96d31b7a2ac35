"""kubeflow/serving.yaml: TF Serving Deployment + Service on the Pusher's model directory."""
import os
import re

import pytest
import yaml

from components.audio import model_versions

MANIFEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'kubeflow', 'serving.yaml')


@pytest.fixture(scope='module')
def docs():
  with open(MANIFEST) as f:
    return {d['kind']: d for d in yaml.safe_load_all(f) if d}


@pytest.fixture(scope='module')
def container(docs):
  containers = docs['Deployment']['spec']['template']['spec']['containers']
  assert len(containers) == 1
  return containers[0]


def _expand(text: str, env) -> str:
  """Kubernetes' $(VAR) substitution in command/args."""
  return re.sub(r'\$\((\w+)\)', lambda m: env[m.group(1)], text)


def _flags(container):
  env = {e['name']: e['value'] for e in container.get('env', [])}
  flags = {}
  for arg in container.get('args', []):
    name, _, value = _expand(arg, env).partition('=')
    flags[name] = value
  return flags


def test_kinds(docs):
  assert {'Deployment', 'Service'} <= set(docs)
  assert docs['Deployment']['apiVersion'] == 'apps/v1'


def test_tf_serving_image_and_ports(container, docs):
  assert container['image'].startswith('tensorflow/serving:')
  assert container['command'] == ['tensorflow_model_server']
  ports = {p['name']: p['containerPort'] for p in container['ports']}
  assert ports == {'grpc': 8500, 'http': 8501}
  flags = _flags(container)
  assert flags['--port'] == '8500' and flags['--rest_api_port'] == '8501'
  service = docs['Service']
  by_port = {p['port']: p['targetPort'] for p in service['spec']['ports']}
  assert {by_port[8500], by_port[8501]} == {'grpc', 'http'}
  assert ports[by_port[8501]] == 8501 and ports[by_port[8500]] == 8500
  labels = docs['Deployment']['spec']['template']['metadata']['labels']
  assert service['spec']['selector'].items() <= labels.items()
  assert docs['Deployment']['spec']['selector']['matchLabels'].items() <= labels.items()


def test_readiness_probe_is_the_model_status_url(container):
  flags = _flags(container)
  probe = container['readinessProbe']['httpGet']
  assert probe['path'] == f'/v1/models/{flags["--model_name"]}'
  assert probe['port'] in (8501, 'http')


def test_resources(container):
  for kind in ('requests', 'limits'):
    assert {'cpu', 'memory'} <= set(container['resources'][kind])


def test_model_base_path_follows_the_pusher_layout(container, docs, tmp_path):
  """The base path is the directory holding <version>/saved_model.pb, on the mounted claim."""
  flags = _flags(container)
  name, base = flags['--model_name'], flags['--model_base_path']
  env = {e['name']: e['value'] for e in container['env']}
  assert name == env['MODEL_NAME'] and '$(' not in base
  mount = container['volumeMounts'][0]
  assert base.startswith(mount['mountPath'].rstrip('/') + '/')
  volume = {v['name']: v for v in docs['Deployment']['spec']['template']['spec']['volumes']}
  claim = volume[mount['name']]['persistentVolumeClaim']['claimName']
  if 'PersistentVolumeClaim' in docs:
    assert docs['PersistentVolumeClaim']['metadata']['name'] == claim
  # What the Pusher writes onto the claim, seen through the container's path.
  relative = os.path.relpath(base, mount['mountPath'])
  version_dir = tmp_path / relative / '1700000000'
  (version_dir / 'variables').mkdir(parents=True)
  (version_dir / 'saved_model.pb').write_bytes(b'')
  assert model_versions.versions(str(tmp_path / relative)) == [(1700000000, str(version_dir))]
  assert not re.search(r'/\d+/?$', base) and not base.endswith('saved_model.pb')
