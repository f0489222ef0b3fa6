#!/usr/bin/env bash
# The project's test command: fetches the public test data, sets up the Python packages
# of the scripts' own tests, builds the f32 extractor when it is missing, then runs every
# Rust and Python test.
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

# The f32 extractor is git-ignored (72 MB); the tests that compare it with onnxruntime
# need it. The unit tests above have just checked that a rebuild matches its manifest.
if [ ! -f models/densenet201-f32.onnx ]; then
    f32_dir=$(mktemp -d)
    "$venv/bin/python" scripts/build_extractor.py --f32-only --out-dir "$f32_dir" >/dev/null
    mv "$f32_dir/densenet201-f32.onnx" models/
    rm -rf "$f32_dir"
fi

cargo test --all-targets "$@"
