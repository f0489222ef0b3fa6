#!/usr/bin/env python3
"""Merge model columns of several `ceus-edge train --report` predictions.csv files into one
table for `ceus-edge evaluate --scores ... --split-column split`.

Each source is NAME=FILE:COLUMN, for example `TDUS=work/report-bmode/predictions.csv:imaging`.
The files must list the same rows in the same order with the same split and label. They do
when every `train` ran with the same --seed and --test-fraction on feature tables of the
same cohort, because extract writes its rows in cohort order. The script checks this and
stops with an error naming the first row that differs.

Usage: scripts/merge_predictions.py --out MERGED.csv NAME=FILE:COLUMN [NAME=FILE:COLUMN ...]
Standard library only.
"""

import argparse
import csv
import sys

KEYS = ("id", "split", "label")


def parse_source(text):
    name, sep, rest = text.partition("=")
    path, sep2, column = rest.rpartition(":")
    if not (sep and sep2 and name and path and column):
        raise SystemExit(f"merge_predictions: {text!r} is not NAME=FILE:COLUMN")
    return name, path, column


def read_predictions(path, column):
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise SystemExit(f"merge_predictions: cannot read {path}: {error.strerror}")
    if not rows:
        raise SystemExit(f"merge_predictions: {path} has no rows")
    missing = [key for key in KEYS + (column,) if key not in rows[0]]
    if missing:
        raise SystemExit(
            f"merge_predictions: {path} has no column {', '.join(missing)}; "
            f"available: {', '.join(rows[0])}"
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="merged CSV to write")
    parser.add_argument("sources", nargs="+", metavar="NAME=FILE:COLUMN")
    args = parser.parse_args()

    sources = [parse_source(text) for text in args.sources]
    names = [name for name, _, _ in sources]
    if len(set(names)) != len(names):
        raise SystemExit(f"merge_predictions: model names repeat: {', '.join(names)}")

    first_path = sources[0][1]
    keys = None
    columns = []
    for name, path, column in sources:
        rows = read_predictions(path, column)
        row_keys = [tuple(row[key] for key in KEYS) for row in rows]
        if keys is None:
            keys = row_keys
        elif row_keys != keys:
            if len(row_keys) != len(keys):
                where = f"{len(row_keys)} rows against {len(keys)}"
            else:
                row = next(i for i, (a, b) in enumerate(zip(row_keys, keys)) if a != b)
                where = f"row {row + 1} is {row_keys[row]} against {keys[row]}"
            raise SystemExit(
                f"merge_predictions: {path} and {first_path} disagree on (id, split, label): "
                f"{where}; train both with the same --seed and --test-fraction on tables "
                "of the same cohort"
            )
        columns.append([row[column] for row in rows])

    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(KEYS) + names)
        for i, key in enumerate(keys):
            writer.writerow(list(key) + [values[i] for values in columns])
    print(f"wrote {len(keys)} rows of {len(names)} models to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
