# One entry point for developers and CI: `make demo` runs a local rotation, `make test` checks everything.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
SAM_VENV := .venv-sam
UV_VENV := .venv-uv
PY := $(VENV)/bin/python
UV := $(UV_VENV)/bin/uv
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
# uv uses the python3.12 it is given and never downloads one of its own.
export UV_PYTHON_DOWNLOADS := never

# Lambda runs python3.12: use it on PATH, else from pyenv, else stop with a clear message.
PYTHON312 ?= $(shell tools/find-python312)
define need-python312
@test -n "$(PYTHON312)" || { echo "python3.12 not found: install it (e.g. 'pyenv install 3.12') or set PYTHON312=/path/to/python3.12" >&2; exit 1; }
endef

.PHONY: help
help:
	@echo "make demo   - full local rotation on the embedded local cloud (sets itself up)"
	@echo "make test   - lint, type checks, template checks and the whole test suite (sets itself up)"
	@echo "make build  - sam build: the Lambda artifacts in .aws-sam/build"
	@echo "make deploy - build, then sam deploy: guided the first time, then from samconfig.toml"
	@echo "make bench  - benchmarks on the local cloud"
	@echo "make coverage - line and branch coverage of the unit, integration and client tests"
	@echo "make soak   - a simulated week of 1-hour tokens with random faults (SEED=n replays one)"
	@echo "make lock   - re-pin every dependency (needs network to PyPI)"
	@echo "make docs   - serve the documentation site (docs/) at http://127.0.0.1:8000"
	@echo "make google-setup      - the deployed stack's Google-side setup, filled in (STACK=name)"
	@echo "make post-deploy-check - rotate once and check token, Google, refresh, alarm, topic (STACK=name)"

# uv installs the hash-pinned locks in seconds and prints every package it installs. It is
# itself pinned by version and hash (requirements/uv.txt) and bootstrapped with pip into a tiny
# virtual environment of its own.
$(UV): requirements/uv.txt
	$(need-python312)
	rm -rf $(UV_VENV)
	$(PYTHON312) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	touch $@

# A venv is created only when it is missing or not python3.12, then synced to its lock in place:
# `uv pip sync` installs, upgrades and removes what differs from the lock (a venv's own pip stays).
# It compiles the bytecode, as pip did: where PYTHONDONTWRITEBYTECODE is set, every process (each
# local-cloud worker, sam, cfn-lint) would otherwise compile botocore & co. from source again.
define sync-venv
$(need-python312)
@$(1)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null || { \
  if [ -e $(1) ]; then echo "$(1) is not a python3.12 virtual environment: recreating it"; rm -rf $(1); fi; \
  set -x; $(UV) venv --quiet --python $(PYTHON312) $(1); }
$(UV) pip sync --require-hashes --compile-bytecode --python $(1)/bin/python $(2)$(if $(LABEL_OUTPUT), 2>&1 | sed -u 's|^|[$(1)] |'; exit $${PIPESTATUS[0]})
touch $(1)/.installed
endef

# The client package (client/) goes in editable, as an application installs it: the demo, the
# examples and the tests import it from there. Its build backend, flit_core, is in the dev lock.
$(VENV)/.installed: requirements/dev.txt functions/rotation_core/requirements.txt client/pyproject.toml | $(UV)
	$(call sync-venv,$(VENV),requirements/dev.txt)
	$(UV) pip install --quiet --no-deps --no-build-isolation --python $(VENV)/bin/python --editable client || { rm -f $@; exit 1; }

$(SAM_VENV)/.installed: requirements/sam.txt | $(UV)
	$(call sync-venv,$(SAM_VENV),requirements/sam.txt)

# Both venvs at once (make test needs both), each line of uv's output labelled with its venv.
.PHONY: venvs
venvs: | $(UV)
	@$(MAKE) --no-print-directory -j2 LABEL_OUTPUT=1 $(VENV)/.installed $(SAM_VENV)/.installed

.PHONY: venv
venv: $(VENV)/.installed

.PHONY: lint
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# sam build installs each function's requirements with `python3.12 -m pip`, the first python3.12
# on PATH: the uv-made venvs have no pip (.venv-sam neither, when activated), so a python3.12 that
# has pip goes first on PATH for it.
SAM_BUILD_PYTHON ?= $(shell tools/find-python312 --with-pip)
define need-pip
@test -n "$(SAM_BUILD_PYTHON)" || { echo "no python3.12 with pip found, which sam build needs: run 'python3.12 -m ensurepip --upgrade' (or install your distribution's pip for python3.12, or 'pyenv install 3.12'), or set SAM_BUILD_PYTHON=/path/to/a/python3.12-with-pip" >&2; exit 1; }
@$(SAM_BUILD_PYTHON) -m pip --version >/dev/null 2>&1 || { echo "$(SAM_BUILD_PYTHON) has no pip, which sam build needs: run '$(SAM_BUILD_PYTHON) -m ensurepip --upgrade' (or install your distribution's pip for python3.12), or set SAM_BUILD_PYTHON=/path/to/a/python3.12-with-pip" >&2; exit 1; }
endef

