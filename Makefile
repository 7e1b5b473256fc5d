# Dijk: everything a fresh machine needs is installed by these targets.
#   make demo   - create .venv, install, run the demo gateway
#   make test   - create .venv, install with test extras, run the whole suite
#   make fuzz   - run every coverage-guided fuzz harness for FUZZ_SECONDS each
#   make fuzz-live - FUZZ_LIVE_COUNT generated requests against a running demo gateway
#   make soak   - SOAK_MINUTES at half the measured maximum rate; plot in docs/soak.png
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages needed at run or test time (installed by scripts/system-deps.sh):
# nginx-light for the nginx auth_request end-to-end test (tests/e2e/test_decision_nginx.py),
# pango/harfbuzz/fonts for PDF reports (WeasyPrint), chromium + driver for the browser tests.
DEBIAN_PACKAGES := nginx-light libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
	fonts-dejavu-core chromium chromium-driver

.PHONY: demo test lint fuzz fuzz-live soak bench bench-detection install system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml scripts/system-deps.sh scripts/vendor-assets.sh | $(BIN)/python
	bash scripts/system-deps.sh $(DEBIAN_PACKAGES)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3" "setuptools==80.9.0"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	bash scripts/vendor-assets.sh
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dijk demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz
	$(BIN)/mypy --strict src

FUZZ_SECONDS ?= 120
fuzz: $(STAMP)
	$(BIN)/python -m fuzz.run --all --seconds $(FUZZ_SECONDS)

FUZZ_LIVE_COUNT ?= 1000000
FUZZ_LIVE_SECONDS ?= 3600
fuzz-live: $(STAMP)
	$(BIN)/python -m bench.fuzz_live --count $(FUZZ_LIVE_COUNT) --max-seconds $(FUZZ_LIVE_SECONDS)

SOAK_MINUTES ?= 30
soak: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	$(BIN)/python -m bench.soak --minutes $(SOAK_MINUTES) --png docs/soak.png

bench: $(STAMP)
	$(BIN)/python -m bench.proxy

bench-detection: $(STAMP)
	$(BIN)/python -m bench.detection

clean:
	rm -rf $(VENV) .dijk .mypy_cache .ruff_cache .pytest_cache
