"""The package layout's rules, read from the source (ast), nothing imported or run.

Layers, each importing only itself and the layers before it (docs/architecture.md):

    schema <- components.audio <- {components.datagen, trainer} <- components
           <- pipeline <- kubeflow <- pipeline.cli

and the names of :mod:`schema.contract` are spelled out nowhere else.
"""
import ast
import os

import pytest

from schema import contract
from tests.conftest import REPO

PACKAGES = ('schema', 'components', 'trainer', 'pipeline', 'kubeflow')
# layer -> the layers it may import (besides itself). Most specific prefix wins.
ALLOWED = {
    'schema': set(),
    'components.audio': {'schema'},
    'components.datagen': {'schema', 'components.audio'},
    'trainer': {'schema', 'components.audio'},
    'components': {'schema', 'components.audio', 'components.datagen', 'trainer'},
    'pipeline': {'schema', 'components.audio', 'components.datagen', 'trainer', 'components'},
    'kubeflow': {'schema', 'components.audio', 'components.datagen', 'trainer', 'components',
                 'pipeline'},
    'pipeline.cli': {'schema', 'components.audio', 'components.datagen', 'trainer',
                     'components', 'pipeline', 'kubeflow'},
}
# What an import inside a function must say in a comment on its line: why it is there.
LAZY_REASONS = ('start-up', 'optional')


def _layer(module: str) -> str:
  return max((layer for layer in ALLOWED
              if module == layer or module.startswith(layer + '.')), key=len)


def _sources():
  for package in PACKAGES:
    for folder, _, files in os.walk(os.path.join(REPO, package)):
      for name in sorted(files):
        if name.endswith('.py'):
          path = os.path.join(folder, name)
          module = os.path.relpath(path, REPO)[:-3].replace(os.sep, '.')
          if module.endswith('.__init__'):
            module = module[:-len('.__init__')]
          with open(path) as f:
            text = f.read()
          yield module, os.path.relpath(path, REPO), text, ast.parse(text)


def _imports(tree):
  """(node, imported module names) of every import, at any depth."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      yield node, [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      # `from components.audio import wav` imports components.audio.wav
      yield node, [f'{node.module}.{a.name}' for a in node.names] + [node.module]


SOURCES = list(_sources())


def test_every_module_is_in_a_layer():
  assert len(SOURCES) > 50
  for module, _, _, _ in SOURCES:
    assert _layer(module)


def test_imports_point_down_the_layers():
  wrong = []
  for module, path, _, tree in SOURCES:
    layer = _layer(module)
    for node, names in _imports(tree):
      for name in names:
        if name.split('.')[0] not in PACKAGES:
          continue
        try:
          target = _layer(name)
        except ValueError:
          continue
        if target != layer and target not in ALLOWED[layer]:
          wrong.append(f'{path}:{node.lineno}: {layer} imports {name} ({target})')
  assert not wrong, '\n'.join(wrong)


def test_imports_inside_functions_say_why():
  """Imports belong at the top; one inside a function only where it saves start-up time
  (TensorFlow, TFX, ...) or an optional dependency, with a comment saying so."""
  unexplained = []
  for _, path, text, tree in SOURCES:
    lines = text.splitlines()
    for function in ast.walk(tree):
      if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for node in ast.walk(function):
          if isinstance(node, (ast.Import, ast.ImportFrom)):
            line = lines[node.lineno - 1]
            comment = line.split('#', 1)[1] if '#' in line else ''
            if not any(reason in comment for reason in LAZY_REASONS):
              unexplained.append(f'{path}:{node.lineno}: {line.strip()}')
  assert not unexplained, '\n'.join(sorted(set(unexplained)))


# The distinctive names of the contract; short common words ('audio', 'wet', 'dry') are
# checked only in the modules that speak the contract, below.
DISTINCTIVE = {contract.SERVING_SIGNATURE, contract.EXAMPLES_SIGNATURE,
               contract.STREAM_FIXED_SIGNATURE,
               contract.MODEL_INFO_FILE, contract.EXAMPLES_SUMMARY_FILE,
               contract.TRAINING_SUMMARY_FILE, 'tf_serving_warmup_requests',
               contract.TUNE_TRIALS, contract.TUNE_SECONDS}
SPEAKERS = ('trainer/export.py', 'trainer/architectures.py', 'trainer/layers.py',
            'trainer/data.py', 'trainer/metrics.py', 'trainer/model.py', 'trainer/streaming.py',
            'components/serving_check.py', 'components/audio_example_gen.py',
            'pipeline/pipeline.py', 'pipeline/inference/apply.py')
# (pipeline/inference/serve.py also says 'state': TF Serving's model status, another thing.)
# ('examples' is also TFX's name of an ExampleGen's output channel: not checked.)
COMMON = {contract.AUDIO_INPUT, contract.WET_OUTPUT, contract.STATE, contract.STREAM_SIGNATURE,
          contract.DRY}


def _string_literals(tree):
  """String constants that are not docstrings, with their line."""
  docstrings = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
      body = node.body
      if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        docstrings.add(id(body[0].value))
  for node in ast.walk(tree):
    if (isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docstrings):
      yield node.lineno, node.value


@pytest.mark.parametrize('name', sorted(DISTINCTIVE))
def test_contract_names_are_defined_once(name):
  elsewhere = [f'{path}:{line}' for _, path, _, tree in SOURCES
               if path != os.path.join('schema', 'contract.py')
               for line, value in _string_literals(tree) if name in value]
  assert not elsewhere, f'{name!r} is spelled out in {elsewhere}: use schema.contract'


def test_contract_speakers_use_the_contract():
  spelled = [f'{path}:{line}: {value!r}' for _, path, _, tree in SOURCES if path in SPEAKERS
             for line, value in _string_literals(tree) if value in COMMON]
  assert not spelled, '\n'.join(spelled)


def test_schema_lists_the_contract_features():
  with open(os.path.join(REPO, 'schema', 'schema.pbtxt')) as f:
    text = f.read()
  names = [line.split('"')[1] for line in text.splitlines() if line.strip().startswith('name:')]
  assert sorted(names) == sorted(contract.FEATURES)


def test_contract_imports_nothing():
  tree = next(tree for module, _, _, tree in SOURCES if module == 'schema.contract')
  assert not list(_imports(tree))
