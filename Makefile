# Two commands: `make train` (the main job) and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: train test setup benchmarks clean

setup: $(VENV)/.llada-installed

$(VENV)/.llada-installed: setup.cfg pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) bash scripts/setup_venv.sh

# The main job: build a tiny model, save it, reload it through trust_remote_code and use it.
train: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q tests

benchmarks: setup
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
