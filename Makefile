# baro — developer entrypoints. Everything installs into .venv from the project's own files.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
# trust the machine's certificate store (registries may sit behind a proxy with its own CA)
export UV_SYSTEM_CERTS := 1
# the Python that .venv is built on (>= 3.11); `make install PYTHON=python3.12` picks another
PYTHON ?= python3
# uv comes from PATH, else the uv module of $(PYTHON), else a private copy in .venv-uv made
# with `$(PYTHON) -m venv` (never pip --user: PEP 668 forbids it on Debian's and Ubuntu's
# Python). The pin matches the Dockerfile's uv image.
UV_VERSION := 0.13.9
UV_HOME := .venv-uv
UV = $(shell command -v uv 2>/dev/null || { $(PYTHON) -m uv --version >/dev/null 2>&1 && echo $(PYTHON) -m uv; } || echo $(UV_HOME)/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# where `make install-cli` links the baro command
BINDIR ?= $(shell echo ~)/.local/bin

.PHONY: install install-cli uv python demo test test-fast test-faults test-cluster test-cli test-install lint bench bench-cluster clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml uv.lock shared/pyproject.toml services/*/pyproject.toml cli/pyproject.toml | uv
	$(UV) sync --frozen --all-packages --group dev --python $(PYTHON) --compile-bytecode
	@# baro's own modules too (installed editable, so uv leaves them): every baro process, agent
	@# runner and service start would otherwise compile them again wherever bytecode is not
	@# written (PYTHONDONTWRITEBYTECODE), about 2 s of CPU per `baro` command
	@$(PY) -m compileall -q shared/src services/*/src cli/src >/dev/null
	@$(VENV)/bin/nats-server --version >/dev/null
	@touch $(STAMP)
	@echo "baro is installed in $(VENV)/bin/baro; make install-cli puts it on your PATH"

python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found: install Python >= 3.11 (Debian/Ubuntu: sudo apt install python3 python3-venv)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "make: baro needs Python >= 3.11, $(PYTHON) is $$($(PYTHON) --version 2>&1 | cut -d' ' -f2): install a newer one and run make PYTHON=python3.11 (or python3.12, ...)" >&2; exit 1; }

uv: python
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(UV_HOME)/bin/uv --version >/dev/null 2>&1 || { \
	  rm -rf $(UV_HOME); \
	  $(PYTHON) -m venv $(UV_HOME) >/dev/null 2>&1 || { rm -rf $(UV_HOME); echo "make: $(PYTHON) cannot create a virtual environment: install python3-venv (Debian/Ubuntu: sudo apt install python3-venv), or install uv (https://docs.astral.sh/uv/)" >&2; exit 1; }; \
	  echo "installing uv $(UV_VERSION) into $(UV_HOME)"; \
	  $(UV_HOME)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)" || { rm -rf $(UV_HOME); echo "make: could not install uv from PyPI into $(UV_HOME) (see pip's message above)" >&2; exit 1; }; \
	}

# `baro` on PATH: a link to this checkout's .venv/bin/baro (it follows the checkout)
install-cli: install
	@mkdir -p $(BINDIR)
	@if [ -e $(BINDIR)/baro ] && [ ! -L $(BINDIR)/baro ]; then echo "make: $(BINDIR)/baro exists and is not a link made by make install-cli: remove it or pass BINDIR=..." >&2; exit 1; fi
	@ln -sfn $(CURDIR)/$(VENV)/bin/baro $(BINDIR)/baro
	@echo "linked $(BINDIR)/baro -> $(CURDIR)/$(VENV)/bin/baro"
	@case ":$$PATH:" in *":$(BINDIR):"*) ;; *) echo "$(BINDIR) is not on your PATH: add it, e.g. echo 'export PATH=\"$(BINDIR):\$$PATH\"' >> ~/.profile, then open a new shell";; esac

demo: install
	$(VENV)/bin/baro demo

# the suite on TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs it in this one.
# Most tests wait on subprocesses, so more workers than the two cores CI has pay off: on
# 2 cores 3 beat 2 and 4. worksteal: test durations vary from milliseconds to a minute,
# so an idle worker takes queued tests from a busy one (no file needs one worker: every
# test owns its server, ports and directories).
TEST_WORKERS ?= 3

test: install lint
	$(VENV)/bin/pytest -q -n $(TEST_WORKERS) --dist worksteal

test-fast: install
	$(VENV)/bin/pytest -q -m "not slow"

test-faults: install
	$(VENV)/bin/pytest -q -m faults tests/faults

# three clustered nats-servers: replication, fenced runners, leaders killed and a server paused
test-cluster: install
	$(VENV)/bin/pytest -q -m cluster tests/cluster

test-cli: install
	./tests/cli_contract/install-clis.sh
	$(VENV)/bin/pytest -q -m cli tests/cli_contract

# a fresh clone installed and demonstrated under `env -i` with the machine's own Python
test-install: install
	$(VENV)/bin/pytest -q -m install tests/install

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m bench

# baro on a three-server cluster under load and failover (about 5 minutes on 2 cores)
bench-cluster: install
	$(PY) -m bench --only cluster

clean-venv:
	rm -rf $(VENV) $(UV_HOME)