# The Lambda artifacts in .aws-sam/build (options from samconfig.toml: cached, parallel).
.PHONY: build
build: $(SAM_VENV)/.installed
	$(need-pip)
	PATH="$(dir $(SAM_BUILD_PYTHON)):$$PATH" $(SAM_VENV)/bin/sam build

# Guided the first time (samconfig.toml saves no region yet), after tools/deploy_guide.py has
# printed what it asks and what to answer; after that, with the settings samconfig.toml saves.
.PHONY: deploy
deploy: build
	@$(SAM_VENV)/bin/python -m tools.deploy_guide; mode=$$?; \
	if [ $$mode -eq 0 ]; then set -x; $(SAM_VENV)/bin/sam deploy; \
	elif [ $$mode -eq 3 ]; then set -x; $(SAM_VENV)/bin/sam deploy --guided; \
	else exit $$mode; fi

# What SAM, cfn-lint and statelint check; the project's own template checks run in pytest.
.PHONY: check-template
check-template: venv build
	$(VENV)/bin/statelint --ignore=URI statemachine/rotation.asl.json
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(SAM_VENV)/bin/cfn-lint template.yaml

# The Node.js example's packages, exactly as its lock file pins them (tests/e2e runs the example).
examples/node/node_modules/.installed: examples/node/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 20 or later (with npm), e.g. from https://nodejs.org or the distribution's nodejs and npm packages" >&2; exit 1; }
	cd examples/node && npm ci --no-audit --no-fund
	touch $@

# pytest runs two workers (the soaks alone take minutes each) and the lint and template checks run
# beside them, so both cores stay busy to the end. The checks print first, live; pytest's output waits in a file meanwhile, then is followed
# live from its first line, so the two never mix. Both always finish; either failing fails the run.
.PHONY: test
test: venvs examples/node/node_modules/.installed
	@tests_log=$$(mktemp); tests_pid=; \
	trap 'rm -f "$$tests_log"' EXIT; \
	trap '[ -z "$$tests_pid" ] || kill $$tests_pid 2>/dev/null; exit 130' INT TERM; \
	echo "$(PY) -m pytest &   # started now; its output follows the checks"; \
	$(PY) -m pytest --numprocesses 2 --dist worksteal --durations=25 $$([ -t 1 ] && echo --color=yes) >"$$tests_log" 2>&1 & tests_pid=$$!; \
	$(MAKE) --no-print-directory --keep-going lint check-template; checks=$$?; \
	echo "$(PY) -m pytest   # output so far, then live"; \
	tail -n +1 -f --pid=$$tests_pid "$$tests_log"; \
	wait $$tests_pid; tests=$$?; \
	[ $$checks -eq 0 ] || echo "make test: the lint or template checks failed (see above the tests)" >&2; \
	[ $$checks -eq 0 ] && [ $$tests -eq 0 ]

.PHONY: lock
lock: | $(UV)
	$(UV) pip compile --quiet requirements/uv.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o requirements/uv.txt
	$(UV) pip compile --quiet requirements/runtime.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o functions/rotation_core/requirements.txt
	$(UV) pip compile --quiet requirements/dev.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o requirements/dev.txt
	$(UV) pip compile --quiet requirements/sam.in --python-version 3.12 --python-platform linux --generate-hashes --no-header --custom-compile-command "make lock" -o requirements/sam.txt

.PHONY: clean
clean:
	rm -rf $(VENV) $(SAM_VENV) $(UV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .coverage examples/node/node_modules

.PHONY: demo
demo: venv
	$(PY) -m localcloud demo

# The documentation site, rebuilt on every save; tests/static/test_docs_site.py builds it with --strict.
.PHONY: docs
docs: venv
	$(PY) -m mkdocs serve

.PHONY: bench
bench: venv
	$(PY) -m benchmarks

# Coverage of the code the tests run in-process (the unit, integration and client tiers): the
# local cloud runs each Lambda in a worker process of its own, which coverage does not follow, and
# tracing its in-process servers made `make test` a third slower for no measurement.
.PHONY: coverage
coverage: venv
	$(PY) -m pytest --numprocesses 2 --cov --cov-report=term tests/unit tests/integration tests/client

.PHONY: soak
soak: venv
	$(PY) -m localcloud soak --lifetimes $(or $(LIFETIMES),168) $(if $(SEED),--seed $(SEED)) $(if $(SOURCE),--source $(SOURCE)) $(if $(KEY_EXPIRY_HOURS),--key-expiry-hours $(KEY_EXPIRY_HOURS))

# The operator tools (stacktools/): they read the deployed stack (CloudFormation DescribeStacks)
# with your AWS credentials and region; STACK=name for a stack samconfig.toml does not name.
.PHONY: google-setup
google-setup: venv
	$(PY) -m stacktools google-setup $(if $(STACK),--stack-name $(STACK))

.PHONY: post-deploy-check
post-deploy-check: venv
	$(PY) -m stacktools check $(if $(STACK),--stack-name $(STACK))
