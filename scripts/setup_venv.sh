#!/usr/bin/env bash
# Creates (or reuses) the virtual environment at .venv with llada and its dev extras (torch: see make_venv.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
bash scripts/make_venv.sh "$VENV"
# Everything else; the torch requirement of setup.cfg is already satisfied, so nothing replaces it.
"$VENV/bin/python" -m pip --disable-pip-version-check install -q -e ".[dev]"
"$VENV/bin/python" - <<'PY'
import torch, transformers
assert "+cu" not in torch.__version__ or torch.cuda.is_available(), "a CUDA torch was installed on a CPU machine"
print(f"[setup] ready: torch {torch.__version__}, transformers {transformers.__version__}")
PY
touch "$VENV/.llada-installed"
