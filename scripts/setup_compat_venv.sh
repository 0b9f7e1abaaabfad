#!/usr/bin/env bash
# Creates (or reuses) .venv-compat: the newest transformers 4.x next to the same torch, for checking that a saved
# llada repo loads and generates on the transformers version many users still run (tests/test_compat.py).
# llada itself is NOT installed there: the check loads a saved folder through trust_remote_code only.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv-compat}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TRANSFORMERS_VERSION=${TRANSFORMERS_VERSION:-4.57.6}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

has_torch() { "$1" -c "import torch" >/dev/null 2>&1; }

if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch, transformers, sys
sys.exit(transformers.__version__ != '$TRANSFORMERS_VERSION')" >/dev/null 2>&1; then
  echo "[compat] $VENV ready (transformers $TRANSFORMERS_VERSION)"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  if has_torch "$PYTHON"; then
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

if ! has_torch "$VENV/bin/python"; then
  # As in setup_venv.sh: never let a CPU machine pull the CUDA build.
  plan=$("${PIP[@]}" install --dry-run --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null || true)
  if command -v nvidia-smi >/dev/null 2>&1 || { [ -n "$plan" ] && ! grep -q '"name": "nvidia-' <<<"$plan"; }; then
    "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  else
    "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX" --extra-index-url https://pypi.org/simple
  fi
fi

# transformers pins its own tokenizers / huggingface_hub ranges; safetensors for the weights.
"${PIP[@]}" install -q "transformers==$TRANSFORMERS_VERSION" "safetensors>=0.4"
"$VENV/bin/python" -c "import torch, transformers; print(f'[compat] {transformers.__version__=} {torch.__version__=}')"
