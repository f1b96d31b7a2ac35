# fxemu: `make run` sets up and runs the pipeline on the default data; `make test` runs the tests.
SHELL := /bin/bash
VENV := .venv
FXEMU := $(VENV)/bin/fxemu
PYTEST_ARGS ?=

.PHONY: setup run test bench clean

setup:
	@scripts/setup.sh

run: setup
	$(FXEMU) run $(RUN_ARGS)

test:
	@scripts/setup.sh --test
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

clean:
	rm -rf work .pytest_cache .hypothesis
