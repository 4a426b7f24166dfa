#!/usr/bin/env bash
# README command 1: set up (if needed) and run the whole workbook on the embedded default.
# Extra arguments go to `vlmkit run` (e.g. --quick, -p noise_ratio 0.5, --grid seed=0,1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# PNG figures need a Chromium for kaleido; install Debian's when we can (else HTML only).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -z "${VLMKIT_NO_PNG:-}" ]; then
  echo "[workbook] installing chromium for PNG export (set VLMKIT_NO_PNG=1 to skip)"
  (apt-get install -y -qq chromium >/dev/null 2>&1 || \
   (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1)) \
   || echo "[workbook] note: could not install chromium; figures are saved as HTML only"
fi
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}
exec .venv/bin/vlmkit run "$@"
