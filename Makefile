# fediverse-net: `make run` serves a local instance, `make test` runs the whole suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run run-second test test-sqlite test-postgres lint peers bench clean migrations

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## A working instance on http://127.0.0.1:8000 with SQLite under ./data (created on first run).
run: install
	FEDINET_DOMAIN=$${FEDINET_DOMAIN:-$(HOST):$(PORT)} \
	FEDINET_ALLOW_PRIVATE_ADDRESSES=$${FEDINET_ALLOW_PRIVATE_ADDRESSES:-true} \
	$(VENV)/bin/fediverse-net serve --host $(HOST) --port $(PORT)

## A second local instance on port 8001 with its own data dir, to federate with the first.
run-second: install
	FEDINET_DOMAIN=$(HOST):8001 FEDINET_DATA_DIR=data-8001 FEDINET_ALLOW_PRIVATE_ADDRESSES=true \
	$(VENV)/bin/fediverse-net serve --host $(HOST) --port 8001

## The whole suite on SQLite, then again on PostgreSQL when FEDINET_TEST_POSTGRES_URL is set.
test: install peers
	$(PY) -m pytest
	@if [ -n "$$FEDINET_TEST_POSTGRES_URL" ]; then \
		echo "== again on PostgreSQL =="; \
		FEDINET_TEST_DATABASE_URL="$$FEDINET_TEST_POSTGRES_URL" $(PY) -m pytest; \
	fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy fediverse_net
	$(VENV)/bin/lint-imports

## Copies ../shared/peers to .cache/peers and installs them (needs Node.js; skipped without it).
peers:
	@bash scripts/setup-peers.sh

bench: install
	$(PY) -m benchmarks

## Regenerate migrations after changing models.
migrations: install
	$(VENV)/bin/tortoise -c fediverse_net.db.makemigrations_config.TORTOISE_ORM makemigrations

clean:
	rm -rf $(VENV) .cache build *.egg-info
