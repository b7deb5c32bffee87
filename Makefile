# `make demo` and `make test` each set everything up on a fresh clone (a .venv is created when missing).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: demo test lint bench schema screenshots clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	./examples/shop/demo.sh

test: $(BIN)/.installed lint
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

bench: $(BIN)/.installed   # services needs wrk, scale PostgreSQL (apt-get install wrk postgresql)
	$(BIN)/python bench/all.py

screenshots: $(BIN)/.installed   # docs/ui/*.png, taken by the browser tests (needs chromium)
	INTERLINK_SCREENSHOTS=docs/ui $(BIN)/pytest -q tests/ui

schema: $(BIN)/.installed
	$(BIN)/interlink schema --out schema

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache examples/shop/.interlink
