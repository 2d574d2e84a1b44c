# unet-edge developer and user entry points. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := unet_edge/data/sample_isbi2012.png
PYDIRS := $(wildcard unet_edge tests benchmarks export examples)

.PHONY: help setup demo test test-all lint format typecheck bench clean

help:
	@echo "make demo       set up (.venv) and segment a sample ISBI image with the shipped model"
	@echo "make test       run the test suite (skips GPU-only tests, with reasons)"
	@echo "make lint       ruff lint + format check + mypy on unet_edge/"
	@echo "make format     apply ruff formatting"
	@echo "make bench      run the benchmark suite (CPU; CUDA/TensorRT where available)"
	@echo "make clean      remove the virtual environment and outputs"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/unet-edge run $(SAMPLE) -o demo-output --overlay --overwrite -v
	@echo "Open demo-output/sample_isbi2012_overlay.png (mask: demo-output/sample_isbi2012_mask.png)"

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/ruff format --check $(PYDIRS)
	$(BIN)/mypy unet_edge

format: $(STAMP)
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/ruff check --fix $(PYDIRS)

bench: $(STAMP)
	$(BIN)/unet-edge bench -o benchmarks/results

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache
