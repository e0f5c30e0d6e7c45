#!/usr/bin/env bash
# Install what is missing (a virtual environment from requirements.txt) and start TinyLab.
# Usage: ./run.sh [extra streamlit options, e.g. --server.port 8502]
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.installed-requirements 2>/dev/null; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements.txt
  cp requirements.txt .venv/.installed-requirements
fi
exec .venv/bin/python -m streamlit run app.py "$@"
