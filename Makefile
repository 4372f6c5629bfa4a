# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_RESULTS ?= results/demo

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

# torch first, on its own: `pip install torch==2.13.0` takes the local CPU wheel where there is
# one; the lock file pins every other package, so the install is the same on every machine.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The main job on the built-in demo corpus, command by command, as a user would type it.
RAYLAB := $(VENV)/bin/raylab --results $(DEMO_RESULTS)
demo: setup
	$(RAYLAB) data info

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

bench: setup
	$(PY) bench/train_step.py

clean:
	rm -rf $(VENV) results
