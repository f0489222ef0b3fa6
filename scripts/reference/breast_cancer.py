"""Write the Wisconsin diagnostic breast cancer data as a cohort CSV and the results of an
equivalent scikit-learn/scipy/statsmodels pipeline as a fixture for `ceus-edge train`.

The data ship inside scikit-learn (569 rows, 30 features, 212 malignant). Malignant is
the positive class. The 30 features become columns f0..f29, except two that play
clinical variables (c_texture = "worst texture", c_smoothness = "mean smoothness"), so
the clinical and integrated models are exercised too. The split column is a stratified
7:3 split, and the fold column gives the training rows' 10 stratified folds.

Run with the pinned packages of scripts/requirements.txt:
    .venv/bin/python scripts/reference/breast_cancer.py
"""

import csv
import json
import pathlib

import numpy as np
import scipy.stats
import statsmodels.api as sm
from sklearn.datasets import load_breast_cancer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from stats_reference import (
    cv_deviance,
    glmnet_lambdas,
    glmnet_path,
    redundancy_filter,
    sklearn_lasso,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CSV_PATH = ROOT / "tests" / "fixtures" / "stats" / "breast_cancer.csv"
FIXTURE_PATH = ROOT / "tests" / "fixtures" / "stats" / "breast_cancer_expected.json"
LAMBDA_MIN_RATIO = 0.01
CLINICAL = {"c_texture": "worst texture", "c_smoothness": "mean smoothness"}


def write_csv(data, label, is_test, folds):
    names = list(data.feature_names)
    clinical_index = {names.index(source): name for name, source in CLINICAL.items()}
    header = ["id", "malignant", "split", "fold"]
    feature_columns = []
    for j in range(len(names)):
        if j in clinical_index:
            continue
        feature_columns.append(j)
    header += [f"f{k}" for k in range(len(feature_columns))]
    header += list(CLINICAL)
    with CSV_PATH.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i in range(len(label)):
            row = [i, int(label[i]), "test" if is_test[i] else "train", folds[i]]
            row += [repr(float(data.data[i, j])) for j in feature_columns]
            row += [repr(float(data.data[i, names.index(s)])) for s in CLINICAL.values()]
            writer.writerow(row)
    return feature_columns


def main():
    data = load_breast_cancer()
    label = data.target == 0
    index = np.arange(len(label))
    _, test_index = train_test_split(index, test_size=0.3, stratify=label, random_state=0)
    is_test = np.zeros(len(label), dtype=bool)
    is_test[test_index] = True
    train = ~is_test

    folds = np.full(len(label), -1)
    splitter = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)
    train_rows = np.flatnonzero(train)
    for fold, (_, held_out) in enumerate(splitter.split(train_rows, label[train_rows])):
        folds[train_rows[held_out]] = fold

    feature_columns = write_csv(data, label, is_test, folds)
    x = data.data[:, feature_columns]
    y = label.astype(float)

    mean = x[train].mean(0)
    sd = x[train].std(0, ddof=1)
    z = (x - mean) / sd

    significant = [
        j
        for j in range(z.shape[1])
        if scipy.stats.mannwhitneyu(z[train & label, j], z[train & ~label, j]).pvalue < 0.05
    ]
    rho = scipy.stats.spearmanr(z[train][:, significant]).statistic
    kept = [significant[k] for k in redundancy_filter(rho, 0.9)]

    xt, yt = z[train][:, kept], y[train]
    # The data are nearly separable, so the default path down to lambda_max * 1e-4 ends in
    # fits that converge very slowly in both implementations. The test passes
    # --lambda-min-ratio 0.01.
    candidates = glmnet_lambdas(xt, yt, 100, ratio=LAMBDA_MIN_RATIO)
    lambdas = candidates[: len(glmnet_path(xt, yt, candidates))]
    cvm, cvsd = cv_deviance(xt, yt, folds[train], lambdas)
    index_min = int(np.flatnonzero(cvm <= cvm.min())[0])
    index_1se = int(np.flatnonzero(cvm <= cvm[index_min] + cvsd[index_min])[0])
    intercept, coef = sklearn_lasso(xt, yt, lambdas[index_1se])
    nonzero = np.flatnonzero(coef)
    rad_train = intercept + xt @ coef
    rad_test = intercept + z[is_test][:, kept] @ coef

    clinical = np.column_stack([data.data[:, list(data.feature_names).index(s)] for s in CLINICAL.values()])
    univariate = [
        float(sm.Logit(yt, sm.add_constant(clinical[train][:, [k]])).fit(disp=0, tol=1e-12).pvalues[1])
        for k in range(clinical.shape[1])
    ]
    entered = [k for k, p in enumerate(univariate) if p < 0.1]
    clinical_fit = sm.Logit(yt, sm.add_constant(clinical[train][:, entered])).fit(disp=0, tol=1e-12)
    integrated_x = np.column_stack([rad_train, clinical[train][:, entered]])
    integrated_fit = sm.Logit(yt, sm.add_constant(integrated_x)).fit(disp=0, tol=1e-12, maxiter=200)
    clinical_test_eta = sm.add_constant(clinical[is_test][:, entered]) @ clinical_fit.params

    expected = {
        "rows": {"train": int(train.sum()), "test": int(is_test.sum())},
        "after_mann_whitney": len(significant),
        "after_spearman": len(kept),
        "lasso_nonzero": int(len(nonzero)),
        "selected": [f"f{kept[j]}" for j in nonzero],
        "lambda_min": float(lambdas[index_min]),
        "lambda_1se": float(lambdas[index_1se]),
        "path_length": len(lambdas),
        "lambda_min_ratio": LAMBDA_MIN_RATIO,
        "lasso_coefficients": coef[nonzero].tolist(),
        "lasso_intercept": intercept,
        "imaging_auc_train": float(roc_auc_score(label[train], rad_train)),
        "imaging_auc_test": float(roc_auc_score(label[is_test], rad_test)),
        "clinical_univariate_p": univariate,
        "clinical_entered": [list(CLINICAL)[k] for k in entered],
        "clinical_coefficients": clinical_fit.params.tolist(),
        "clinical_std_errors": clinical_fit.bse.tolist(),
        "clinical_auc_test": float(roc_auc_score(label[is_test], clinical_test_eta)),
        "integrated_coefficients": integrated_fit.params.tolist(),
    }
    FIXTURE_PATH.write_text(json.dumps(expected, indent=1) + "\n")
    print(json.dumps(expected, indent=1))


if __name__ == "__main__":
    main()
