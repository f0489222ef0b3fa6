#!/usr/bin/env bash
# The paper-sized cohort run: a phantom cohort, features of the CEUS peak frame, the
# B-mode still and the colour Doppler still, a signature per feature table (with the
# clinical columns), and scikit-learn's L1 LogisticRegressionCV on the CEUS table for
# comparison. Prints the wall and CPU time and the load average of every step. train's reports
# land in WORK/report-{ceus,bmode,doppler}, and the five models of Xia et al. 2026
# (clinical, TDUS, CDUS, CEUS, clinical + CEUS; see README) side by side in
# WORK/report-five/evaluate.md. Last, `analyze` scores the cohort's first exam with the
# CEUS signature and its clinical values, into WORK/analyze.
#
# Usage: scripts/cohort-run.sh WORK
# Environment: EXAMS (default 878), SEED (default 20261204), JOBS (default 2),
# CEUS_EDGE (default target/debug/ceus-edge), PYTHON (default .venv/bin/python, the venv
# that scripts/test.sh makes),
# PARALLEL_TRAIN=1 to run the three trains at the same time (each then competes with the
# other two, so compare their CPU times rather than their wall times).
# A WORK that already has cohort/cohort.csv keeps its cohort, and extract resumes from
# the feature tables already there.
set -euo pipefail
cd "$(dirname "$0")/.."

work=${1:?usage: scripts/cohort-run.sh WORK}
exams=${EXAMS:-878}
seed=${SEED:-20261204}
jobs=${JOBS:-2}
bin=${CEUS_EDGE:-target/debug/ceus-edge}
python=${PYTHON:-.venv/bin/python}

# Runs a command and prints its wall and CPU time and the load average after it.
timed() {
    local name=$1
    shift
    local TIMEFORMAT="time $name %R s wall, %U s user, %S s sys"
    time "$@"
    echo "load average after $name: $(cut -d' ' -f1-3 /proc/loadavg)"
}

if [ ! -f "$work/cohort/cohort.csv" ]; then
    timed phantom "$bin" phantom --cohort "$exams" --seed "$seed" --jobs "$jobs" \
        --out "$work/cohort"
fi
for mode in ceus bmode doppler; do
    timed "extract-$mode" "$bin" extract --cohort "$work/cohort/cohort.csv" \
        --out "$work/$mode.csv" --mode "$mode" --jobs "$jobs"
done
# The imaging model's name in each report, after Xia et al.: TDUS is the grey-scale
# (B-mode) still, CDUS the colour Doppler still.
declare -A imaging_name=([ceus]=CEUS [bmode]=TDUS [doppler]=CDUS)
train_jobs=()
for mode in ceus bmode doppler; do
    step=(timed "train-$mode" "$bin" train --table "$work/$mode.csv" --label label
        --clinical age,cea,t_stage,n_stage --test-fraction 0.3 --seed 1
        --imaging-name "${imaging_name[$mode]}"
        --out "$work/$mode.sig" --report "$work/report-$mode")
    if [ "${PARALLEL_TRAIN:-0}" = 1 ]; then
        "${step[@]}" &
        train_jobs+=($!)
    else
        "${step[@]}"
    fi
done
for job in "${train_jobs[@]}"; do
    wait "$job"
done
timed sklearn-ceus "$python" scripts/sklearn_lasso_cv.py "$work/ceus.csv" \
    > "$work/sklearn-ceus.json"
cat "$work/sklearn-ceus.json"

# Every train used the same seed and split on tables in cohort order, so the rows of the
# three predictions.csv line up. merge_predictions.py checks that they do.
"$python" scripts/merge_predictions.py --out "$work/five-models.csv" \
    "clinical=$work/report-ceus/predictions.csv:clinical" \
    "TDUS=$work/report-bmode/predictions.csv:imaging" \
    "CDUS=$work/report-doppler/predictions.csv:imaging" \
    "CEUS=$work/report-ceus/predictions.csv:imaging" \
    "clinical + CEUS=$work/report-ceus/predictions.csv:integrated"
"$bin" evaluate --scores "$work/five-models.csv" --label label --split-column split \
    --score "clinical,TDUS,CDUS,CEUS,clinical + CEUS" --report "$work/report-five"
echo "five models side by side: $work/report-five/evaluate.md"

# The deployed path: one exam through analyze with the CEUS signature, its ROI and its
# clinical values from the cohort table.
read -r id path x y w h age cea t_stage n_stage < <("$python" -c '
import csv, sys
row = next(csv.DictReader(open(sys.argv[1], newline="")))
names = "id path roi_x roi_y roi_w roi_h age cea t_stage n_stage".split()
print(" ".join(row[name] for name in names))
' "$work/cohort/cohort.csv")
timed analyze "$bin" analyze "$work/cohort/$path" --roi "$x,$y,$w,$h" \
    --signature "$work/ceus.sig" --set "age=$age" --set "cea=$cea" \
    --set "t_stage=$t_stage" --set "n_stage=$n_stage" --out "$work/analyze"
echo "analyze of $id: $work/analyze/result.json"
