#!/usr/bin/env python3
"""Fit scikit-learn's L1 LogisticRegressionCV on a feature table written by `ceus-edge
extract`, for comparison with `ceus-edge train`: wall time, non-zero coefficients, AUCs.

The split is scikit-learn's own stratified 70/30 split, so its rows differ from train's
seeded split. The AUCs are comparable in size, not row for row.

Usage: scripts/sklearn_lasso_cv.py FEATURES.csv [--label label] [--prefix f] [--seed 1]
Prints one JSON object. Packages: scripts/requirements.txt (numpy, scikit-learn).
"""

import argparse
import csv
import json
import time

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def read_table(path, label, prefix):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    columns = [j for j, name in enumerate(header) if name.startswith(prefix) and name[len(prefix):].isdigit()]
    y = np.array([int(row[header.index(label)]) for row in rows[1:]])
    x = np.array([[float(row[j]) for j in columns] for row in rows[1:]])
    return x, y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table")
    parser.add_argument("--label", default="label")
    parser.add_argument("--prefix", default="f")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    x, y = read_table(args.table, args.label, args.prefix)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.3, stratify=y, random_state=args.seed
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train), scaler.transform(x_test)

    started = time.perf_counter()
    model = LogisticRegressionCV(
        Cs=20, cv=10, penalty="l1", solver="liblinear", scoring="neg_log_loss", max_iter=1000
    ).fit(x_train, y_train)
    seconds = time.perf_counter() - started

    print(json.dumps({
        "rows": {"train": len(y_train), "test": len(y_test)},
        "features": x.shape[1],
        "fit_seconds": seconds,
        "C": float(model.C_[0]),
        "nonzero": int(np.count_nonzero(model.coef_)),
        "auc": {
            "train": roc_auc_score(y_train, model.decision_function(x_train)),
            "test": roc_auc_score(y_test, model.decision_function(x_test)),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
