# kubewright: `make demo` and `make test` do everything on a fresh machine (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
DEMO_NODES ?= 20

.PHONY: setup test test-unit test-envtest test-sim test-e2e lint demo demo-down bench controlplane clean

setup:
	bash scripts/setup.sh

controlplane:
	bash tools/controlplane/build.sh

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash scripts/helm-lint.sh

# Every tier, in order of cost. A tier with no tests yet (pytest exit 5) is not a failure.
test: lint
	$(MAKE) --no-print-directory test-unit test-envtest test-sim test-e2e

test-unit:
	$(PYTEST) -m unit -q
test-envtest:
	$(PYTEST) -m envtest -q
test-sim:
	$(PYTEST) -m sim -q
test-e2e:
	$(PYTEST) -m e2e -q || [ $$? -eq 5 ]

demo: setup
	$(BIN)/kubewright dev up --sim --nodes $(DEMO_NODES)
	$(BIN)/kubewright demo
	@echo "The cluster keeps running: export KUBECONFIG=$$($(BIN)/kubewright dev kubeconfig); stop it with 'make demo-down'."

demo-down:
	$(BIN)/kubewright dev down

bench: setup
	$(PY) bench/controlplane.py

clean:
	-$(BIN)/kubewright dev down
	rm -rf .kubewright .mypy_cache .ruff_cache .pytest_cache
