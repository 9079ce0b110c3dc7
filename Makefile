# Value Realization — everything the project needs is installed by these targets.
# Only Python >= 3.11 and make are assumed; uv is bootstrapped into .tools/ on first use.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := .tools/bin/uv
RUN := $(UV) run --frozen

.DEFAULT_GOAL := help
.PHONY: help install prometheus up down soak test test-unit bench lint format token demo clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml shared/pyproject.toml services/*/pyproject.toml deploy/devstack/pyproject.toml
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: .venv/.synced ## install the workspace (services, shared, dev tools) into .venv

# Prometheus and promtool for the dashboard/alert tests: Debian's package, unpacked into .tools/ (nothing
# is installed system-wide; the package index is refreshed only when it does not know the package).
PROMETHEUS_HOME := .tools/prometheus
PROMTOOL := $(PROMETHEUS_HOME)/usr/bin/promtool
$(PROMTOOL):
	rm -rf $(PROMETHEUS_HOME) && mkdir -p $(PROMETHEUS_HOME)/deb
	cd $(PROMETHEUS_HOME)/deb && { apt-get download prometheus 2>/dev/null || { apt-get update -qq && apt-get download prometheus; }; }
	dpkg-deb -x $(PROMETHEUS_HOME)/deb/prometheus_*.deb $(PROMETHEUS_HOME)
	rm -rf $(PROMETHEUS_HOME)/deb
	$(PROMTOOL) --version | head -1

prometheus: $(PROMTOOL) ## fetch Prometheus + promtool (Debian package) into .tools/prometheus

# `up` runs the orchestrator as make's own child (not under `uv run`), so a signal make gets reaches it
# (deploy/devstack/devstack/parent.py). UP_ROOT: where its state goes (ROOT/.local); tests move it.
UP_ROOT ?= $(CURDIR)
up: install ## start PostgreSQL, the broker, the services and Prometheus locally, supervised; Ctrl-C stops them in order
	@$(MAKE) --no-print-directory $(PROMTOOL) || echo "Prometheus (Debian's package) unavailable here: starting without it"
	.venv/bin/python -m devstack --root $(UP_ROOT) up

down: install ## stop a `make up` of this folder that runs elsewhere (a background job, another terminal), in order
	.venv/bin/python -m devstack --root $(UP_ROOT) down

SOAK_MINUTES ?= 10
soak: install ## the stack under load with a random process SIGKILLed every 20–60 s (SOAK_MINUTES, SOAK_SEED); report in docs/reliability.md
	.venv/bin/python -m devstack.soak --root $(CURDIR)/.local/soak --minutes $(SOAK_MINUTES) $(if $(SOAK_SEED),--seed $(SOAK_SEED)) --report docs/reliability.md

test: install $(PROMTOOL) ## run the whole suite against a real broker and PostgreSQL
	$(RUN) pytest $(PYTEST_ARGS)

test-unit: install ## unit tests only: no infrastructure, no external tool (promtool checks run in make test)
	$(RUN) pytest tests/unit -m "not promtool" $(PYTEST_ARGS)

bench: install ## run the benchmarks and write docs/benchmarks.md
	$(RUN) python -m bench.ingest
	$(RUN) python -m bench.broker_storage
	$(RUN) python -m bench.kpi_engine
	$(RUN) python -m bench.kpi_queries
	$(RUN) python -m bench.freshness
	$(RUN) python -m bench.settlement
	$(RUN) python -m bench.gateway
	$(RUN) python -m bench.interop

lint: install ## ruff (format check + lint), mypy (strict) and the import layers (lint-imports)
	$(RUN) ruff format --check .
	$(RUN) ruff check .
	$(RUN) mypy shared/vr_shared services/ingest/ingest services/kpi-engine/kpi_engine services/settlement/settlement services/gateway/gateway deploy/devstack/devstack deploy/cli/vr_cli bench
	$(RUN) lint-imports

format: install ## apply ruff formatting and fixes
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

TENANT ?= demo-health
FACILITIES ?= demo-main
ROLE ?= pipeline
TIMEZONE ?= America/New_York
SERVICE ?= ingest
token: install ## print an identity token for direct calls to one service (TENANT, FACILITIES, ROLE, TIMEZONE, SERVICE)
	@$(RUN) python -m devstack --root $(CURDIR) token --tenant $(TENANT) --facilities $(FACILITIES) --role $(ROLE) --timezone $(TIMEZONE) --service $(SERVICE)

DEMO_FORMAT ?= json
demo: install ## with `make up` running: a health system, a vendor, a contract, a year of events (DEMO_FORMAT=json|hl7|fhir), the quarters
	$(RUN) vr demo --format $(DEMO_FORMAT) --key "$$($(RUN) python -m devstack --root $(CURDIR) admin-key)"

clean: ## remove local state (database data, logs, secrets) and environments
	rm -rf .local .venv .tools
