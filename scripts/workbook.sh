#!/usr/bin/env bash
# README command 1: set up (if needed) and run the whole workbook on the embedded default.
# Extra arguments go to `vlmkit run` (e.g. --quick, -p noise_ratio 0.5, --grid seed=0,1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/vlmkit run "$@"
