# Two commands: `make train` (the main job) and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: train test setup compat benchmarks clean

setup: $(VENV)/.llada-installed

$(VENV)/.llada-installed: setup.cfg pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) bash scripts/setup_venv.sh

# The main job: train a small block diffusion LLaDA on the bundled TinyShakespeare (llada/configs/tinyshakespeare.yaml,
# about seven minutes on two CPU cores), then sample from it. llada-train prints where the model, plot and logs are;
# a second `make train` replaces the first run (--overwrite_output_dir).
train: setup
	$(VENV)/bin/llada-train --overwrite_output_dir
	OMP_NUM_THREADS=1 $(VENV)/bin/llada-generate --model runs/llada-tinyshakespeare --prompt "ROMEO:" --seed 0

# Tiny models run faster on one thread per process (the DDP test starts two processes).
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

# A saved repo must also load and generate with transformers 4.57 (a second venv, .venv-compat).
compat: setup
	bash scripts/setup_compat_venv.sh && $(PY) -m pytest -q tests/test_compat.py

benchmarks: setup
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf $(VENV) .venv-compat outputs .pytest_cache
