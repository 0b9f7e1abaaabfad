# Two commands: `make train` (the main job) and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: train test setup compat benchmarks clean

setup: $(VENV)/.llada-installed

$(VENV)/.llada-installed: setup.cfg pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) bash scripts/setup_venv.sh

# The main job: build a tiny model, save it, reload it through trust_remote_code and use it.
train: setup
	$(PY) examples/quickstart.py

test: setup
	$(PY) -m pytest -q tests

# A saved repo must also load and generate with transformers 4.57 (a second venv, .venv-compat).
compat: setup
	bash scripts/setup_compat_venv.sh && $(PY) -m pytest -q tests/test_compat.py

benchmarks: setup
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf $(VENV) .venv-compat outputs .pytest_cache
