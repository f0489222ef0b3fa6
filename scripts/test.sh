#!/usr/bin/env bash
# The project's test command: fetches the public test data, sets up the Python packages
# of the scripts' own tests, then runs every Rust and Python test.
# Usage: scripts/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-test-data.sh

# The Python tests check the DenseNet-201 builder (architecture, parameter count,
# bit-for-bit rebuild). They need numpy and onnx, pinned in scripts/requirements.txt.
venv=${CEUS_EDGE_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements.txt
"$venv/bin/python" -m unittest discover -s scripts -p 'test_*.py'

cargo test --all-targets "$@"
