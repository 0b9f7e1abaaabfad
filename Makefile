# Two commands: `make train` (the main job) and `make test`. Both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: train test quality setup compat benchmarks clean

setup: $(VENV)/.llada-installed

$(VENV)/.llada-installed: setup.cfg pyproject.toml scripts/setup_venv.sh
	VENV=$(VENV) bash scripts/setup_venv.sh

# The main job: train a small bidirectional LLaDA on the bundled TinyShakespeare (llada/configs/tinyshakespeare.yaml,
# about ten CPU-minutes), then sample from it and save the decode-order picture of one block of 96 tokens (each
# token coloured by the step that decoded it: any order) next to the loss curve. llada-train prints where the model,
# plot and logs are and the command of the autoregressive baseline; a second `make train` replaces the first run.
train: setup
	$(VENV)/bin/llada-train --overwrite_output_dir
	OMP_NUM_THREADS=1 $(VENV)/bin/llada-generate --model runs/llada-tinyshakespeare --prompt "ROMEO:" --seed 0
	OMP_NUM_THREADS=1 $(VENV)/bin/llada-generate --model runs/llada-tinyshakespeare --prompt "ROMEO:" --seed 0 \
		--block_length 96 --visualize runs/llada-tinyshakespeare/decode_order.png > /dev/null

# Tiny models run faster on one thread per process (the DDP test starts two processes).
test: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest -q tests

# Lint and format checks over the whole tree: ruff (pinned in setup.cfg's dev extra, settings in pyproject.toml).
quality: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# A saved repo must also load and generate with transformers 4.57 (a second venv, .venv-compat).
compat: setup
	bash scripts/setup_compat_venv.sh && $(PY) -m pytest -q tests/hub/test_compat.py

benchmarks: setup
	$(PY) benchmarks/bench_train_step.py

clean:
	rm -rf $(VENV) .venv-compat outputs .pytest_cache
