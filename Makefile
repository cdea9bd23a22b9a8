# Everything a fresh machine needs comes from here: `make demo` and `make test` create the virtualenv.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: all venv demo console serve test unit integration lint typecheck bench bench-sim bench-console \
	console-screenshots prometheus chromium kubectl certs clean image manifests dashboards rules soak mutation

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

# The demo, then its server stays up so the console (printed address, /ui) can be opened: Ctrl-C to stop.
console: venv
	$(BIN)/gpu-autoscaler demo --keep-serving $(if $(PORT),--port $(PORT))

serve: venv
	$(BIN)/gpu-autoscaler serve --cluster demo

prometheus:
	@scripts/install-prometheus.sh

kubectl: venv
	@scripts/install-kubectl.sh $(VENV)

# Render every kustomization and validate each object against the Kubernetes (and vendored CRD) schemas.
manifests: venv kubectl
	$(BIN)/pytest -q tests/app/test_manifests.py

# Grafana dashboards (manifests/dashboards/*.json) are generated: edit build.py, then run this.
dashboards: venv
	$(PY) manifests/dashboards/build.py

# promtool check/test of the PrometheusRules (also part of `make test`).
rules: venv prometheus
	$(BIN)/pytest -q tests/monitoring/test_rules.py

# Debian's Chromium and chromedriver: the console's browser tests (tests/console/test_browser.py)
chromium:
	@scripts/install-chromium.sh

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

unit: venv kubectl
	$(BIN)/pytest -q -m "not integration"

integration: venv prometheus kubectl chromium
	$(BIN)/pytest -q -m integration

# The README's test command: lint, types, unit and integration tests.
test: venv prometheus kubectl chromium
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

# Console first paint at 1,000 nodes (server time, page size, Chromium's first contentful paint)
bench-console: venv
	$(PY) -m bench.bench_console

# Re-take the screenshots in docs/console.md with the browser test that checks the console
console-screenshots: venv chromium
	CONSOLE_SCREENSHOTS=docs/img $(BIN)/pytest -q -m integration tests/console/test_browser.py

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

# The image the manifests run (manifests/kustomization.yaml `images:` names gpu-autoscaler:<version>).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= gpu-autoscaler:$(VERSION)
image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
