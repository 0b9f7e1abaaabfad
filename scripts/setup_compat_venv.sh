#!/usr/bin/env bash
# Creates (or reuses) .venv-compat: the newest transformers 4.x next to the same torch, for checking that a saved
# llada repo loads and generates on the transformers version many users still run (tests/hub/test_compat.py).
# llada itself is NOT installed there: the check loads a saved folder through trust_remote_code only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-compat}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TRANSFORMERS_VERSION=${TRANSFORMERS_VERSION:-4.57.6}

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, transformers, sys
sys.exit(transformers.__version__ != '$TRANSFORMERS_VERSION')" >/dev/null 2>&1; then
  echo "[compat] $VENV ready (transformers $TRANSFORMERS_VERSION)"
  exit 0
fi
PYTHON=$PYTHON TORCH_VERSION=$TORCH_VERSION bash scripts/make_venv.sh "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# transformers pins its own tokenizers / huggingface_hub ranges; safetensors for the weights.
"${PIP[@]}" install -q "transformers==$TRANSFORMERS_VERSION" "safetensors>=0.4"
"$VENV/bin/python" -c "import torch, transformers; print(f'[compat] {transformers.__version__=} {torch.__version__=}')"
