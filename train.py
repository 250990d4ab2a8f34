"""Train the pipeline and write the bundle's model: model.pkl and model.json.

    python train.py                                   # iris, the embedded default
    python train.py --data table.csv --target label   # any CSV of numeric features

model.pkl is the fitted scikit-learn pipeline (StandardScaler + LogisticRegression),
saved with joblib. model.json holds what serving needs to know about it: the API's
field names and the training columns they come from, the class names, accuracy,
the library versions that made the pickle, and the pickle's SHA-256.

Both files are written only when everything succeeded, and replaced together, so a
failed run leaves the previous model in place.
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from bundle_writer import model_name, write_bundle

HERE = Path(__file__).resolve().parent
CV_FOLDS = 5


class DataError(Exception):
    """The training data can't make a model; the message says why."""


def field_name(column):
    """`"sepal length (cm)"` -> `"sepal_length"`: lower snake_case, units dropped."""
    without_units = re.sub(r"\([^)]*\)", " ", str(column))
    return re.sub(r"[^0-9a-z]+", "_", without_units.lower()).strip("_")


def field_names(columns):
    names = [field_name(column) for column in columns]
    for column, name in zip(columns, names):
        if not name:
            raise DataError(f"column {column!r} gives no usable field name")
    seen = {}
    for column, name in zip(columns, names):
        if name in seen:
            raise DataError(
                f"columns {seen[name]!r} and {column!r} both become field {name!r}; rename one"
            )
        seen[name] = column
    return names


def iris_data():
    iris = load_iris()
    return {
        "name": "iris",
        "source": "iris (scikit-learn's bundled copy)",
        "columns": list(iris.feature_names),
        "X": iris.data,
        "y": iris.target,
        "class_names": [str(name) for name in iris.target_names],
        "target": "species",
    }


def csv_data(path, target):
    # pandas is a training-time tool only: serving never imports it.
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None
    if target not in table.columns:
        raise DataError(
            f"{path}: no column {target!r}; the columns are: {', '.join(map(str, table.columns))}"
        )
    features = table.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    non_numeric = [str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataError(f"{path}: non-numeric feature columns: {', '.join(non_numeric)}")
    features = features.astype("float64")
    missing = features.isna() | ~np.isfinite(features)
    missing_target = table[target].isna()
    bad_rows = missing.any(axis=1) | missing_target
    if bad_rows.any():
        count = int(missing.to_numpy().sum() + missing_target.sum())
        # Row numbers as a spreadsheet shows them: the header is line 1.
        first = ", ".join(str(i + 2) for i in np.flatnonzero(bad_rows.to_numpy())[:5])
        raise DataError(f"{path}: {count} missing or non-finite values; first on lines {first}")
    labels, y = np.unique(table[target].astype(str).to_numpy(), return_inverse=True)
    return {
        "name": model_name(path),
        "source": path.name,
        "columns": [str(c) for c in features.columns],
        "X": features.to_numpy(),
        "y": y,
        "class_names": [str(label) for label in labels],
        "target": str(target),
    }


def check_trainable(data):
    counts = np.bincount(data["y"], minlength=len(data["class_names"]))
    if len(data["class_names"]) < 2:
        raise DataError(f"the target {data['target']!r} has a single class; nothing to predict")
    too_few = [name for name, count in zip(data["class_names"], counts) if count < CV_FOLDS]
    if too_few:
        raise DataError(
            f"classes with fewer than {CV_FOLDS} rows (needed for {CV_FOLDS}-fold "
            f"cross-validation): {', '.join(too_few)}"
        )


def make_pipeline():
    return Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression())])


def train(data, out_dir):
    """Fit, then write model.pkl and model.json into out_dir. Returns the metadata."""
    features = field_names(data["columns"])
    check_trainable(data)
    X, y = np.asarray(data["X"], dtype=np.float64), np.asarray(data["y"])

    cv = StratifiedKFold(n_splits=CV_FOLDS)
    cv_accuracy = float(cross_val_score(make_pipeline(), X, y, cv=cv).mean())
    # Fitted on a plain array, not a DataFrame, so serving needs no pandas.
    pipeline = make_pipeline().fit(X, y)
    training_accuracy = float(pipeline.score(X, y))
    fields = [
        {"name": name, "column": column, "type": "number", "nullable": False, "range": [float(low), float(high)]}
        for name, column, low, high in zip(features, data["columns"], X.min(axis=0), X.max(axis=0))
    ]
    return write_bundle(pipeline, {
        "name": data["name"],
        "task": "classification",
        "data": {"source": data["source"], "rows": int(X.shape[0]), "target": data["target"]},
        "fields": fields,
        "input": "array",
        "classes": [int(label) for label in pipeline.classes_],
        "class_names": data["class_names"],
        "pipeline": [f"{name}: {type(step).__name__}" for name, step in pipeline.steps],
        "metrics": {"training_accuracy": round(training_accuracy, 4), "cv_accuracy": round(cv_accuracy, 4)},
        "example": dict(zip(features, (float(v) for v in X[0]))),
        "modules": [],
    }, out_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="CSV file to train on (default: the iris data set)")
    parser.add_argument("--target", help="the CSV column to predict (required with --data)")
    parser.add_argument("--out", default=str(HERE), help="folder for model.pkl and model.json")
    args = parser.parse_args(argv)
    if bool(args.data) != bool(args.target):
        parser.error("--data and --target go together")
    try:
        data = csv_data(args.data, args.target) if args.data else iris_data()
        metadata = train(data, args.out)
    except DataError as err:
        print(f"train.py: {err}", file=sys.stderr)
        print("train.py: nothing written; the existing model is unchanged", file=sys.stderr)
        return 1
    print(
        f"trained on {metadata['data']['source']}: {metadata['data']['rows']} rows, "
        f"{len(metadata['fields'])} features ({', '.join(field['name'] for field in metadata['fields'])}), "
        f"{len(metadata['class_names'])} classes ({', '.join(metadata['class_names'])})\n"
        f"training accuracy {metadata['metrics']['training_accuracy']:.4f}, "
        f"{CV_FOLDS}-fold cross-validated accuracy {metadata['metrics']['cv_accuracy']:.4f}\n"
        f"wrote {Path(args.out) / 'model.pkl'} (sha256 {metadata['model_sha256'][:12]}...) "
        f"and {Path(args.out) / 'model.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
