"""The default data set: capture signals, the piano test piece, effect presets and
``synthesize`` (``fxemu synth``). Imports :mod:`components.audio` and nothing above it."""
