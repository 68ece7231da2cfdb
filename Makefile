# The two commands of the README: `make run` and `make test`. Everything else is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RULESET := .spectral.yaml

.PHONY: run test lint-api openapi schemas bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## run: the service on its embedded defaults (SQLite, loopback broker, demo organisations) on 127.0.0.1:8000
run: $(BIN)/.installed
	$(BIN)/brb demo

## test: the whole suite — NL API Design Rules lint of openapi.yaml, then unit, integration and e2e tests
test: $(BIN)/.installed lint-api
	$(BIN)/python -m pytest

lint-api: node_modules/.installed
	npx --no-install spectral lint --fail-severity=error -r $(RULESET) openapi.yaml

## openapi / schemas: regenerate the committed openapi.yaml, the contract JSON Schemas and docs/legal-basis.md
openapi: $(BIN)/.installed
	$(BIN)/brb openapi > openapi.yaml

schemas: $(BIN)/.installed
	$(BIN)/python -m contracts.schema
	$(BIN)/python -m consent.legal_basis

## bench: the performance figures (ratios against a baseline measured in the same run)
bench: $(BIN)/.installed
	$(BIN)/python bench/benchmark.py $(ARGS)

clean:
	rm -rf $(VENV) node_modules .var
