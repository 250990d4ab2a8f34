"""A table's columns described as the bundle's fields: their names, types, gaps, categories and
ranges, as model.json holds them and serving checks a request's values by them."""

import re
from datetime import datetime, timedelta
from pathlib import Path

from serving.fields import DATETIME_UNIT, MOMENT, MOMENT_TYPES, iso, moment_of

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


def column_type(series, dates=True):
    """A pandas column's field type, or a DataError for what a field can't hold. With `dates`, a
    datetime64 column, or one of text that is all ISO 8601 dates (and times), is a date field: a
    "date" if its every time is midnight, else a "datetime"."""
    import pandas as pd

    kinds = pd.api.types
    if dates and (kinds.is_datetime64_any_dtype(series) or kinds.is_string_dtype(series) or kinds.is_object_dtype(series)):
        found = moments(series)
        if found is not None:
            return "date" if all(moment is None or moment == datetime.combine(moment.date(), datetime.min.time())
                                 for moment in found) else "datetime"
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


def moments(series):
    """A column's values as datetimes without a zone (None for a gap), read as serving reads a
    request's: a datetime64 column's, or text's if every value is ISO 8601 (moment_of), each time
    with a UTC offset taken to UTC; else None. Other ways of writing dates (05/01/2024: May or
    January?) stay text: reading them would mean guessing which is the day."""
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series):
        if series.dt.tz is not None:
            series = series.dt.tz_convert(None)
        return [None if pd.isna(moment) else moment.to_pydatetime(warn=False) for moment in series]
    found = []
    for value, gap in zip(series, series.isna()):
        if gap:
            found.append(None)
            continue
        try:
            moment = moment_of(value) if type(value) is str else None
        except (ValueError, OverflowError):  # a day no calendar has: text, then, not dates
            return None
        if moment is None:
            return None
        found.append(moment)
    return found if any(moment is not None for moment in found) else None


def with_utc_offsets(series):
    """How many of a column's texts are times with a UTC offset (Z, +02:00), which are taken to UTC."""
    return sum(1 for value in series if type(value) is str and (match := MOMENT.fullmatch(value)) and match.group(2))


# A text column's empty cell is an empty text, not a gap: to_csv writes "" as an empty cell, which
# read_csv reads back as a gap, and a text vectorizer takes no gap.
EMPTY_TEXT = ""


def python_values(series, kind):
    """A column as the JSON values a request would send: None for a gap (a text's is EMPTY_TEXT)."""
    if kind in MOMENT_TYPES:
        return [None if moment is None else iso(moment, kind) for moment in moments(series)]
    values = series.astype(object).where(series.notna(), None).tolist()
    if kind == "text":  # what a notebook held as text, even where a CSV's reader took it for numbers
        return [EMPTY_TEXT if v is None else str(v) for v in values]
    if kind == "integer":
        return [None if v is None else int(v) for v in values]
    if kind == "number":
        return [None if v is None else float(v) for v in values]
    if kind == "boolean":
        return [None if v is None else bool(v) for v in values]
    return values


def fields_of(data, encoded=None):
    """Each column of `data` ("columns", "types", "values": rows as JSON values) as a field, with
    the categories a fitted encoder knows (`encoded`: {column: values}) or else the sample's (a
    text field has none, and no range: any text is taken). All may be null when the pipeline
    imputes, that is when the table has gaps or categories."""
    encoded = encoded or {}
    fields = []
    for i, (name, column, kind) in enumerate(zip(field_names(data["columns"]), data["columns"], data["types"])):
        seen = [row[i] for row in data["values"] if row[i] is not None]
        field = {"name": name, "column": column, "type": kind, "nullable": False}
        if column in encoded or kind in ("string", "boolean") or (kind == "integer" and len(set(seen)) <= FEW_VALUES):
            field["categories"] = sorted(set(seen) | set(encoded.get(column, ())), key=lambda v: (repr(type(v)), v))
            field["unknown_categories"] = "ignore"
        elif seen and kind != "text":  # a date field's too: ISO 8601 texts written alike sort as their dates do
            field["range"] = [min(seen), max(seen)]
        fields.append(field)
    if any("categories" in field for field in fields) or any(None in row for row in data["values"]):
        for field in fields:
            field["nullable"] = True
    return fields


def fitted_frame(table, columns, types):
    """The sample's `columns` (of field `types`) as the DataFrame a notebook fitted its pipeline on:
    a date field's column as datetime64, as serving builds it (serving/fields.py's Schema.pipeline_input),
    a text field's empty cells as EMPTY_TEXT."""
    import pandas as pd

    frame = table[columns].copy()
    for column, kind in zip(columns, types):
        if kind in MOMENT_TYPES:
            frame[column] = pd.Series(moments(frame[column]), index=frame.index, dtype=DATETIME_UNIT)
        elif kind == "text":
            frame[column] = frame[column].fillna(EMPTY_TEXT)
    return frame


def pandas_parts(values, parts):
    """ISO 8601 texts (None for a gap) as pandas reads them and computes `parts` of them (serving's
    DATE_PARTS are named as pandas' .dt accessors): a float array of a row per value, NaN for a gap.
    train.py checks that serving's parts, from Python's datetime, are these."""
    import numpy as np
    import pandas as pd

    dates = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601")
    return np.column_stack([getattr(dates.dt, part).to_numpy(dtype=np.float64, na_value=np.nan) for part in parts])


def moments_around(field, count, rng):
    """`count` values of a date field as a request may send them: within its training range and as far
    beyond on either side (a span of a day where it saw one date), every one a datetime Python can hold."""
    low, high = (datetime.fromisoformat(value) for value in field.get("range", ["2000-01-01", "2000-12-31"]))
    span = max((high - low).total_seconds(), 86400.0)
    earliest = (datetime(1, 1, 2) - low).total_seconds()  # a day in: a UTC offset can't take it before year 1
    latest = (datetime(9999, 12, 30) - low).total_seconds()
    seconds = rng.uniform(max(-span, earliest), min((high - low).total_seconds() + span, latest), count)
    return [iso(low + timedelta(seconds=round(second)), field["type"]) for second in seconds.tolist()]


def model_name(text):
    """A model's name, as the Open Inference Protocol and a Cloud Function name take it: "Penguins
    (2020).csv" -> "penguins-2020"."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(str(text)).stem.lower()).strip("-")[:40].strip("-")
    return name if name[:1].isalpha() else f"model-{name}".strip("-")
