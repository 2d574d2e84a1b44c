# unet-edge developer and user entry points. `make help` lists them.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := unet_edge/data/sample_isbi2012.png
PYDIRS := $(wildcard unet_edge tests benchmarks export examples docs)
# A second environment with the runtime only: `pip install .` (no extras, no torch) + pytest.
RT_VENV  ?= .venv-runtime
RT_BIN   := $(RT_VENV)/bin
RT_STAMP := $(RT_VENV)/.installed
# The runtime-only run must really run the runtime tests, not skip its way to green.
RT_MIN_PASSED ?= 150
# The napari plugin's environment: the runtime + the [napari] extra + pytest-qt (no torch).
NP_VENV  ?= .venv-napari
NP_BIN   := $(NP_VENV)/bin
NP_STAMP := $(NP_VENV)/.installed

.PHONY: help setup demo docs test test-runtime test-napari test-all lint format typecheck bench clean check-gpu-install

help:
	@echo "make demo       set up (.venv) and segment a sample ISBI image with the shipped model"
	@echo "make test       run the test suite (skips GPU-only tests, with reasons)"
	@echo "make test-runtime  the suite against a runtime-only install (.venv-runtime: pip install ., no torch)"
	@echo "make test-napari  the napari plugin in a real viewer (.venv-napari; needs xvfb-run)"
	@echo "make lint       ruff lint + format check + mypy on unet_edge/"
	@echo "make docs       build the documentation site, strict, into site/ (open site/index.html)"
	@echo "make format     apply ruff formatting"
	@echo "make bench      run the benchmark suite (CPU; CUDA/TensorRT where available)"
	@echo "make check-gpu-install  resolve .[cuda] and .[tensorrt] against PyPI (network, minutes)"
	@echo "make clean      remove the virtual environment and outputs"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev,bioimageio,docs]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/unet-edge run $(SAMPLE) -o demo-output --overlay --overwrite -v
	@echo "Open demo-output/sample_isbi2012_overlay.png (mask: demo-output/sample_isbi2012_mask.png)"

test: $(STAMP)
	$(BIN)/python -m pytest

$(RT_STAMP): pyproject.toml constraints.txt
	rm -rf $(RT_VENV)
	$(PYTHON) -m venv $(RT_VENV)
	$(RT_BIN)/python -m pip install --quiet --upgrade pip
	$(RT_BIN)/python -m pip install --quiet -c constraints.txt . pytest hypothesis
	touch $(RT_STAMP)

# Tests the INSTALLED package: the tree is reinstalled (not editable) first, and
# PYTHONSAFEPATH keeps the repository root off sys.path (for `-m pytest` and for the
# `python -c` subprocesses some tests start); tests/contracts/test_install.py checks both and that
# torch is absent. build/ is removed so that no stale module from it reaches the wheel.
test-runtime: $(RT_STAMP)
	rm -rf build
	$(RT_BIN)/python -m pip install --quiet --no-deps --force-reinstall -c constraints.txt .
	rm -rf build
	PYTHONSAFEPATH=1 $(RT_BIN)/python -c "import importlib.util as u, unet_edge; \
		assert '/site-packages/' in unet_edge.__file__, unet_edge.__file__; \
		assert u.find_spec('torch') is None, 'torch is installed in $(RT_VENV)'"
	PYTHONSAFEPATH=1 UNET_EDGE_RUNTIME_ONLY=1 $(RT_BIN)/python -m pytest -p no:cacheprovider \
		--junitxml=$(RT_VENV)/junit.xml
	$(RT_BIN)/python -c "import sys, xml.etree.ElementTree as E; \
		s = E.parse('$(RT_VENV)/junit.xml').getroot().find('testsuite'); \
		n = int(s.get('tests')) - sum(int(s.get(k)) for k in ('failures', 'errors', 'skipped')); \
		print(f'runtime-only install: {n} tests passed'); \
		sys.exit(0 if n >= $(RT_MIN_PASSED) else f'only {n} tests passed (< $(RT_MIN_PASSED))')"

$(NP_STAMP): pyproject.toml constraints.txt
	rm -rf $(NP_VENV)
	$(PYTHON) -m venv $(NP_VENV)
	$(NP_BIN)/python -m pip install --quiet --upgrade pip
	$(NP_BIN)/python -m pip install --quiet -c constraints.txt -e ".[napari]" pytest pytest-qt
	touch $(NP_STAMP)

# napari's canvas needs OpenGL, which Qt's offscreen platform lacks: the viewer tests run on
# Xvfb (Debian: xvfb and Qt's xcb libraries; .ci/run installs them) and must not skip here.
test-napari: $(NP_STAMP)
	xvfb-run -a $(NP_BIN)/python -m pytest -p no:cacheprovider tests/contracts/test_napari_viewer.py \
		tests/contracts/test_napari_objects.py tests/contracts/test_napari_pixel_size.py \
		tests/contracts/test_napari_interval.py --junitxml=$(NP_VENV)/junit.xml
	$(NP_BIN)/python -c "import sys, xml.etree.ElementTree as E; \
		s = E.parse('$(NP_VENV)/junit.xml').getroot().find('testsuite'); \
		sys.exit('napari tests were skipped' if int(s.get('skipped')) else 0)"

# Strict: a broken link, a missing reference or any warning fails the build. Offline.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check $(PYDIRS)
	$(BIN)/ruff format --check $(PYDIRS)
	$(BIN)/mypy unet_edge

format: $(STAMP)
	$(BIN)/ruff format $(PYDIRS)
	$(BIN)/ruff check --fix $(PYDIRS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

# pip --dry-run --report of the GPU extras: CUDA 13, cuDNN 9 and TensorRT 10 wheels (no GPU needed).
check-gpu-install: $(STAMP)
	UNET_EDGE_NETWORK_TESTS=1 $(BIN)/python -m pytest tests/contracts/test_extras.py -q -p no:cacheprovider

clean:
	rm -rf $(VENV) $(RT_VENV) $(NP_VENV) build demo-output site .pytest_cache .mypy_cache .ruff_cache
