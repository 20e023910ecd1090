# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both create .venv and install cellseg into it; torch comes first, so no bare `torch` requirement can pull a
# multi-GB CUDA build onto a machine without a GPU.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build on machines without an NVIDIA GPU; override e.g. `make test TORCH_CPU="torch==2.5.1"`.
TORCH_CPU ?= torch==2.13.0
TORCH_GPU ?= torch
INSTALLED := $(VENV)/.installed

.PHONY: install test lint typecheck unit demo browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		echo "NVIDIA GPU found: installing $(TORCH_GPU)"; $(BIN)/pip install --quiet "$(TORCH_GPU)"; \
	else \
		echo "No NVIDIA GPU: installing the CPU build $(TORCH_CPU)"; $(BIN)/pip install --quiet "$(TORCH_CPU)"; \
	fi
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

demo: install
	$(BIN)/cellseg demo

# Debian's Chromium for the review report's browser test (needs root and apt; the test skips without it).
browser:
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; \
	else echo "make browser: install Chromium (e.g. apt-get install chromium) to run the browser test"; exit 1; fi

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
