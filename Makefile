# Ulak — developer commands. See README.md.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install run lint test bench bench-ingest-cpu bench-segments bench-messaging bench-single bench-mime bench-journeys bench-experiments bench-dashboard bench-retl migrate clean frontend

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade "pip>=24" >/dev/null
	$(PIP) install -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/run.py

lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(PY) manage.py makemigrations --check --dry-run

test: lint
	$(PY) -m pytest -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/ingest.py $(BENCH_ARGS)

bench-ingest-cpu: $(STAMP)
	$(PY) benchmarks/ingest_cpu.py $(BENCH_ARGS)

bench-segments: $(STAMP)
	$(PY) benchmarks/segments.py $(BENCH_ARGS)

bench-messaging: $(STAMP)
	$(PY) benchmarks/messaging.py $(BENCH_ARGS)

bench-single: $(STAMP)
	$(PY) benchmarks/single_path_cpu.py $(BENCH_ARGS)

bench-mime: $(STAMP)
	$(PY) benchmarks/mime.py $(BENCH_ARGS)

bench-journeys: $(STAMP)
	$(PY) benchmarks/journeys.py $(BENCH_ARGS)

bench-dashboard: $(STAMP)
	$(PY) benchmarks/dashboard.py $(BENCH_ARGS)

bench-experiments: $(STAMP)
	$(PY) benchmarks/experiments.py $(BENCH_ARGS)

bench-retl: $(STAMP)
	$(PY) benchmarks/reverse_etl.py $(BENCH_ARGS)

migrate: $(STAMP)
	$(PY) manage.py migrate

frontend:
	cd frontend && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .ulak staticfiles
