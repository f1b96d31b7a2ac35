"""The one codec between the settings dataclasses and text: command-line flags and
``FXEMU_*`` environment variables.

``PipelineConfig`` (:mod:`pipeline.configs`), ``TrainConfig`` (:mod:`trainer.config`) and
``KubeflowSettings`` (:mod:`kubeflow.settings`) are plain dataclasses whose fields carry a
default and ``metadata['help']``. Every way a user sets them goes through here:

* flags (``fxemu run``, ``fxemu kubeflow``, ``python -m kubeflow.train_job``):
  :func:`add_dataclass_flags` and :func:`dataclass_from_flags`;
* environment (``kubeflow/runner.py`` on Vertex / ``tfx pipeline create``):
  :func:`dataclass_from_env`;
* the reference in docs/configuration.md (:mod:`pipeline.cli.config_reference`):
  :func:`flag_name`, :func:`env_name`, :func:`field_default`.

Text becomes a value of the field default's type by :func:`parse_text`. Booleans are
strict: ``1/true/yes/on`` or ``0/false/no/off``, anything else is an error (a typo must
not silently turn an option off).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import os
from typing import Any, Iterable, Mapping

ENV_PREFIX = 'FXEMU_'
TRUE_TEXTS = ('1', 'true', 'yes', 'on')
FALSE_TEXTS = ('0', 'false', 'no', 'off')
#: TrainConfig fields the pipeline derives from PipelineConfig (window geometry): no flags
#: for them where the pipeline runs the Trainer.
TRAIN_FIELDS_SET_BY_PIPELINE = ('window_samples', 'context_samples', 'sample_rate')


def field_default(field: dataclasses.Field):
  """A dataclass field's default value (also for fields with a default_factory)."""
  if field.default is not dataclasses.MISSING:
    return field.default
  return field.default_factory()


def parse_bool(text: str) -> bool:
  """``'yes'`` -> True, ``'off'`` -> False; anything but :data:`TRUE_TEXTS` or
  :data:`FALSE_TEXTS` (any case) raises ValueError."""
  lowered = text.strip().lower()
  if lowered in TRUE_TEXTS:
    return True
  if lowered in FALSE_TEXTS:
    return False
  raise ValueError(f'{text!r} is not a boolean: use one of '
                   f'{", ".join(TRUE_TEXTS)} or {", ".join(FALSE_TEXTS)}')


def parse_text(default, text: str):
  """Command-line or environment text -> a value of ``default``'s type.

  Booleans: :func:`parse_bool`; tuples are comma-separated values of their items' type
  (int for an empty default); ``None`` defaults keep the text.
  """
  if isinstance(default, bool):
    return parse_bool(text)
  if isinstance(default, tuple):
    item = type(default[0]) if default else int
    return tuple(item(x) for x in text.split(',') if x.strip())
  return type(default)(text) if default is not None else text


def flag_name(name: str) -> str:
  """``'window_seconds'`` -> ``'--window-seconds'``."""
  return '--' + name.replace('_', '-')


def flag_text(values: Mapping[str, Any]) -> str:
  """``{'wavenet_channels': [12, 6], 'weight_decay': 0.1}`` -> the flags that set them,
  ``'--wavenet-channels 12,6 --weight-decay 0.1'``."""
  return ' '.join(f'{flag_name(name)} ' + (','.join(map(str, value))
                                           if isinstance(value, (list, tuple)) else str(value))
                  for name, value in values.items())


def env_name(name: str) -> str:
  """``'window_seconds'`` -> ``'FXEMU_WINDOW_SECONDS'``."""
  return ENV_PREFIX + name.upper()


def add_dataclass_flags(parser: argparse.ArgumentParser, cls, title: str,
                        skip: Iterable[str] = ()) -> None:
  """One flag per field of ``cls`` (except ``skip``), with its help text and default."""
  group = parser.add_argument_group(title)
  for field in dataclasses.fields(cls):
    if field.name in skip:
      continue
    default = field_default(field)
    help_text = field.metadata.get('help', '')
    if isinstance(default, bool):
      group.add_argument(flag_name(field.name), dest=field.name, default=None,
                         action=argparse.BooleanOptionalAction,
                         help=f'{help_text} (default: {default})')
    elif isinstance(default, tuple):
      group.add_argument(flag_name(field.name), dest=field.name, default=None,
                         type=functools.partial(parse_text, default), metavar='A,B,...',
                         help=f'{help_text} (default: {",".join(map(str, default))})')
    else:
      group.add_argument(flag_name(field.name), dest=field.name, default=None,
                         type=functools.partial(parse_text, default),
                         choices=field.metadata.get('choices'), metavar=field.name.upper(),
                         help=f'{help_text} (default: {default!r})')


def dataclass_from_flags(cls, args: argparse.Namespace):
  """An instance of ``cls`` with every flag the user gave, defaults elsewhere."""
  given = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
           if getattr(args, f.name, None) is not None}
  return cls(**given)


def dataclass_from_env(cls, environ: Mapping[str, str] = os.environ) -> Any:
  """An instance of ``cls`` with every ``FXEMU_<FIELD>`` variable that is set.

  Raises:
    ValueError: a variable's text does not parse (names the variable).
  """
  values = {}
  for field in dataclasses.fields(cls):
    raw = environ.get(env_name(field.name))
    if raw is not None:
      try:
        values[field.name] = parse_text(field_default(field), raw)
      except ValueError as e:
        raise ValueError(f'{env_name(field.name)}: {e}') from e
  return cls(**values)
