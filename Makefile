# The README's two commands: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run DEMO=1` also loads a generated demo history; HOST and PORT say where to listen.
DEMO ?=
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roomlog serve --host $(HOST) --port $(PORT) $(if $(DEMO),--demo,)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/sessionize.py
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/reads.py
	$(BIN)/python -m benchmarks.webhooks

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
