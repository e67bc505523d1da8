# Tend: run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SERVICES := identity checkin indicators notify audit portal
PACKAGES := libs/tend_common libs/tend_testing $(addprefix services/,$(SERVICES))
PROTOS := $(shell find protos -name '*.proto')

.PHONY: help install venv protos browser services-up test test-fast lint format demo bench bench-checkin eval clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(addprefix -e ,$(PACKAGES))
	touch $@

venv: $(VENV)/.installed ## Create the virtual environment with every package

build/gen/python/.stamp: $(VENV)/.installed $(PROTOS) tools/gen_protos.py
	$(PY) tools/gen_protos.py
	touch $@

protos: build/gen/python/.stamp ## Generate gRPC and protobuf stubs (with type stubs) from protos/

install: venv protos ## Everything needed to run the suite

browser: ## Install Debian's Chromium for the browser tests (needs root, as on the dev and CI machines)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

services-up: ## Check PostgreSQL, Redis and RabbitMQ answer; print the command that starts any that does not
	@$(PY) tools/check_services.py

test: install browser services-up ## Run every test: unit, integration, end-to-end and browser
	$(PY) -m pytest -n 2 --dist loadgroup

test-fast: install services-up ## Run the tests that start no service processes
	$(PY) -m pytest -n 2 -m "not e2e and not browser"

lint: install ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(addprefix -p tend_,common testing $(SERVICES))
	$(VENV)/bin/mypy $(wildcard libs/*/tests services/*/tests) tests tools bench

format: install ## Reformat the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: install services-up ## Start every service with a demo university; Ctrl-C stops them
	$(PY) tools/demo.py

bench: install services-up ## Run the benchmarks; prints a table and writes bench-results.json
	$(PY) -m bench

bench-checkin: install services-up ## Run the check-in benchmark alone
	$(PY) -m bench checkin

eval: install services-up ## Run the quality evaluations; writes eval-results.json
	$(PY) -m bench.eval

clean: ## Remove the virtual environment and generated files
	rm -rf $(VENV) build bench-results.json eval-results.json
