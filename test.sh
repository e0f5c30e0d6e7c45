#!/usr/bin/env bash
# Install the test dependencies (Python packages, Debian's chromium for browser tests) and run every test.
# Usage: ./test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || need_apt+=(fonts-noto-color-emoji fonts-dejavu-core)
# A C compiler: torch.compile (inductor) and the small-head attention kernel (lab/small_attention.py) build with it
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! cat requirements.txt requirements-dev.txt | cmp -s - .venv/.installed-dev 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  cat requirements.txt requirements-dev.txt > .venv/.installed-dev
fi
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/python -m pytest "$@"
