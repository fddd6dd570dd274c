#!/usr/bin/env bash
# Sets up .venv if needed and runs Portmesh on embedded defaults (see README.md).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/portmesh ]; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q -e .
fi
exec .venv/bin/portmesh up "$@"
