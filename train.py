"""Train a pipeline and write the bundle's model: model.pkl and model.json.

    python train.py                                          # iris, the embedded default
    python train.py --data table.csv --target species        # any CSV: numbers, text, true/false, gaps
        [--task classification|regression] [--drop column,...] [--sep ';'] [--out folder]

A table of numbers without gaps gets StandardScaler and the estimator, as iris does; any other
gets one ColumnTransformer in front of it: numbers have their gaps filled with the median and are
scaled, text, true/false and integer columns of few values have theirs filled with the most
frequent value and are one-hot encoded, a value never seen in training counting as none of them;
a column of free text (reviews, descriptions, listing titles: sentences of several words, too many
different to be categories) is a text field, whose words the model learns from with a TF-IDF (a
gap an empty text); a text column of IDs or names, each row's value its own, is dropped, with a note. A column of
ISO 8601 dates (2024-05-01, or 2024-05-01T13:45:00) is a date field, which the pipeline takes as
numbers: the date's year, month, day, day of week and day of year (and hour and minute where the
times vary), computed by serving from the date a request sends, with Python's datetime; a time with
a UTC offset is taken to UTC. Dates written otherwise (05/01/2024) stay text: which is the day?
The estimator is LogisticRegression for a classification, Ridge for a regression, chosen from the
target. Labels stay as the data spells them (integers as integers). The pipeline is fitted on plain
arrays, built exactly as serving builds them, so serving needs no pandas.

model.json says what serving needs: each field's name, training column, type, whether it may be
null, its categories or range; the classes; cross-validated scores beside a trivial baseline's;
the versions that made the pickle; checksums. Both files are written only when everything
succeeded, and replaced together, so a failed run leaves the previous model in place.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from bundling.fields import DataError, column_type, fields_of, model_name, pandas_parts, python_values, stopped, with_utc_offsets
from bundling.table import check_numbers, read_csv
from bundling.writer import served_as, write_bundle
from serving.bundle import as_list
from serving.fields import Schema

HERE = Path(__file__).resolve().parent
CV_FOLDS = 5
MAX_CLASSES = 20  # a numeric target with more distinct values than this is a regression
# The numbers a date becomes, which a linear model or a tree can use: its year (a trend), month, day,
# day of week and day of year (seasons, weekly rhythms), and the hour and minute where times vary.
PARTS_OF = {"date": ["year", "month", "day", "day_of_week", "day_of_year"],
            "datetime": ["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute"]}


def iris_data():
    iris = load_iris()
    return {
        "name": "iris",
        "source": "iris (scikit-learn's bundled copy)",
        "target": "species",
        "columns": list(iris.feature_names),
        "types": ["number"] * 4,
        "values": iris.data.tolist(),
        "labels": iris.target.tolist(),
        "class_names": [str(name) for name in iris.target_names],
        "notes": [],
    }


# A column of free text is sentences, not names or categories: its values run to TEXT_WORDS words or
# more (the median: a listing's title, a review), and more of them differ than a category has levels
# (over 50, or over half the rows). What a model learns from is its words: a TF-IDF of them.
TEXT_WORDS = 5


def free_text(series):
    """The median number of words in a column of free text (to say so), or None for any other column."""
    if column_type(series) != "string":
        return None
    values = series.dropna()
    words = values.str.split().str.len().median()
    distinct = values.nunique()
    return int(words) if words >= TEXT_WORDS and (distinct > 50 or 2 * distinct > len(values)) else None


# A text column whose values are each a row's own (an ID, a name) is dropped: one-hot encoded, it
# only tells the training rows apart and gives a new row nothing learned, and its field would keep
# every training value. That is no value repeated (from 10 values on: fewer prove nothing), or more
# than 50 values of which over 95% differ (names that recur now and then). A column of sentences
# goes too: a text vectorizer, not a one-hot encoding, is what could learn from it.
def own_values(series):
    """Why a column's values are each a row's own, to say so ("every row has its own value"), or None."""
    if column_type(series) != "string":
        return None
    values = series.dropna()
    distinct = values.nunique()
    if distinct == len(values) >= 10:
        return "every row has its own value" if len(values) == len(series) else f"none of its {len(values)} values repeats"
    if len(values) > 50 and distinct > 0.95 * len(values):
        return f"{distinct} of its {len(values)} values differ"
    return None


def csv_data(path, target, sep=",", drop=()):
    import pandas as pd  # a training-time tool only: serving never imports it for these models

    path = Path(path)
    table = read_csv(path, sep)
    notes = []
    first = table.columns[0]
    if str(first).startswith("Unnamed: 0") and pd.api.types.is_integer_dtype(table[first]) and table[first].is_unique:
        table = table.drop(columns=[first])
        notes.append("the first column, unnamed and 0, 1, 2, ..., is the index pandas writes with to_csv: "
                      "dropped (save with index=False to leave it out)")
    if target not in table.columns:
        hint = f"; is it separated by something else than {sep!r}? (--sep)" if table.shape[1] == 1 else ""
        raise DataError(f"{path}: no column {target!r}; the columns are: {', '.join(map(str, table.columns))}{hint}")
    unknown = [column for column in drop if column not in table.columns]
    if unknown:
        raise DataError(f"{path}: --drop names columns it doesn't have: {', '.join(unknown)}")
    table = table.drop(columns=list(drop))
    check_numbers(path, table, table.columns)
    missing_target = table[target].isna()
    if missing_target.all():
        raise DataError(f"{path}: the target {target!r} is empty on every line")
    if missing_target.any():
        lines = ", ".join(str(i + 2) for i in np.flatnonzero(missing_target.to_numpy())[:5])
        notes.append(f"{int(missing_target.sum())} rows without a {target} dropped (lines {lines}...)")
        table = table[~missing_target]
    features = table.drop(columns=[target])
    texts = {column: words for column in features.columns if (words := free_text(features[column]))}
    notes += [f"column {column!r} is free text ({words} words in the middle value): the model learns from its words (a TF-IDF)"
              + (f"; its {gaps} empty cells are empty texts" if (gaps := int(features[column].isna().sum())) else "")
              for column, words in texts.items()]
    unlearnable = {column: why for column in features.columns if column not in texts and (why := own_values(features[column]))}
    notes += [f"dropped column {column!r}: {why} (an ID or a name), which a model can't learn from" for column, why in unlearnable.items()]
    features = features.drop(columns=list(unlearnable))
    if features.shape[1] == 0:
        left = f" ({', '.join(map(repr, unlearnable))} dropped: each row has its own value)" if unlearnable else ""
        raise DataError(f"{path}: no feature columns besides the target {target!r}{left}")
    types = ["text" if column in texts else column_type(features[column]) for column in features.columns]
    for column, kind in zip(features.columns, types):
        distinct = features[column].nunique()
        if kind == "string" and distinct > max(50, len(table) // 2):
            notes.append(f"column {column!r} has {distinct} different values in {len(table)} rows: one-hot "
                         f"encoded, it can only tell rows apart; leave it out with --drop {column}")
    notes += [f"column {column!r}: its times are written with a UTC offset (Z or +02:00, say): each is taken to UTC, "
              "as serving takes a request's"
              for column, kind in zip(features.columns, types) if kind == "datetime" and with_utc_offsets(features[column])]
    columns = [python_values(features[column], kind) for column, kind in zip(features.columns, types)]
    labels = table[target]
    return {
        "name": model_name(path),
        "source": path.name,
        "target": str(target),
        "columns": [str(c) for c in features.columns],
        "types": types,
        "values": [list(row) for row in zip(*columns)],
        "labels": python_values(labels, column_type(labels, dates=False)),
        "class_names": None,
        "notes": notes,
    }


def choose_task(data, task=None):
    """Classification or regression, from the target unless told; and why, to print."""
    labels = data["labels"]
    distinct = len(set(labels))
    numeric = all(type(v) in (int, float) for v in labels)
    integral = numeric and all(float(v).is_integer() for v in labels)
    if task is None:
        task = "regression" if numeric and (not integral or distinct > MAX_CLASSES) else "classification"
    if task == "regression" and not numeric:
        raise DataError(f"the target {data['target']!r} holds text, so it can't be a regression")
    other = "classification" if task == "regression" else "regression"
    kind = "numbers" if task == "regression" else "values"
    return task, f"target {data['target']!r} holds {distinct} distinct {kind}; --task {other} to change it"


def make_pipeline(task, fields):
    """StandardScaler and the estimator for numbers without gaps; else one ColumnTransformer in
    front of it, by column position (the pipeline takes arrays, not DataFrames; a date's parts are
    numbers, a column each; a text field's column goes alone to its TF-IDF, as a vectorizer takes it)."""
    estimator = Ridge() if task == "regression" else LogisticRegression()
    kinds = [field["type"] if field["type"] == "text" else "category" if "categories" in field else "number"
             for field in fields for _ in field.get("parts") or [field["name"]]]
    if set(kinds) == {"number"} and not any(field["nullable"] for field in fields):
        return Pipeline([("scaler", StandardScaler()), ("model", estimator)])
    steps = [
        ("numbers", Pipeline([("fill", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
         [i for i, kind in enumerate(kinds) if kind == "number"]),
        ("categories", Pipeline([("fill", SimpleImputer(strategy="most_frequent")),
                                 ("encode", OneHotEncoder(handle_unknown="ignore"))]),
         [i for i, kind in enumerate(kinds) if kind == "category"]),
    ]
    # Words in two training texts at least: a word of one text only (a name, a typo) tells a model little.
    steps += [(f"words_{i}", TfidfVectorizer(min_df=2), i) for i, kind in enumerate(kinds) if kind == "text"]
    if task == "classification":
        estimator.set_params(max_iter=1000)
    return Pipeline([("columns", ColumnTransformer([step for step in steps if step[2] != []])), ("model", estimator)])


def check_date_parts(schema, rows, X):
    """That the parts of each training date that serving computes, with Python's datetime (in X),
    are those pandas computes: the model learns from them, and is asked with serving's."""
    at = 0
    for i, field in enumerate(schema.fields):
        if field.parts:
            values = [row[i] for row in rows]
            found, expected = np.asarray(X[:, at:at + field.width], dtype=np.float64), pandas_parts(values, field.parts)
            differs = np.flatnonzero(~np.all((found == expected) | (np.isnan(found) & np.isnan(expected)), axis=1))
            if differs.size:
                raise DataError(f"the parts of {field.name} {values[differs[0]]} differ between pandas and Python's datetime")
        at += field.width


def labels_of(data, task):
    """The target as the model learns it: integers stay integers (a float target of whole
    numbers is one with gaps, read as floats by pandas), text stays text."""
    labels = data["labels"]
    if task == "classification" and all(type(v) in (int, float) for v in labels):
        return np.array([int(v) for v in labels])
    return np.array(labels, dtype=np.float64 if task == "regression" else object)


def scores(task, pipeline, X, y):
    """Cross-validated scores on shuffled folds with a fixed seed, beside a trivial baseline's
    (the majority class, or the mean), so that one can see whether the model learned anything."""
    if task == "classification":
        counts = {label: int((y == label).sum()) for label in set(y.tolist())}
        too_few = sorted(str(label) for label, count in counts.items() if count < CV_FOLDS)
        if too_few:
            raise DataError(f"classes with fewer than {CV_FOLDS} rows (needed for {CV_FOLDS}-fold "
                            f"cross-validation): {', '.join(too_few)}")
        folds, baseline, metrics = StratifiedKFold(CV_FOLDS, shuffle=True, random_state=0), DummyClassifier(), ["accuracy"]
    else:
        if len(y) < 2 * CV_FOLDS:
            raise DataError(f"{len(y)} rows are too few for {CV_FOLDS}-fold cross-validation")
        folds, baseline, metrics = KFold(CV_FOLDS, shuffle=True, random_state=0), DummyRegressor(), ["r2", "neg_mean_absolute_error"]
    found = {}
    for name, estimator in (("cv", pipeline), ("baseline_cv", baseline)):
        result = cross_validate(estimator, X, y, cv=folds, scoring=metrics)
        for metric in metrics:
            value = float(result[f"test_{metric}"].mean())
            key = {"neg_mean_absolute_error": "mae", "accuracy": "accuracy", "r2": "r2"}[metric]
            found[f"{name}_{key}"] = round(-value if key == "mae" else value, 4)
    return found


def train(data, out_dir, task=None):
    """Fit, then write model.pkl and model.json into out_dir. Returns the metadata and what to print."""
    task, why = choose_task(data, task)
    fields = fields_of(data)
    for field in fields:
        if field["type"] in PARTS_OF:
            field["parts"] = PARTS_OF[field["type"]]
        if field["type"] == "text":  # a TF-IDF takes no gap: a text with no words is an empty one
            field["nullable"] = False
    if task == "classification" and len(set(data["labels"])) < 2:
        raise DataError(f"the target {data['target']!r} has a single class; nothing to predict")
    schema = Schema(fields)
    X = schema.pipeline_input(data["values"], "array")  # as serving builds it from a request's rows
    check_date_parts(schema, data["values"], X)
    y = labels_of(data, task)
    pipeline = make_pipeline(task, fields)
    metrics = scores(task, pipeline, X, y)
    pipeline.fit(X, y)
    if task == "classification":
        metrics = {"training_accuracy": round(float(pipeline.score(X, y)), 4), **metrics}
    else:
        metrics = {"training_r2": round(float(pipeline.score(X, y)), 4), **metrics}
    complete = next((row for row in data["values"] if None not in row), data["values"][0])
    description = {
        "name": data["name"],
        "task": task,
        "data": {"source": data["source"], "rows": len(data["values"]), "target": data["target"]},
        "fields": fields,
        "input": "array",
        "pipeline": [f"{name}: {type(step).__name__}" for name, step in pipeline.steps],
        "metrics": metrics,
        "example": dict(zip(schema.names, complete)),
        "modules": [],
    }
    if task == "classification":
        classes = as_list(pipeline.classes_)
        description["classes"] = classes
        description["class_names"] = data["class_names"] or [str(label) for label in classes]
    return write_bundle(pipeline, description, out_dir, data["values"]), why


def summary(metadata, why, notes, out):
    fields = metadata["fields"]
    kinds = ", ".join(f"{field['name']} ({field['type']}{', may be null' if field['nullable'] else ''})" for field in fields)
    m = metadata["metrics"]
    lines = [f"trained on {metadata['data']['source']}: {metadata['data']['rows']} rows, {len(fields)} features: {kinds}",
             f"task: {metadata['task']} ({why})"]
    lines += [f"{field['name']}: {field['type']}s from {field['range'][0]} to {field['range'][1]}, which the model takes as their "
              f"{', '.join(part.replace('_', ' ') for part in field['parts'])}" for field in fields if "parts" in field]
    if metadata["task"] == "classification":
        lines.append(f"{len(metadata['classes'])} classes ({', '.join(metadata['class_names'])})")
        lines.append(f"training accuracy {m['training_accuracy']:.4f}, {CV_FOLDS}-fold cross-validated accuracy "
                     f"{m['cv_accuracy']:.4f} (always guessing the most frequent class: {m['baseline_cv_accuracy']:.4f})")
    else:
        lines.append(f"{CV_FOLDS}-fold cross-validated R² {m['cv_r2']:.4f}, mean absolute error {m['cv_mae']:.4g} "
                     f"(always guessing the mean: R² {m['baseline_cv_r2']:.4f}, mean absolute error {m['baseline_cv_mae']:.4g})")
    lines += [f"note: {note}" for note in notes]
    lines.append(served_as(metadata))
    folder = Path(out).resolve()
    shown = folder.relative_to(Path.cwd()) if folder.is_relative_to(Path.cwd()) else folder
    lines.append(f"wrote {shown / 'model.pkl'} and {shown / 'model.json'}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="CSV file to train on (default: the iris data set)")
    parser.add_argument("--target", help="the CSV column to predict (required with --data)")
    parser.add_argument("--task", choices=("classification", "regression"), help="default: chosen from the target")
    parser.add_argument("--drop", default="", help="columns to leave out, comma separated")
    parser.add_argument("--sep", default=",", help="the CSV's separator (default ,)")
    parser.add_argument("--out", default=str(HERE), help="folder for model.pkl and model.json")
    args = parser.parse_args(argv)
    if bool(args.data) != bool(args.target):
        parser.error("--data and --target go together")
    try:
        drop = [column for column in args.drop.split(",") if column]
        data = csv_data(args.data, args.target, args.sep, drop) if args.data else iris_data()
        metadata, why = train(data, args.out, args.task)
    except Exception as err:  # whatever stops it, the user reads one line, not a traceback
        print(stopped("train.py", err), file=sys.stderr)
        return 1
    print(summary(metadata, why, data["notes"], args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
