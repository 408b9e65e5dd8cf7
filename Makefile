# kubewright: `make demo` and `make test` do everything on a fresh machine (see README.md).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
PYTEST := $(BIN)/pytest
DEMO_NODES ?= 20

.PHONY: setup test lint demo demo-down bench controlplane clean

setup:
	bash scripts/setup.sh

controlplane:
	bash tools/controlplane/build.sh

lint: setup
	$(BIN)/ruff check src tests bench scripts examples
	$(BIN)/ruff format --check src tests bench scripts examples
	$(BIN)/mypy
	$(BIN)/lint-imports
	bash scripts/helm-lint.sh

REPORTS := .kubewright/reports
TIERS := unit envtest sim e2e

# Every tier, in order of cost, then one summary of all of them. A tier with no tests yet
# (pytest exit 5) is not a failure.
test: lint
	@rm -rf $(REPORTS)
	$(MAKE) --no-print-directory $(addprefix test-,$(TIERS))
	@$(PY) scripts/test_summary.py $(foreach t,$(TIERS),$(REPORTS)/$(t).xml)

test-%:
	@mkdir -p $(REPORTS)
	$(PYTEST) -m $* -q --junitxml=$(REPORTS)/$*.xml || [ $$? -eq 5 ]

demo: setup
	$(BIN)/kubewright dev up --sim --nodes $(DEMO_NODES)
	$(BIN)/kubewright demo
	@echo "The cluster keeps running: export KUBECONFIG=$$($(BIN)/kubewright dev kubeconfig); stop it with 'make demo-down'."

demo-down:
	$(BIN)/kubewright dev down

BENCHES := controlplane runtime iamra

# Every benchmark runs even when an earlier one misses a target; the exit status says if any did.
bench: setup
	@failed=""; for b in $(BENCHES); do echo "== bench/$$b.py"; $(PY) bench/$$b.py || failed="$$failed $$b"; done; \
	if [ -n "$$failed" ]; then echo "targets missed in:$$failed (see bench/results/)"; exit 1; fi

clean:
	-$(BIN)/kubewright dev down
	rm -rf .kubewright .mypy_cache .ruff_cache .pytest_cache
