# `make test`: a virtual environment from nothing, then lint and the whole suite, which includes the Compose
#   tests (marker `compose`: the images built, `docker compose up` run for real; skipped only where no Docker
#   engine can be started). `make test-compose`: those alone. `pytest -m "not compose"` leaves them out.
# `make demo`: the same environment, then the two-service demo on the shipped default bundle.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-compose images lint demo proto clean

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

# Builds the images (scripts/compose-images.sh), then up, classify, kill/start the edge, three replicas, down -v.
# Bounded: a cold build (torch downloaded) is allowed 40 minutes inside the tests, the whole target 60.
test-compose: $(STAMP)
	SJSCC_PYTHON=$(BIN)/python scripts/docker-engine.sh || true
	timeout 3600 $(BIN)/python -m pytest -q -ra -m compose tests/deploy/test_compose.py

# The two images, built in whichever world this host is in (base image, torch index, CA: see the script).
images:
	scripts/compose-images.sh >/dev/null

demo: $(STAMP)
	$(BIN)/sjscc demo

proto: $(STAMP)
	$(BIN)/python -m sjscc.proto.generate

clean:
	rm -rf $(VENV) .pytest_cache
