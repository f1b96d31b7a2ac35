"""Spectrogram comparison figures (dry / wet / predicted / error).

The figures live in :mod:`pipeline.plots` (the run report draws them too); this module
keeps the benchmarks' import path.
"""
from __future__ import annotations

from pipeline.plots import log_spectrogram  # noqa: F401  pylint: disable=unused-import
from pipeline.plots import plot_comparison  # noqa: F401  pylint: disable=unused-import
