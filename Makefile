# Everything a fresh machine needs comes from here: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv demo serve test unit integration lint typecheck bench bench-sim prometheus certs clean image

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

# STUDY=<checkout of the FGD study's repository> adds all its published workloads, the tune-down ones included
# (bench/study_data.py; needs the go command for their exact arrival order)
bench-sim: venv
	$(if $(STUDY),$(PY) -m bench.study_data --study $(STUDY) --out bench/results/study-data)
	$(PY) -m bench.bench_sim $(if $(STUDY),--data bench/results/study-data)

certs: venv
	$(BIN)/gpu-autoscaler certs --service gpu-autoscaler --namespace gpu-autoscaler --out certs/out

image:
	docker build -t gpu-autoscaler:dev .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
