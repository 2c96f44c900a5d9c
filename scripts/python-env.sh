#!/usr/bin/env bash
# Creates .venv with the Python packages the interop tests use (pymacaroons,
# bolt11, later the MCP SDK). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.requirements.sha
want=$(sha256sum tests/interop/requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/interop/requirements.txt
  echo "$want" > "$stamp"
fi
echo "python env ready: $(pwd)/.venv/bin/python" >&2
