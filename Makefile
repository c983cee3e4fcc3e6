# The README's two commands: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# `make run DEMO=1` also loads a generated demo history; HOST and PORT say where to listen.
# `make test` spreads the tests over every core (pytest-xdist); plain `pytest` runs them in
# one process.
# The browser tests drive this Chromium; `make test` installs Debian's where it can.
CHROMIUM ?= /usr/bin/chromium
DEMO ?=
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/roomlog serve --host $(HOST) --port $(PORT) $(if $(DEMO),--demo,)

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -n auto

chromium:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian's chromium for the browser tests..."; \
	    apt-get install -y -q chromium >/dev/null 2>&1 \
	      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
	      || echo "chromium could not be installed: the browser tests will skip"; \
	  else \
	    echo "no chromium at $(CHROMIUM) and no apt-get as root: the browser tests will skip"; \
	  fi; }

bench: $(STAMP)
	$(BIN)/python benchmarks/sessionize.py
	$(BIN)/python -m benchmarks.sessionize_sizes
	$(BIN)/python -m benchmarks.attendance
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/reads.py
	$(BIN)/python -m benchmarks.webhooks
	$(BIN)/python -m benchmarks.dashboard

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
