#!/usr/bin/env bash
# Create .venv and install fairforge with its dev extras.
# torch/torchvision come first and pinned (2.14.1 / 0.29.1: a pair known to import together
# with timm; a local wheel cache is used when pip finds one). Set
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
# headless Chromium renders the HTML reports in the tests (Debian's package; needs root for apt)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: chromium could not be installed; the report screenshot tests will fail until it is"
fi
echo "fairforge installed in $VENV"
