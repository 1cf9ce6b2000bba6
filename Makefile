# Every target sets up .venv itself: `make demo` and `make test` work on a fresh clone.
# `make demo` installs only what the demo needs (the `demo` extra); `make test` adds the
# full test set (the `test` extra and PyTorch's CPU wheel for the torch example).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
DEMO_STAMP := $(VENV)/.hpcore-demo-installed
STAMP := $(VENV)/.hpcore-installed
BENCH_STAMP := $(VENV)/.hpcore-bench-installed
EXTRAS := test,sklearn,dask,plot,pandas,optuna
BUILD_REQS := "setuptools>=77" "Cython>=3" "numpy>=2" "scipy>=1.11"
# torch==2.13.0 is the CPU wheel on this project's machines (a local find-links file);
# plain `torch` from PyPI is the CUDA build with several GB of nvidia-* wheels.
# `make test TORCH=` skips it (the torch example's test then skips).
TORCH ?= torch==2.13.0
# CI (and anyone who sets it) gets a hard error if OpenMP is missing.
export HPCORE_REQUIRE_OPENMP ?= $(if $(CI),1,)

.PHONY: venv build demo test test-all test-serial test-wheel bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# The demo's light set: build requirements, numpy/scipy/threadpoolctl, scikit-learn,
# matplotlib.  The editable install compiles the kernels (in parallel, see setup.py).
$(DEMO_STAMP): pyproject.toml setup.py | $(PY)
	$(PIP) install -q $(BUILD_REQS)
	$(PIP) install -q --no-build-isolation -e ".[demo]"
	touch $(DEMO_STAMP)

# The full test set on top of the demo's.
$(STAMP): $(DEMO_STAMP)
	$(if $(TORCH),$(PIP) install -q "$(TORCH)")
	$(PIP) install -q --no-build-isolation -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

# Recompiles only the kernels whose .pyx/.pxd changed (all of them in parallel).
build: $(DEMO_STAMP)
	$(PY) setup.py -q build_ext --inplace

demo: build
	MPLBACKEND=Agg $(PY) -m hpcore.cli demo --out demo_out
	$(PY) python/tune_sgd_hyperband.py --iterations 1
	$(PY) python/automl_tabular.py --quick

test: $(STAMP) build
	$(PY) -m pytest -q -m "not slow" -p no:cacheprovider tests

# The serial fallback: build without OpenMP in a scratch copy and run the kernel tests on it.
SERIAL_DIR := build/serial
test-serial: $(STAMP)
	rm -rf $(SERIAL_DIR) && mkdir -p $(SERIAL_DIR)
	cp -r setup.py pyproject.toml README.md src tests $(SERIAL_DIR)/
	find $(SERIAL_DIR)/src -name '*.so' -delete
	cd $(SERIAL_DIR) && HPCORE_NO_OPENMP=1 HPCORE_REQUIRE_OPENMP= ../../$(PY) setup.py -q build_ext --inplace
	cd $(SERIAL_DIR) && PYTHONPATH=src ../../$(PY) -c "import hpcore; assert not hpcore.show_config()['openmp']"
	cd $(SERIAL_DIR) && PYTHONPATH=src ../../$(PY) -m pytest -q -m "not slow" -p no:cacheprovider \
		tests/test_kernels_rng.py tests/test_kernels_gp.py tests/test_kernels_acquisition.py \
		tests/test_kernels_genetic.py tests/test_kernels_halving.py

# A wheel built here (python -m build --wheel) installed into a fresh venv passes
# `pytest -m "not slow"` with OpenMP on (tests/test_wheel.py; 18 min at load 12-21 on 2 cores:
# build + venv ~7, the suite ~11).
test-wheel: $(STAMP)
	$(PY) -m pytest -q -m slow -p no:cacheprovider tests/test_wheel.py

test-all: $(STAMP) build
	$(PY) -m pytest -q -p no:cacheprovider tests

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q --no-build-isolation -e ".[$(EXTRAS),bench]"
	touch $(BENCH_STAMP)

bench: build $(BENCH_STAMP)
	$(PY) -m pytest -q bench --benchmark-only -p no:cacheprovider

clean:
	rm -rf build src/*.egg-info src/hpcore/_kernels/*.c src/hpcore/_kernels/*.so src/hpcore/_kernels/*.html demo_out
