"""Describing a table's columns as fields, and writing a bundle: model.pkl and model.json, as
serving reads and checks them.

train.py and package.py describe a fitted pipeline; `write_bundle` pickles it, records the
pickle's SHA-256, the versions that made it, the linear scorer where the pipeline has one (and
gives the same answers), and model.json's own SHA-256; then it checks the pair exactly as a
serving instance will, and only then replaces the old pair, both files at once.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path

import joblib
import numpy as np
import scipy
import sklearn

from model_loader import AffineSoftmax, affine_softmax, check_metadata, metadata_digest

FEW_VALUES = 10  # an integer column with at most this many values is a category (a year, a class of travel)


class DataError(Exception):
    """The data can't make (or describe) a model; the message says why."""


def field_name(column):
    """`"sepal length (cm)"` -> `"sepal_length"`: lower case, units in parentheses dropped, every
    run of anything but letters (of any alphabet) and digits an underscore."""
    without_units = re.sub(r"\([^)]*\)", " ", str(column))
    return re.sub(r"[\W_]+", "_", without_units.lower()).strip("_")


def field_names(columns):
    names = [field_name(column) for column in columns]
    for column, name in zip(columns, names):
        if not name:
            raise DataError(f"column {column!r} gives no usable field name")
    seen = {}
    for column, name in zip(columns, names):
        if name in seen:
            raise DataError(f"columns {seen[name]!r} and {column!r} both become field {name!r}; rename one")
        seen[name] = column
    return names


def column_type(series):
    """A pandas column's field type, or a DataError for what a field can't hold."""
    import pandas as pd

    kinds = pd.api.types
    if kinds.is_bool_dtype(series):
        return "boolean"
    if kinds.is_integer_dtype(series):
        return "integer"
    if kinds.is_float_dtype(series):
        return "number"
    if kinds.is_string_dtype(series) or kinds.is_object_dtype(series):
        found = {type(value) for value in series.dropna()}
        if found <= {str}:
            return "string"
    raise DataError(f"column {series.name!r} holds {series.dtype} values, which a field can't; drop it (--drop) or convert it")


def python_values(series, kind):
    """A column as the JSON values a request would send: None for a gap."""
    values = series.astype(object).where(series.notna(), None).tolist()
    if kind == "integer":
        return [None if v is None else int(v) for v in values]
    if kind == "number":
        return [None if v is None else float(v) for v in values]
    if kind == "boolean":
        return [None if v is None else bool(v) for v in values]
    return values


def fields_of(data, encoded=None):
    """Each column of `data` ("columns", "types", "values": rows as JSON values) as a field, with
    the categories a fitted encoder knows (`encoded`: {column: values}) or else the sample's. All
    may be null when the pipeline imputes, that is when the table has gaps or categories."""
    encoded = encoded or {}
    fields = []
    for i, (name, column, kind) in enumerate(zip(field_names(data["columns"]), data["columns"], data["types"])):
        seen = [row[i] for row in data["values"] if row[i] is not None]
        field = {"name": name, "column": column, "type": kind, "nullable": False}
        if column in encoded or kind in ("string", "boolean") or (kind == "integer" and len(set(seen)) <= FEW_VALUES):
            field["categories"] = sorted(set(seen) | set(encoded.get(column, ())), key=lambda v: (repr(type(v)), v))
            field["unknown_categories"] = "ignore"
        elif seen:
            field["range"] = [min(seen), max(seen)]
        fields.append(field)
    if any("categories" in field for field in fields) or any(None in row for row in data["values"]):
        for field in fields:
            field["nullable"] = True
    return fields


def model_name(text):
    """A model's name, as the Open Inference Protocol and a Cloud Function name take it: "Penguins
    (2020).csv" -> "penguins-2020"."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(str(text)).stem.lower()).strip("-")[:40].strip("-")
    return name if name[:1].isalpha() else f"model-{name}".strip("-")


def write_bundle(pipeline, description, out_dir):
    """Pickle `pipeline` into out_dir/model.pkl and write out_dir/model.json from `description`
    (what the caller knows: name, task, data, fields, input, classes, class_names, pipeline,
    metrics, example, modules). Returns the metadata written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        pickle_path = Path(staging) / "model.pkl"
        joblib.dump(pipeline, pickle_path)
        pickle_sha256 = hashlib.sha256(pickle_path.read_bytes()).hexdigest()
        metadata = {
            "name": description["name"],
            "task": description["task"],
            "model_file": "model.pkl",
            "model_sha256": pickle_sha256,
            "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **{key: value for key, value in description.items() if key not in ("name", "task")},
            "versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "joblib": joblib.__version__,
            },
        }
        # The numbers a serving instance answers with, without scikit-learn; written only if they
        # give the pipeline's own answers.
        scorer = affine_softmax(pipeline)
        if scorer is not None and agrees(scorer, pipeline):
            metadata["scorer"] = scorer.as_json(pickle_sha256)
        metadata["metadata_sha256"] = metadata_digest(metadata)
        # What a serving instance checks first, checked here before anything is replaced.
        check_metadata(metadata, out_dir)
        AffineSoftmax.from_metadata(metadata)
        json_path = Path(staging) / "model.json"
        json_path.write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        os.replace(pickle_path, out_dir / "model.pkl")
        os.replace(json_path, out_dir / "model.json")
    if (out_dir / "requirements.txt").is_file():
        pin_pandas(out_dir / "requirements.txt", metadata["input"] == "dataframe")
    return metadata


def agrees(scorer, pipeline, count=512):
    """Whether the scorer gives the pipeline's classes, and its probabilities within 1e-9, on
    points spread well beyond the training data."""
    scaler = pipeline.steps[0][1]
    mean = scaler.mean_ if scaler.mean_ is not None else 0.0  # None: StandardScaler(with_mean=False, with_std=False)
    scale = scaler.scale_ if scaler.scale_ is not None else 1.0
    probe = mean + scale * np.random.default_rng(0).normal(scale=3.0, size=(count, scaler.n_features_in_))
    fast, exact = scorer.rows(probe), pipeline.predict_proba(probe)
    return (np.allclose(fast, exact, rtol=0, atol=1e-9)
            and np.array_equal(pipeline.classes_[fast.argmax(axis=1)], pipeline.predict(probe)))


PANDAS_NOTE = "# model.pkl's pipeline takes a pandas DataFrame (this pin and note are the bundle writer's)"


def pin_pandas(requirements, needed):
    """requirements.txt pins pandas (the version installed here) exactly when the model needs it:
    deployed, it costs a model that doesn't a cold start's import and its memory."""
    lines = requirements.read_text().splitlines()
    if PANDAS_NOTE in lines:
        at = lines.index(PANDAS_NOTE)
        del lines[at:at + 2]
    if needed:
        from importlib.metadata import version

        lines += [PANDAS_NOTE, f"pandas=={version('pandas')}"]
    requirements.write_text("\n".join(lines) + "\n")

