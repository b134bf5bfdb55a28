#!/usr/bin/env bash
# The embedded default in one command: set up .venv, then run the whole pipeline on the tiny preset
# (random-weight tiny models, small N, a few minutes on a 2-core CPU, no GPU, no internet).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
.venv/bin/fairforge pipeline run pipelines.yaml --preset tiny --out "${1:-runs/tiny}"
