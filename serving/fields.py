"""What a request's values may be: the fields of model.json, each value checked by its field.

Anything wrong raises InputError with an HTTP status (400; 413 or 414 for too much), a message
for people, and `field`: the JSON path of the offending value, where there is one
("petal_width", "instances[3].petal_width", "calls[2][0]").
"""

import math
import re
from datetime import UTC, datetime

import numpy as np

# Far beyond any real measurement, and far enough from float overflow that the model's
# arithmetic on any accepted row stays finite.
MAX_MAGNITUDE = 1e100


class InputError(Exception):
    def __init__(self, message, field=None, status=400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def kind_of(value):
    """How an error names a value it refuses: by its JSON kind, never by quoting it."""
    if value is None:
        return "null"
    kinds = {bool: "a boolean", str: "a string", list: "an array", dict: "an object", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def writable(text):
    """Text as an answer can hold it: a lone surrogate (which JSON may spell, and no UTF-8 text
    can hold) written as JSON spells it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def path(prefix, key):
    """The JSON path of `key` in the object or array at `prefix`, the key as the request spelled it."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    key = writable(key)
    return f"{prefix}.{key}" if prefix else key


def number(value, feature, prefix, key, kind="a number"):
    """A finite float from a JSON number, within MAX_MAGNITUDE; else an InputError naming the
    field at `path(prefix, key)`."""
    if type(value) is float or type(value) is int:  # bool is an int subclass, and is refused here
        if -MAX_MAGNITUDE <= value <= MAX_MAGNITUDE:  # false for NaN and the infinities too
            return float(value)
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            raise InputError(f"{feature} must be a finite number", path(prefix, key))
        raise InputError(f"{feature} must be between {-MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}", path(prefix, key))
    raise InputError(f"{feature} must be {kind}, not {kind_of(value)}", path(prefix, key))


def shown(text):
    """A request's text as an error or a warning quotes it: short, and always writable."""
    return repr(text if len(text) <= 60 else text[:60] + "...")


KINDS = {"number": "a number", "integer": "a whole number", "string": "a string", "text": "text (a string)", "boolean": "true or false",
         "date": "an ISO 8601 date, as 2024-05-01", "datetime": "an ISO 8601 date and time, as 2024-05-01T13:45:00"}

# A date, or a date and time, is sent as text in ISO 8601's extended form, as JSON encoders, JavaScript's
# toISOString, BigQuery and pandas write it: 2024-05-01, 2024-05-01T13:45, 2024-05-01 13:45:00.5+02:00.
# ISO's other forms (20240501, 2024-W18-3) are refused: a caller sending them rarely means a date.
MOMENT_TYPES = ("date", "datetime")
MOMENT = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})"
                    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?)?", re.IGNORECASE)
# The numbers a date field with "parts" (train.py's) gives the pipeline, each from Python's datetime;
# train.py proves pandas' .dt accessors give the same for every training row (day_of_week: Monday is 0).
DATE_PARTS = {
    "year": lambda moment: moment.year,
    "month": lambda moment: moment.month,
    "day": lambda moment: moment.day,
    "day_of_week": lambda moment: moment.weekday(),
    "day_of_year": lambda moment: moment.timetuple().tm_yday,
    "hour": lambda moment: moment.hour,
    "minute": lambda moment: moment.minute,
}
# A date field's column in the DataFrame a pipeline gets: the unit pandas (since 3.0) gives dates it
# reads from text or from Python's datetimes, and Python's own resolution, so any valid request fits.
DATETIME_UNIT = "datetime64[us]"


def moment_of(text, kind="datetime"):
    """ISO 8601 text as a datetime without a zone, or None if it isn't written as a date (for a
    "date") or a date and time; ValueError or OverflowError for a day no calendar has. A time with a
    UTC offset is taken to UTC: a model's times have no zone, and UTC is what offsets are relative to."""
    match = MOMENT.fullmatch(text)
    if match is None or (kind == "date" and match.end(1) != len(text)):
        return None
    moment = datetime.fromisoformat(text.upper())  # fromisoformat reads "T" and "Z" only in upper case
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def iso(moment, kind):
    """A datetime as a date field's value is written: 2024-05-01 for a date, 2024-05-01T13:45:00 else."""
    return moment.date().isoformat() if kind == "date" else moment.isoformat()


