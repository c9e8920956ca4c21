# One entry point for developers and CI: `make demo` runs a local rotation, `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

# Lambda runs python3.12: use it on PATH, else from pyenv, else stop with a clear message.
PYTHON312 ?= $(shell tools/find-python312)

.PHONY: help
help:
	@echo "make demo   - full local rotation on the embedded local cloud (sets itself up)"
	@echo "make test   - lint, type checks, template checks and the whole test suite (sets itself up)"
	@echo "make bench  - benchmarks on the local cloud"
	@echo "make lock   - re-pin every dependency (needs network to PyPI)"

$(VENV)/.installed: requirements/dev.txt functions/rotation_core/requirements.txt
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
	rm -rf $(VENV)
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/dev.txt
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	@test -n "$(PYTHON312)" || { echo "python3.12 not found: install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
	rm -rf $(SAM_VENV)
	$(PYTHON312) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --require-hashes --no-deps -r requirements/sam.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed

.PHONY: lint
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# What SAM, cfn-lint and statelint check; the project's own template checks run in pytest.
.PHONY: check-template
check-template: venv $(SAM_VENV)/.installed
	$(VENV)/bin/statelint --ignore=URI statemachine/rotation.asl.json
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml
	PATH="$(dir $(PYTHON312)):$$PATH" $(SAM_VENV)/bin/sam build --cached --parallel --template template.yaml

.PHONY: test
test: lint check-template
	$(PY) -m pytest

.PHONY: lock
lock:
	uv pip compile --quiet requirements/runtime.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o functions/rotation_core/requirements.txt
	uv pip compile --quiet requirements/dev.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o requirements/dev.txt
	uv pip compile --quiet requirements/sam.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o requirements/sam.txt

.PHONY: clean
clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage

.PHONY: demo
demo: venv
	$(PY) -m localcloud demo

.PHONY: bench
bench: venv
	$(PY) -m benchmarks
