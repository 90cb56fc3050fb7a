# `make test`: a virtual environment from nothing, then lint and the whole suite.
# `make demo`: the same environment, then the two-service demo on the shipped default bundle.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo proto clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check sjscc tests scripts

test: $(STAMP) lint
	$(BIN)/python -m pytest -q -ra

demo: $(STAMP)
	$(BIN)/sjscc demo

proto: $(STAMP)
	$(BIN)/python -m sjscc.proto.generate

clean:
	rm -rf $(VENV) .pytest_cache
