# taktora: every target bootstraps .venv first (idempotent; reinstalls when pyproject.toml changes).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
BENCH_OUT ?= bench-results

.PHONY: all demo test bench lint docs clean venv system-deps

all: test

$(STAMP): pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "taktora needs Python >= 3.11 (found %s)" % sys.version.split()[0])'
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test,dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the real-component tests use (root only; skipped with a note otherwise).
system-deps:
	@bash .ci/system-deps

demo: $(STAMP)
	$(BIN)/python -m taktora.system.demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: $(STAMP)
	@mkdir -p $(BENCH_OUT)
	@set -e; for b in tests/bench/[a-z]*.py; do \
		n=$$(basename $$b .py); echo "== $$n"; \
		$(BIN)/python $$b --json $(BENCH_OUT)/$$n.json; \
	done
	@echo "== fuzzing, long profile"
	TAKTORA_FUZZ_EXAMPLES=5000 $(BIN)/python -m pytest -q -p no:randomly \
		tests/transport/test_envelope.py tests/connectors/test_fuzz.py tests/system/test_config.py

# ruff, mypy --strict, and import-linter (the layering contracts in pyproject.toml).
# mypy cannot follow setuptools' editable import hook: give it a taktora/ tree of symlinks.
TYPECHECK := build/typecheck
lint: $(STAMP)
	$(BIN)/ruff check .
	@mkdir -p $(TYPECHECK)/taktora
	@for p in transport actors connectors system; do ln -sfn "$(CURDIR)/$$p" $(TYPECHECK)/taktora/$$p; done
	MYPYPATH=$(TYPECHECK) $(BIN)/mypy -p taktora.transport -p taktora.actors -p taktora.connectors -p taktora.system
	$(BIN)/lint-imports --no-cache

docs: $(STAMP)
	$(BIN)/sphinx-build -W --keep-going -q -b html spec spec/_build/html
	@echo "spec built: spec/_build/html/index.html"

clean:
	rm -rf $(VENV) spec/_build build *.egg-info .mypy_cache .ruff_cache .hypothesis $(BENCH_OUT)
