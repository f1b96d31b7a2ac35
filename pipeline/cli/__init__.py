"""The ``fxemu`` command (:mod:`pipeline.cli.main`); nothing below the CLI imports it."""
