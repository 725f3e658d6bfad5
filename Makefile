# The two README commands are `make demo` (main job) and `make test` (test suite).
# Both do their own set-up: system packages (when root), the .venv, and the
# local control plane binaries (built once from Go modules, cached in ~/.cache).
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup system-deps test demo cluster lint bench-operator bench-app clean

setup: $(STAMP)

$(STAMP): app/pyproject.toml operator/pyproject.toml requirements-dev.txt
	@echo ">> creating $(VENV) and installing the app, the operator and the test tools"
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ./app -e ./operator -r requirements-dev.txt
	@touch $@

system-deps:
	@scripts/system-deps.sh

test: system-deps $(STAMP)
	@echo ">> control plane binaries (built from tests/cluster/go.mod on first run, then cached)"
	$(VENV)/bin/python -m tests.cluster.localcluster build
	$(VENV)/bin/pytest

# Go is needed to build the local control plane on first use (hence system-deps).
# Extra options: make demo DEMO_ARGS="--operator-logs" (see scripts/demo.py --help).
demo: system-deps $(STAMP)
	$(VENV)/bin/python scripts/demo.py $(DEMO_ARGS)

cluster: $(STAMP)
	$(VENV)/bin/python -m tests.cluster.localcluster up

# Benchmarks (SPEC section 7): each script prints its progress and figures.
bench-operator: system-deps $(STAMP)
	$(VENV)/bin/python bench/operator_latency.py --apiserver-only
	$(VENV)/bin/python bench/operator_latency.py
	$(VENV)/bin/python bench/operator_scale.py --apiserver-only
	$(VENV)/bin/python bench/operator_scale.py

bench-app: system-deps $(STAMP)
	$(VENV)/bin/python bench/app_menu.py
	$(VENV)/bin/python bench/app_payments.py
	$(VENV)/bin/python bench/app_shutdown.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
