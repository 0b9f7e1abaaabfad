#!/usr/bin/env bash
# Creates (or reuses) the virtual environment at .venv with llada and its dev/train/hub extras.
# Torch: an already installed torch is reused; on a machine without an NVIDIA GPU only a CPU build is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

has_torch() { "$1" -c "import torch" >/dev/null 2>&1; }

if [ ! -x "$VENV/bin/python" ]; then
  if has_torch "$PYTHON"; then
    echo "[setup] reusing the torch of $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel >/dev/null

if ! has_torch "$VENV/bin/python"; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "[setup] installing torch==$TORCH_VERSION (GPU machine)"
    "${PIP[@]}" install -q "torch==$TORCH_VERSION"
  else
    # CPU machine: take torch from pip's configured sources if that is a CPU build (a local wheel, say);
    # if it would bring CUDA packages, take the CPU build from the PyTorch CPU index instead.
    plan=$("${PIP[@]}" install --dry-run --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null || true)
    if [ -n "$plan" ] && ! grep -q '"name": "nvidia-' <<<"$plan"; then
      echo "[setup] installing torch==$TORCH_VERSION (CPU build from the configured sources)"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION"
    else
      echo "[setup] installing torch==$TORCH_VERSION, CPU build from $TORCH_CPU_INDEX"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX" --extra-index-url https://pypi.org/simple
    fi
  fi
fi
echo "[setup] torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"

# Everything else; the torch requirement of setup.cfg is already satisfied, so nothing replaces it.
"${PIP[@]}" install -q -e ".[dev]"
"$VENV/bin/python" - <<'PY'
import torch, transformers
assert "+cu" not in torch.__version__ or torch.cuda.is_available(), "a CUDA torch was installed on a CPU machine"
print(f"[setup] ready: torch {torch.__version__}, transformers {transformers.__version__}")
PY
touch "$VENV/.llada-installed"
