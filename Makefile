# Bastion: two commands.
#   make serve   creates .venv, installs, serves the embedded model on 127.0.0.1:8080
#   make test    installs, runs the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)

# llama-cpp-python compiles llama.cpp. A native build (-march=native) can use instructions
# the machine advertises but cannot run (AMX here: SIGILL), and pip's wheel cache would hand
# a machine-specific build to another machine. So it is built portably (x86-64-v3: AVX2,
# FMA, F16C), once per machine, into a wheelhouse keyed by version and flags.
LLAMA_VERSION    := 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
LLAMA_FLAGS_ID   := $(shell printf '%s' '$(LLAMA_CMAKE_ARGS)' | cksum | cut -d' ' -f1)
WHEELHOUSE       ?= $(HOME)/.cache/bastion/wheels/llama-$(LLAMA_VERSION)-$(LLAMA_FLAGS_ID)

# The dashboard's front-end packages (uPlot; axe-core for its accessibility tests) come from
# the npm registry, pinned by the lockfile, and are copied into the Python package: the
# gateway serves them itself (no CDN). Needs Node.js 20 and npm at install time only.
UI_DIR    := bastion/ui/frontend
UI_VENDOR := bastion/ui/static/vendor

.PHONY: install serve test lint typecheck bench clean

$(UI_VENDOR)/.stamp: $(UI_DIR)/package.json $(UI_DIR)/package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm (Node.js 20) is needed to build the dashboard's assets (Debian: apt-get install nodejs npm)" >&2; exit 1; }
	cd $(UI_DIR) && npm ci --no-audit --no-fund --loglevel=error
	mkdir -p $(UI_VENDOR)
	cp $(UI_DIR)/node_modules/uplot/dist/uPlot.iife.min.js $(UI_DIR)/node_modules/uplot/dist/uPlot.min.css $(UI_VENDOR)/
	touch $@

$(STAMP): pyproject.toml setup.py $(UI_VENDOR)/.stamp $(wildcard bastion/observe/*.c bastion/observe/*.h bastion/governance/*.c)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required: make PYTHON=python3.11 ...")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --quiet --no-cache-dir \
	    --no-deps "llama-cpp-python==$(LLAMA_VERSION)" -w $(WHEELHOUSE)
	$(BIN)/python -m pip install --quiet --no-deps --force-reinstall \
	  $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(BIN)/python -m pip install --quiet --find-links $(WHEELHOUSE) -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/bastion serve

test: $(STAMP)
	$(BIN)/ruff check bastion tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check bastion tests bench
	$(BIN)/mypy

bench: $(STAMP)
	bench/run.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis $(UI_DIR)/node_modules $(UI_VENDOR)
