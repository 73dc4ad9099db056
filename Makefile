# Two entry points: `make audit` (the built-in RHC audit) and `make test`.
# Both create .venv and install everything they need on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned here: 2.13.0 is a CPU build; an unpinned torch pulls a multi-GB CUDA build.
TORCH := torch==2.13.0

# Another numeric path: the most portable kernels of MKL, ATen, oneDNN and OpenBLAS (as
# tests/margins.py's "compatible"). Models trained through it differ in the last bits, as on
# another CPU; `make test-portable` reruns the model-training tests under it.
PORTABLE_ENV := MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OPENBLAS_CORETYPE=Sandybridge

.PHONY: install audit test test-portable lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[datasets,imaging,onnx,gbm,skops,dev]'
	touch $@

install: $(VENV)/.installed

audit: install
	$(VENV)/bin/miaudit audit --dataset rhc --out runs/rhc

lint: install
	$(PY) -m ruff check src tests bench

test: install lint
	$(PY) -m pytest -q

test-portable: install
	env $(PORTABLE_ENV) MIAUDIT_NUMERIC_PATH=compatible $(PY) -m pytest -q -m trains

bench: install
	$(PY) bench/bench_scoring.py
	$(PY) bench/bench_training.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
