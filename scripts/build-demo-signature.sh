#!/usr/bin/env bash
# Rebuilds the bundled demo signature, models/demo-signature.bin and its TOML export
# models/demo-signature.toml: a seeded phantom cohort, its CEUS features from the bundled
# int8 extractor, then `train` with the clinical columns and a stratified 70/30 split.
# The result is a demo artefact fitted on synthetic exams, not for clinical use.
#
# Usage: scripts/build-demo-signature.sh [work directory]
# Environment: EXAMS (default 300), SEED (default 20261204), JOBS (default 2),
# CEUS_EDGE (the binary; default: cargo run --release is not used, target/debug is).
set -euo pipefail
cd "$(dirname "$0")/.."

exams=${EXAMS:-300}
seed=${SEED:-20261204}
jobs=${JOBS:-2}
work=${1:-$(mktemp -d -t ceus-demo-signature.XXXXXX)}
bin=${CEUS_EDGE:-target/debug/ceus-edge}
model=models/densenet201-int8.onnx

if [ ! -x "$bin" ]; then
    cargo build
fi

"$bin" phantom --cohort "$exams" --seed "$seed" --jobs "$jobs" --out "$work/cohort"
"$bin" extract --cohort "$work/cohort/cohort.csv" --out "$work/ceus.csv" \
    --mode ceus --model "$model" --jobs "$jobs"

# extract wrote ceus.csv.sha256, which train reads; the explicit hash checks it.
hash=$(sha256sum "$model" | cut -d' ' -f1)
"$bin" train --table "$work/ceus.csv" --label label --clinical age,cea,t_stage,n_stage \
    --test-fraction 0.3 --seed 1 --demo --extractor-sha256 "$hash" \
    --out models/demo-signature.bin --report "$work/report"
"$bin" inspect models/demo-signature.bin > models/demo-signature.toml
echo "wrote models/demo-signature.bin and models/demo-signature.toml (work files in $work)"
