# `make run` and `make test` work on a fresh machine with only Python 3.11+ and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Two install sets: `make run` needs the service's own dependencies only (requirements-runtime.lock);
# `make test` (and lint, typecheck, bench) adds the test and lint tools (requirements.lock).
RUNTIME_STAMP := $(VENV)/.runtime-stamp
DEV_STAMP     := $(VENV)/.installed-stamp
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check

.PHONY: install install-runtime run test lint typecheck layers unit bench soak clean

$(RUNTIME_STAMP): requirements-runtime.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-runtime.lock
	$(PIP) --no-deps -e .
	@touch $(RUNTIME_STAMP)

$(DEV_STAMP): $(RUNTIME_STAMP) requirements.lock
	$(PIP) -r requirements.lock
	@touch $(DEV_STAMP)

install-runtime: $(RUNTIME_STAMP)

install: $(DEV_STAMP)

run: install-runtime
	$(BIN)/megilance serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

# One worker per core, at most four (pytest-xdist): the suite is CPU-bound, and its e2e tests start servers.
TEST_WORKERS ?= auto

test: lint typecheck layers
	$(BIN)/python -m pytest -q --durations=15 -n $(TEST_WORKERS) --maxprocesses=4

# The unit tests alone, in one process: seconds, for the edit-test loop.
unit: install
	$(BIN)/python -m pytest -q -m unit tests/unit

bench: install
	$(BIN)/python -m bench.run

soak: install
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
