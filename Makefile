# Everything a fresh machine needs comes from here: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv demo serve test unit integration lint typecheck bench bench-sim soak mutation prometheus certs clean image

all: test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "gpu-autoscaler needs Python >= 3.11: make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/gpu-autoscaler demo

serve: venv
	$(BIN)/gpu-autoscaler serve --cluster demo

prometheus:
	@scripts/install-prometheus.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest -q -m "not integration"

integration: venv prometheus
	$(BIN)/pytest -q -m integration

# The README's test command: lint, types, unit and integration tests.
test: venv prometheus
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: venv
	$(PY) -m bench.run_all

bench-sim: venv
	$(PY) -m bench.bench_sim

# Issue 11: 10 minutes of webhook (200/s) and extender (100 cycles/s) load over HTTPS, then the memory of a
# 5,000-node / 50,000-pod view. Results in bench/results/soak-*.json; figures in docs/reliability.md.
soak: venv
	$(PY) -m bench.soak load --seconds 600 --json bench/results/soak-load.json
	$(PY) -m bench.soak memory --nodes 5000 --pods 50000 --json bench/results/soak-memory.json

# Mutation testing of the decision cores (mutmut; slow on 2 cores, not part of CI). `mutmut results` lists
# the survivors, `mutmut show NAME` one diff; the kill rate is in docs/reliability.md.
mutation: venv
	$(PY) -m pip install --quiet -e '.[mutation]'
	$(BIN)/mutmut run
	$(PY) -m bench.mutation_score

certs: venv
	$(BIN)/gpu-autoscaler certs --service gpu-autoscaler --namespace gpu-autoscaler --out certs/out

image:
	docker build -t gpu-autoscaler:dev .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
