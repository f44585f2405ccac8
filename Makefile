# Two commands for a fresh machine: `make demo` and `make test`.
# Both create .venv, install PyTorch (the CPU build where no NVIDIA GPU is present) and the package.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_CPU := torch==2.13.0
TORCH_GPU := torch
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo 1)

.PHONY: demo test lint bench install clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(if $(HAS_GPU),$(TORCH_GPU),$(TORCH_CPU))
	$(BIN)/python -m pip install -q -e '.[dev]'
	# Compile the native kernels into numba's cache now, not in the first ni.inv (seconds per
	# dtype; ~1 min for all of them on 2 cores). A failure here only means they compile on first use.
	$(BIN)/neuralinv warm || echo "neuralinv warm failed: the native kernels will compile on first use"
	touch $(STAMP)

install: $(STAMP)

# The demo's batches are small: one thread is as fast, and far faster on a busy machine
# (measured: 18 s single-threaded vs 2 min 46 s with torch's 2 threads on a loaded 2-core box).
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/neuralinv demo

lint: $(STAMP)
	$(BIN)/ruff check $(wildcard src tests benchmarks experiments examples)

# Two single-threaded workers on two cores: torch's own threads on top only fight each other.
test: $(STAMP) lint
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

bench: $(STAMP)
	$(BIN)/neuralinv bench

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .ruff_cache
