"""A table's columns described as the bundle's fields: their names, types, gaps, categories and
ranges, as model.json holds them and serving checks a request's values by them."""

import re
from pathlib import Path

FEW_VALUES = 10  # an integer column with at most this many values is a category (a year, a class of travel)


class DataError(Exception):
    """The data can't make (or describe) a model; the message says why."""


def stopped(tool, err):
    """The one line a tool prints on stderr when it stops: why (a DataError in its own words,
    anything else by its type and message, whose lines are joined, scikit-learn's running to
    several), and that the bundle was left as it was."""
    why = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
    return f"{tool}: {' '.join(line.strip() for line in why.splitlines() if line.strip())} " \
           f"(nothing written; the existing model is unchanged)"


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
        if found <= {int}:  # pandas keeps whole numbers beyond 64 bits as Python ints
            raise DataError(f"column {series.name!r} holds whole numbers too large for 64 bits; written with a decimal "
                            f"point (1234.0) they are read as numbers")
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
