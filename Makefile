# aircast quick start: `make demo` (the whole chain on this machine) and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.aircast-installed

.PHONY: demo test test-fast lint install clean-data

$(STAMP): requirements.txt setup.py scripts/bootstrap.sh
	@VENV=$(VENV) bash scripts/bootstrap.sh

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/aircast demo

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

lint: $(STAMP)
	$(BIN)/ruff check .

clean-data:
	rm -rf .aircast
