# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
DEMO_RESULTS ?= results/demo

.PHONY: setup demo readme-figure test test-cluster test-all bench clean

setup: $(STAMP)

# torch first, on its own: `pip install torch==2.13.0` takes the local CPU wheel where there is
# one; the lock file pins every other package, so the install is the same on every machine.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The main job on the built-in demo corpus, command by command, as a user would type them:
# dataset -> features -> TPE search -> ten-fold training -> Table 5 -> saliency and generalized
# signals. Re-running starts the runs afresh (`raylab runs delete` removes each run's folder, Ray
# state and MLflow runs together); the demo corpus and its features are reused.
RAYLAB := $(VENV)/bin/raylab --results $(DEMO_RESULTS)
demo: setup
	$(RAYLAB) runs delete demo-elor-search demo-elor demo-ftr --missing-ok
	$(RAYLAB) data info
	$(RAYLAB) features
	$(RAYLAB) tune elor --name demo-elor-search
	$(RAYLAB) train elor --name demo-elor --config $(DEMO_RESULTS)/demo-elor-search/best.yaml --cpus-per-worker 0.5
	$(RAYLAB) train ftr --name demo-ftr --cpus-per-worker 0.5
	$(RAYLAB) report
	$(RAYLAB) report --format html --out $(DEMO_RESULTS)/table5.html
	$(RAYLAB) analyze saliency --run $(DEMO_RESULTS)/demo-elor
	$(RAYLAB) analyze generalize --run $(DEMO_RESULTS)/demo-elor
	@echo "MLflow UI: $(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(abspath $(DEMO_RESULTS))/mlflow.db"

# The README's figure is the first Figure 4 of the demo run's saliency analysis.
readme-figure:
	cp "$$(ls $(DEMO_RESULTS)/demo-elor/analysis/saliency-*/figure4_arousal_*.png | head -n 1)" docs/img/demo-saliency.png

test: setup
	$(PY) -m pytest -q

# A head and two worker nodes of Ray and an MLflow server on this machine (tests/test_multinode.py):
# `make test` runs its fast tests; this runs them all, the fault injections (also marked slow) too.
test-cluster: setup
	$(PY) -m pytest -q -m cluster

test-all: setup
	$(PY) -m pytest -q -m "not gpu"

bench: setup
	$(PY) bench/train_step.py

clean:
	rm -rf $(VENV) results
