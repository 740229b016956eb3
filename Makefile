# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Both install everything they need: uv (into .uv-bootstrap if it is not on PATH), then the locked
# environment (uv.lock) with compiled bytecode into .venv.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .uv-bootstrap/bin/uv)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: install demo demo-bigquery test bench lint emulator clean

.uv-bootstrap/bin/uv:
	$(PYTHON) -m venv .uv-bootstrap
	.uv-bootstrap/bin/pip install --quiet uv==0.13.9

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PYTHON=$(PYTHON) $(UV) sync --frozen --all-extras --compile-bytecode
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) -m airflow_llm_batch.cli demo

demo-bigquery: install
	$(PY) -m airflow_llm_batch.demo_bigquery

test: install lint
	$(PY) -m pytest

# `make bench` finishes in a few minutes on 2 cores; the issue's sizes:
# make bench BENCH_ROWS="10000 100000 1000000" BENCH_PREPARE_ROWS="100000 1000000"
BENCH_PREPARE_ROWS ?= 100000
BENCH_TRIGGERS ?= 100 500 1000
BENCH_ROWS ?= 10000
BENCH_REALTIME_ROWS ?= 10000
bench: install
	$(PY) bench/prepare_and_parse.py --rows $(BENCH_PREPARE_ROWS)
	$(PY) bench/prepare_and_parse.py --rows $(BENCH_PREPARE_ROWS) --plain --out bench/out/prepare_and_parse_plain.md
	$(PY) bench/prepare_rows.py --rows 100000
	$(PY) bench/trigger_load.py --n $(BENCH_TRIGGERS)
	$(PY) bench/e2e.py --rows $(BENCH_ROWS)
	$(PY) bench/realtime_throughput.py --rows $(BENCH_REALTIME_ROWS) --transport sdk raw

lint: install
	$(VENV)/bin/ruff check airflow_llm_batch tests example_dags bench
	$(VENV)/bin/mypy airflow_llm_batch

emulator: install
	$(PY) -m airflow_llm_batch.cli emulator --host 127.0.0.1 --port 8787

clean:
	rm -rf $(VENV) .uv-bootstrap .demo
