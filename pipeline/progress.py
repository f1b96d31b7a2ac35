"""Progress on the terminal: a one-line bar for loops of known length, and a status line.

Both write to stderr and only when it is a terminal (a log file or CI output gets no
carriage-return litter); nothing here needs a third-party package.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

BAR_WIDTH = 24
MIN_REDRAW_SECONDS = 0.1


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


class Bar:
  """A progress bar over ``total`` units: ``desc [####....] 12/40 unit, 3 s, detail``.

  Use as a context manager; ``update(n)`` after each piece of work. Off (no output at
  all) when ``enabled`` is False or stderr is not a terminal.
  """

  def __init__(self, total: float, desc: str = '', unit: str = '',
               enabled: bool = True, stream: Optional[TextIO] = None):
    self.total, self.desc, self.unit = total, desc, unit
    self.count, self.detail = 0, ''
    self._line = StatusLine(None if enabled else False, stream)
    self._start = self._drawn = time.monotonic()

  def update(self, n: float = 1) -> None:
    self.count += n
    now = time.monotonic()
    if now - self._drawn >= MIN_REDRAW_SECONDS or self.count >= self.total:
      self._draw(now)

  def set_detail(self, text: str) -> None:
    """A short note after the counts (e.g. what is being worked on)."""
    self.detail = text
    self._draw(time.monotonic())

  def _draw(self, now: float) -> None:
    if not self._line.enabled:
      return
    self._drawn = now
    fraction = self.count / self.total if self.total else 1.0
    unit = f' {self.unit}' if self.unit else ''
    detail = f', {self.detail}' if self.detail else ''
    self._line.show(f'{self.desc} {bar_text(fraction)} {_count(self.count)}/'
                    f'{_count(self.total)}{unit}, {format_seconds(now - self._start)}{detail}')

  def close(self) -> None:
    self._line.clear()

  def __enter__(self) -> 'Bar':
    self._draw(time.monotonic())
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _count(value: float) -> str:
  """Counts as short text: 1234567 -> '1.23M'."""
  for scale, suffix in ((1e9, 'G'), (1e6, 'M'), (1e4, 'k')):
    if abs(value) >= scale:
      return f'{value / scale:.3g}{suffix}'
  return f'{value:g}'
