# `make run` and `make test` work on a fresh machine with only Python 3.11+ and pip.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck layers unit bench soak clean

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
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

bench: install
	$(BIN)/python -m bench.run

soak: install
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
