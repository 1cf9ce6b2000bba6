# Every target sets up .venv itself: `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.hpcore-installed
BENCH_STAMP := $(VENV)/.hpcore-bench-installed
EXTRAS := test,sklearn,dask,plot,pandas,optuna
# CI (and anyone who sets it) gets a hard error if OpenMP is missing.
export HPCORE_REQUIRE_OPENMP ?= $(if $(CI),1,)

.PHONY: venv build demo test test-all test-serial bench clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "setuptools>=68" wheel "Cython>=3" "numpy>=2" "scipy>=1.11"
	$(PIP) install -q --no-build-isolation -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

# Recompiles only the kernels whose .pyx/.pxd changed.
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

demo: build
	MPLBACKEND=Agg $(PY) -m hpcore.cli demo --out demo_out
	$(PY) python/tune_sgd_hyperband.py --iterations 1

test: build
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

test-all: build
	$(PY) -m pytest -q -p no:cacheprovider tests

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -q "torch==2.13.0" || echo "torch not installed: Optuna's GPSampler is skipped"
	$(PIP) install -q --no-build-isolation -e ".[$(EXTRAS),bench]"
	touch $(BENCH_STAMP)

bench: build $(BENCH_STAMP)
	$(PY) -m pytest -q bench --benchmark-only -p no:cacheprovider

clean:
	rm -rf build src/*.egg-info src/hpcore/_kernels/*.c src/hpcore/_kernels/*.so src/hpcore/_kernels/*.html demo_out
