"""The status line of ``fxemu run`` (the stage running, its time against the last run's).

It writes to stderr and only when it is a terminal (a log file or CI output gets no
carriage-return litter). Loops of known length use ``tqdm`` instead.
"""
from __future__ import annotations

import sys
from typing import Optional, TextIO

BAR_WIDTH = 24


def is_terminal(stream: Optional[TextIO] = None) -> bool:
  """True when ``stream`` (default stderr) is an interactive terminal."""
  stream = stream or sys.stderr
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


def format_seconds(seconds: float) -> str:
  """``75.2`` -> ``'1:15'``; under a minute ``'42 s'``."""
  seconds = max(0, int(round(seconds)))
  if seconds < 60:
    return f'{seconds} s'
  minutes, seconds = divmod(seconds, 60)
  hours, minutes = divmod(minutes, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}' if hours else f'{minutes}:{seconds:02d}'


def bar_text(fraction: float, width: int = BAR_WIDTH) -> str:
  """``0.5`` -> ``'[############............]'``."""
  filled = int(round(min(max(fraction, 0.0), 1.0) * width))
  return '[' + '#' * filled + '.' * (width - filled) + ']'


class StatusLine:
  """One line that is redrawn in place (``\\r``) and cleared before other output."""

  def __init__(self, enabled: Optional[bool] = None, stream: Optional[TextIO] = None):
    self.stream = stream or sys.stderr
    self.enabled = is_terminal(self.stream) if enabled is None else enabled
    self._shown = False

  def show(self, text: str) -> None:
    if self.enabled:
      self.stream.write('\r\033[K' + text)
      self.stream.flush()
      self._shown = True

  def clear(self) -> None:
    if self.enabled and self._shown:
      self.stream.write('\r\033[K')
      self.stream.flush()
      self._shown = False

