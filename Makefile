# HeliosDB Nano: every target creates .venv and installs the package (non-editable:
# twistd only finds plugins in an installed twisted/plugins).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.deps-stamp
SOURCES := $(shell find helios grammar twisted_plugins -type f \( -name '*.py' -o -name '*.lark' -o -name '*.md' \) 2>/dev/null) setup.py

.PHONY: run test install bench conformance fuzz-api clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip "setuptools>=69" wheel

# Dependencies (with test and bench extras) are installed once per setup.py change.
$(STAMP): setup.py | $(BIN)/python
	$(BIN)/pip install --quiet ".[test,bench,fuzz]"
	touch $(STAMP)

# The package itself is reinstalled whenever a source file changes.
$(VENV)/.pkg-stamp: $(STAMP) $(SOURCES)
	flock $(VENV)/.install-lock $(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .
	touch $@

install: $(VENV)/.pkg-stamp

test: install
	$(BIN)/python -P -m pytest

run: install
	mkdir -p data
	$(BIN)/twistd -n helios --data ./data

bench: install
	$(BIN)/python -P bench/run_all.py

conformance: install
	$(BIN)/python -P tests/slt/run.py --all ../shared/conformance

# schemathesis against the live daemon's own OpenAPI document: 0 failures, 0 server errors.
fuzz-api: install
	$(BIN)/python -P tests/api/fuzz_api.py --max-examples 50

clean:
	rm -rf $(VENV) build *.egg-info
