# The two commands of the README: `make run` and `make test`. Everything else is installed from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RULESET := .spectral.yaml

.PHONY: run test lint-api openapi schemas bench clean

CLIENT := adapters/brb-client

$(BIN)/.installed: pyproject.toml $(CLIENT)/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ./$(CLIENT) -e ".[dev]"
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

## run: the service on its embedded defaults (SQLite, loopback broker, demo organisations) on 127.0.0.1:8000
run: $(BIN)/.installed
	$(BIN)/brb demo

## test: the whole suite — NL API Design Rules lint of openapi.yaml, then unit, integration and e2e tests
test: $(BIN)/.installed lint-api wrk chromium node_modules/.installed
	$(BIN)/python -m pytest

lint-api: node_modules/.installed
	npx --no-install spectral lint --fail-severity=error -r $(RULESET) openapi.yaml

## openapi / schemas: regenerate the committed openapi.yaml, the contract JSON Schemas and docs/legal-basis.md
openapi: $(BIN)/.installed
	$(BIN)/brb openapi > openapi.yaml

## collection: the Bruno collection docs/collection/bruno/, generated from the committed openapi.yaml
## (`bru import openapi`, a devDependency), plus a `local` environment for `make run`
COLLECTION ?= docs/collection/bruno
.PHONY: collection
collection: node_modules/.installed openapi.yaml
	@test -n "$(COLLECTION)"
	rm -rf "$(COLLECTION)" && mkdir -p "$(dir $(COLLECTION))"
	npx --no-install bru import openapi --source openapi.yaml --output "$(COLLECTION)" \
		--collection-name "Berichtenbox Re-integratie" --collection-format bru --group-by tags > /dev/null
	printf 'vars {\n  baseUrl: http://127.0.0.1:8000/api/v1\n}\nvars:secret [\n  token\n]\n' \
		> "$(COLLECTION)/environments/local.bru"

schemas: $(BIN)/.installed
	$(BIN)/python -m contracts.schema
	$(BIN)/python -m consent.legal_basis

## bench: the HTTP benchmark (docs/performance.md): `brb serve` under wrk against bare FastAPI baselines measured
## in the same run; ARGS="--postgres" adds PostgreSQL, ARGS="--quick" a short run. bench-micro: in-process figures
bench: $(BIN)/.installed wrk
	$(BIN)/python bench/benchmark.py $(ARGS)

.PHONY: bench-micro wrk chromium assets
bench-micro: $(BIN)/.installed
	$(BIN)/python bench/micro.py $(ARGS)

## wrk: Debian's HTTP load generator, installed when missing
wrk:
	command -v wrk >/dev/null || (apt-get install -y wrk || (apt-get update && apt-get install -y wrk))

## chromium: Debian's Chromium for tests/browser (Playwright launches it by its path; no browser download)
chromium:
	test -x /usr/bin/chromium || (apt-get install -y chromium || (apt-get update && apt-get install -y chromium))

## assets: copy the audit pages' front-end packages (package.json) into gateway/pages/static/vendor, where they are
## committed, so the pages need neither npm nor the internet at run time (tests/unit/test_pages_assets.py checks them)
VENDOR := gateway/pages/static/vendor
assets: node_modules/.installed
	cp node_modules/@utrecht/component-library-css/dist/index.css $(VENDOR)/utrecht-components.css
	cp node_modules/@utrecht/design-tokens/dist/theme.css $(VENDOR)/utrecht-design-tokens.css
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.min.js $(VENDOR)/

clean:
	rm -rf $(VENV) node_modules .var
