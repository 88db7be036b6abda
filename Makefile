# Steward: two commands on a fresh machine with only python3 (3.11+).
#   make run    install what is needed, upgrade the database, open the console on :8501
#   make test   install what is needed, then lint, type-check, check layering and run pytest

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.steward-installed
BENCH_STAMP := $(VENV)/.steward-bench-installed
PORT   ?= 8501

.PHONY: run test lint typecheck pytest bench worker clean phoenix

# The virtual environment is rebuilt only when pyproject.toml changes, so a second call with
# nothing changed starts in seconds.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@

run: $(STAMP)
	$(BIN)/steward db upgrade
	$(BIN)/steward demo seed
	$(BIN)/streamlit run console/server.py --server.port $(PORT) --server.headless true

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --config pyproject.toml

typecheck: $(STAMP)
	$(BIN)/mypy

# Arize Phoenix in a virtual environment of its own (its dependencies pin versions Steward
# outgrew); the end-to-end trace export test starts it (tests/test_telemetry_phoenix.py).
PHOENIX_STAMP := .venv-phoenix/.phoenix-installed
phoenix: $(PHOENIX_STAMP)
$(PHOENIX_STAMP):
	@test -x .venv-phoenix/bin/python || $(PYTHON) -m venv .venv-phoenix
	.venv-phoenix/bin/python -m pip install --quiet --disable-pip-version-check 'arize-phoenix>=20.26,<21'
	@touch $@

# Two test processes, each test file kept whole in one (its module fixtures built once); every
# process has its own PostgreSQL database and temporary files.
pytest: $(STAMP) $(PHOENIX_STAMP)
	$(BIN)/pytest -n 2 --dist loadfile

test: lint typecheck pytest

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .venv-phoenix .pytest_cache .mypy_cache .ruff_cache *.egg-info
