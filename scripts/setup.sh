#!/usr/bin/env bash
# Create .venv and install fairforge with its dev extras.
# torch/torchvision come first and pinned: on this project's machines pip takes 2.14.1 / 0.29.1
# from local disk (see ../shared/ENVIRONMENT.md); elsewhere pip fetches them. Set
# FAIRFORGE_TORCH_SPEC="" to keep a torch you already have (e.g. your cluster's CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FAIRFORGE_VENV:-.venv}"
TORCH_SPEC="${FAIRFORGE_TORCH_SPEC-torch==2.14.1 torchvision==0.29.1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
if [ -n "$TORCH_SPEC" ]; then
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install -q $TORCH_SPEC
fi
"$VENV/bin/pip" install -q -e ".[dev]"
echo "fairforge installed in $VENV"