# A warning or an error lists the values training saw only when they are a handful and their list is
# short (penguins' islands); else it counts them. Anything longer would make every answer about an
# unseen value repeat the training data, and a column of IDs or names would be published row by row.
LISTED_IN_AN_ANSWER = 10
LISTING_LENGTH = 120


def listing(categories):
    """The values training saw as a warning or an error may list them ("Biscoe, Dream, Torgersen"),
    or None where they are too many or too long to."""
    listed = ", ".join(map(str, categories))
    return listed if len(categories) <= LISTED_IN_AN_ANSWER and len(listed) <= LISTING_LENGTH else None


class Field:
    """One input field, as model.json describes it: its type, whether it may be null, and what
    training saw of it (categories, or the range of its numbers)."""

    def __init__(self, spec):
        self.name, self.column, self.type, self.nullable = spec["name"], spec["column"], spec["type"], spec["nullable"]
        self.kind = KINDS[self.type]
        self.range = spec.get("range")
        self.categories = spec.get("categories")
        self.known = set(self.categories) if self.categories is not None else None
        self.listing = listing(self.categories) if self.categories is not None else None
        self.ignores_unknown = spec.get("unknown_categories") == "ignore"
        self.parts = spec.get("parts")  # a date given to the pipeline as these numbers (DATE_PARTS)
        self.width = len(self.parts) if self.parts else 1  # the pipeline's columns for this field
        self.bounds = [moment_of(value) for value in self.range] if self.type in MOMENT_TYPES and self.range else None

    def check(self, value, prefix, key, warnings):
        """The value as the pipeline takes it; an InputError naming path(prefix, key) if it is
        not one this field may hold. What training never saw is answered, with a warning."""
        if value is None and self.nullable:
            return None
        if self.type in MOMENT_TYPES:
            return self.check_moment(value, prefix, key, warnings)
        if self.type == "number":
            value = number(value, self.name, prefix, key)
        elif self.type == "integer":
            value = number(value, self.name, prefix, key, kind=self.kind)
            if not value.is_integer():
                raise InputError(f"{self.name} must be a whole number, not {value!r}", path(prefix, key))
            value = int(value)
        elif type(value) is not (bool if self.type == "boolean" else str):  # a string's, or free text's
            raise InputError(f"{self.name} must be {self.kind}, not {kind_of(value)}", path(prefix, key))
        if self.known is not None and value not in self.known:
            quoted = shown(value) if type(value) is str else repr(value)
            counted = f"the model was trained on {len(self.categories)} distinct values"
            if not self.ignores_unknown:
                allowed = f"one of {self.listing}" if self.listing else f"a value seen in training ({counted})"
                raise InputError(f"{self.name} must be {allowed}, not {quoted}", path(prefix, key))
            warnings.append(f"{self.name} {quoted} is not a value seen in training ({self.listing or counted})")
        elif self.range is not None and not self.range[0] <= value <= self.range[1]:
            side = "above" if value > self.range[1] else "below"
            warnings.append(f"{self.name} {value!r} is {side} the training range {self.range[0]!r} to {self.range[1]!r}")
        return value

    def check_moment(self, value, prefix, key, warnings):
        """A date field's value as the pipeline takes it: the ISO 8601 text of a date, or a date and
        time without a zone (a date sent to a datetime field is its midnight)."""
        if type(value) is not str:
            raise InputError(f"{self.name} must be {self.kind}, not {kind_of(value)}", path(prefix, key))
        try:
            moment = moment_of(value, self.type)
        except (ValueError, OverflowError) as err:  # a day no calendar has: 2023-02-29, 24:00, before year 1 in UTC
            what = "date" if self.type == "date" else "date and time"
            raise InputError(f"{self.name} {shown(value)} is not a real {what} ({err})", path(prefix, key)) from None
        if moment is None:
            raise InputError(f"{self.name} must be {self.kind}, not {shown(value)}", path(prefix, key))
        value = iso(moment, self.type)
        if self.bounds is not None and not self.bounds[0] <= moment <= self.bounds[1]:
            side = "above" if moment > self.bounds[1] else "below"
            warnings.append(f"{self.name} {value} is {side} the training range {self.range[0]} to {self.range[1]}")
        return value

    def pipeline_columns(self, value):
        """A checked value as the pipeline's columns for this field: a date with parts as those
        numbers (None, a gap, in each), anything else as itself."""
        if not self.parts:
            return (value,)
        if value is None:
            return (None,) * len(self.parts)
        moment = datetime.fromisoformat(value)  # checked: written by iso()
        return tuple(DATE_PARTS[part](moment) for part in self.parts)


