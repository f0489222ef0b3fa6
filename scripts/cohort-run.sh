#!/usr/bin/env bash
# The paper-sized cohort run: a phantom cohort, features of the CEUS peak frame, the
# B-mode still and the colour Doppler still, a signature per feature table (with the
# clinical columns), and scikit-learn's L1 LogisticRegressionCV on the CEUS table for
# comparison. Prints the wall time of every step; train's reports land in WORK/report-*.
#
# Usage: scripts/cohort-run.sh WORK
# Environment: EXAMS (default 878), SEED (default 20261204), JOBS (default 2),
# CEUS_EDGE (default target/debug/ceus-edge), PYTHON (default /work/venv/bin/python).
# A WORK that already has cohort/cohort.csv keeps its cohort, and extract resumes from
# the feature tables already there.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:?usage: scripts/cohort-run.sh WORK}
exams=${EXAMS:-878}
seed=${SEED:-20261204}
jobs=${JOBS:-2}
bin=${CEUS_EDGE:-target/debug/ceus-edge}
python=${PYTHON:-/work/venv/bin/python}

timed() {
    local name=$1
    shift
    local start end
    start=$(date +%s.%N)
    "$@"
    end=$(date +%s.%N)
    echo "time $name $(echo "$end - $start" | bc) s"
}

if [ ! -f "$work/cohort/cohort.csv" ]; then
    timed phantom "$bin" phantom --cohort "$exams" --seed "$seed" --jobs "$jobs" \
        --out "$work/cohort"
fi
for mode in ceus bmode doppler; do
    timed "extract-$mode" "$bin" extract --cohort "$work/cohort/cohort.csv" \
        --out "$work/$mode.csv" --mode "$mode" --jobs "$jobs"
done
for mode in ceus bmode doppler; do
    timed "train-$mode" "$bin" train --table "$work/$mode.csv" --label label \
        --clinical age,cea,t_stage,n_stage --test-fraction 0.3 --seed 1 \
        --out "$work/$mode.sig" --report "$work/report-$mode"
done
timed sklearn-ceus "$python" scripts/sklearn_lasso_cv.py "$work/ceus.csv" \
    > "$work/sklearn-ceus.json"
cat "$work/sklearn-ceus.json"
