# The two set-up commands of the README (`make run`, `make test`) and developer shortcuts.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup ext run test lint typecheck pytest bench clean

setup:
	bash deploy/setup-dev.sh $(VENV)

ext:
	$(PY) setup.py -q build_ext --inplace

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck:
	$(VENV)/bin/mypy

pytest:
	$(PY) -m pytest --cov --cov-report=term

test: setup ext lint typecheck pytest

run: setup ext
	$(VENV)/bin/v2g-hil demo

bench: setup ext
	$(VENV)/bin/v2g-hil bench

clean:
	rm -rf build dist *.egg-info edge/**/_*_c.*.so ext/*.c
