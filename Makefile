# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench airflow docs sim clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (Python 3.11)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet --no-deps -e .
	@touch $(STAMP)

## demo: simulators + Airflow (SQLite) + the real DAGs over the last 30 days + marts + report
demo: install
	$(PY) -m invoice_warehouse.demo

## test: the whole suite (unit, contract, integration, DAG runs end to end)
test: install
	$(PY) -m pytest

test-fast: install
	$(PY) -m pytest -m "not e2e"

lint: install
	$(VENV)/bin/ruff check .

## bench: performance against the floor and against dlt (results in bench/results/)
bench: install
	$(PY) bench/run.py $(BENCH_ARGS)

## airflow: the Airflow UI on http://localhost:8080 with the project's connections and pools
airflow: install
	$(PY) -m invoice_warehouse.local_airflow

## docs: build and serve the dbt docs site on http://localhost:8081
docs: install
	$(PY) -m invoice_warehouse.local_airflow --dbt-docs

## sim: the five simulators in the foreground on http://127.0.0.1:8900
sim: install
	$(VENV)/bin/iwh-sim --port 8900

clean:
	rm -rf data .airflow dbt_project/target dbt_project/logs
