# Two commands on a fresh machine (Debian/Ubuntu, Python 3.11):
#   make demo   set up .venv and run a real processing job on an embedded default
#   make test   set up .venv and run the test suite (the command CI runs)
# While working: `make test-fast` (the suite without the tests marked slow) and `make lint`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO   ?= demo

.PHONY: setup demo test test-fast lint lut clean
.DEFAULT_GOAL := demo

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/system-deps.sh
	./scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[lut,test]"
	touch $@

demo: setup
	./scripts/demo.sh $(BIN) $(DEMO)

test: setup
	$(BIN)/python -m pytest -q

# Everything but the tests marked slow (flows, end to end, remote servers, live 6S): under 2 minutes on 2 cores.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# The habits CI checks: lint, formatting and types (configuration in pyproject.toml).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy sen2core

# Rebuild the packaged radiative-transfer LUT (about an hour on 2 cores; resumable).
lut: setup
	$(BIN)/sen2core lut build --grid full --workdir lut-build

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .mypy_cache .ruff_cache
