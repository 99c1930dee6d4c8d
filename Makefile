# Aiguilleur: the two commands a fresh machine needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= config/example
LOG_LEVEL ?=
# Python code checked by lint (docs/ holds prose whose snippets are illustrations).
CODE_DIRS := switch routing media ivr bench tests
# Debian packages the tests drive as real peers (SIPp, TLS wrapper, OpenSSL CLI).
TEST_DEBS ?= sip-tester socat openssl sipvicious
# Extra peers used only by benchmarks.
BENCH_DEBS ?= sip-tester kamailio rtpengine-daemon

.PHONY: run test lint unit bench deps test-deps clean check

$(VENV)/.base: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.base pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	touch $@

deps: $(VENV)/.base

test-deps: $(VENV)/.test
	@bash deploy/ensure-debs.sh $(TEST_DEBS)

run: $(VENV)/.base
	$(VENV)/bin/aiguilleur run --config $(CONFIG) $(if $(LOG_LEVEL),--log-level $(LOG_LEVEL))

check: $(VENV)/.base
	$(VENV)/bin/aiguilleur check $(CONFIG)

lint: $(VENV)/.test
	$(VENV)/bin/ruff check $(CODE_DIRS)
	$(VENV)/bin/ruff format --check $(CODE_DIRS)
	$(VENV)/bin/mypy switch routing media ivr bench tests
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_layering.py

unit: $(VENV)/.test
	$(PY) -m pytest tests/unit -q

test: test-deps lint
	$(PY) -m pytest -q

bench: test-deps
	@bash deploy/ensure-debs.sh $(BENCH_DEBS)
	@for b in bench/*.py; do echo "# $$b" >&2; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