class Schema:
    """The model's input: its fields in order, each named in a request by its name or by the
    training column it comes from (what a pandas user's df.to_dict("records") holds)."""

    def __init__(self, fields):
        self.fields = [Field(spec) for spec in fields]
        self.names = [field.name for field in self.fields]
        self.by_key = {**{f.column: f for f in self.fields}, **{f.name: f for f in self.fields}}
        self.numeric = all(field.type in ("number", "integer") for field in self.fields)  # a request's every value a number
        self.width = sum(field.width for field in self.fields)  # the pipeline's columns
        self.expands = any(field.parts for field in self.fields)
        # Whether the pipeline's every column is a number (a date's parts are): then it gets a float array.
        self.takes_numbers = all(field.type in ("number", "integer") or field.parts for field in self.fields)

    def row(self, row, prefix=""):
        """One row's values in field order, and the warnings about them, from an object keyed by
        field (or column) or from an array in field order; the first bad value is named."""
        warnings = []
        if isinstance(row, dict):
            values = []
            for field in self.fields:
                key = field.name if field.name in row else field.column
                if key not in row:
                    raise InputError(f"{field.name} is missing", path(prefix, field.name))
                if key == field.name and field.column != field.name and field.column in row:
                    raise InputError(f"{field.name} is given twice, as {field.name!r} and {field.column!r}",
                                     path(prefix, field.name))
                values.append(field.check(row[key], prefix, key, warnings))
            if len(row) != len(self.fields):
                unknown = next(key for key in row if key not in self.by_key)
                raise InputError(f"unknown field {shown(unknown)}; the fields are {', '.join(self.names)}",
                                 path(prefix, unknown))
            return values, warnings
        if isinstance(row, list):
            if len(row) != len(self.fields):
                raise InputError(f"a row must hold {len(self.fields)} {'numbers' if self.numeric else 'values'} "
                                 f"({', '.join(self.names)}), not {len(row)}", prefix)
            return [field.check(value, prefix, i, warnings) for i, (value, field) in enumerate(zip(row, self.fields))], warnings
        raise InputError(f"a row must be an object or an array, not {kind_of(row)}", prefix)

    def pipeline_input(self, rows, kind):
        """Checked rows as the pipeline was fitted on them: a float array for numbers, an object
        array (None as NaN, which the pipeline's imputers fill) for mixed fields, a pandas
        DataFrame with the training columns for a pipeline that needs one, or for a pipeline
        fitted on one column of text (make_pipeline(TfidfVectorizer(), ...) on a Series), its
        "documents": a 1-D array of them. A date with parts (train.py's) is those numbers,
        computed here with Python's datetime."""
        if kind == "documents":
            return np.array([np.nan if row[0] is None else row[0] for row in rows], dtype=object)
        if kind == "dataframe":
            import pandas as pd  # only a model that needs it imports it: it costs a cold start time and memory

            columns = {}
            for i, field in enumerate(self.fields):
                values = [row[i] for row in rows]
                if field.type in ("number", "integer"):
                    columns[field.column] = pd.array(values, dtype="float64" if None in values or field.type == "number" else "int64")
                elif field.type in MOMENT_TYPES:
                    moments = [None if v is None else datetime.fromisoformat(v) for v in values]
                    columns[field.column] = pd.Series(moments, dtype=DATETIME_UNIT)
                else:
                    columns[field.column] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
            return pd.DataFrame(columns)
        if self.expands:
            rows = [[part for field, value in zip(self.fields, row) for part in field.pipeline_columns(value)] for row in rows]
        values = [[np.nan if v is None else v for v in row] for row in rows]
        return np.array(values, dtype=np.float64 if self.takes_numbers else object).reshape(len(rows), self.width)
