# Two commands on a fresh machine: `make run` (the whole stack) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint clean proto

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

## Install into .venv and run API, workers, scheduler and plugins in the foreground.
run: $(VENV)/.installed
	$(BIN)/aisopsflow up

## Install test extras into .venv, lint, check import direction, run every test.
test: $(VENV)/.installed-test lint
	$(BIN)/pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info

## Regenerate the Core<->Runner gRPC modules from ops/rpc/runner.proto (committed).
proto: $(VENV)/.installed-test
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. ops/rpc/runner.proto
