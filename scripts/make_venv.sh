#!/usr/bin/env bash
# Usage: scripts/make_venv.sh VENV
# Creates the virtual environment VENV (if missing) with torch in it, reusing an installed torch:
# - the system interpreter already has torch -> the venv sees the system's site-packages;
# - an NVIDIA GPU is present -> torch==$TORCH_VERSION from the configured package sources;
# - otherwise a CPU build only: from the configured sources if pip's plan brings no nvidia-* packages
#   (a local CPU wheel, say), else from the PyTorch CPU index. Never the CUDA wheels on a CPU machine.
set -euo pipefail
VENV=$1
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

has_torch() { "$1" -c "import torch" >/dev/null 2>&1; }

if [ ! -x "$VENV/bin/python" ]; then
  if has_torch "$PYTHON"; then
    echo "[setup] $VENV reuses the torch of $PYTHON ($("$PYTHON" -c 'import torch; print(torch.__version__)'))"
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
    plan=$("${PIP[@]}" install --dry-run --quiet --report - "torch==$TORCH_VERSION" 2>/dev/null || true)
    if [ -n "$plan" ] && ! grep -q '"name": "nvidia-' <<<"$plan"; then
      echo "[setup] installing torch==$TORCH_VERSION (CPU build from the configured sources)"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION"
    else
      echo "[setup] installing torch==$TORCH_VERSION, CPU build from $TORCH_CPU_INDEX"
      "${PIP[@]}" install -q "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX" \
        --extra-index-url https://pypi.org/simple
    fi
  fi
fi
echo "[setup] $VENV: torch $("$VENV/bin/python" -c 'import torch; print(torch.__version__)')"
