"""Every rule about what a request may hold, in one place.

Anything wrong raises InputError with an HTTP status (400; 413 or 414 for too much), a message
for people, and `field`: the JSON path of the offending value, where there is one
("petal_width", "instances[3].petal_width", "calls[2][0]"). A request whose body can't be read
within the limits (a path or a body too long, a Content-Length that is not a number, a malformed
chunk) is refused before its body is read in full: RefusedUnread, from read_body.
"""

import json
import math
import sys

import numpy as np

# Far beyond any real measurement, and far enough from float overflow that the model's
# arithmetic on any accepted row stays finite.
MAX_MAGNITUDE = 1e100
# Python refuses to read an integer of more digits than this (a guard against slow conversions).
MAX_INTEGER_DIGITS = 4300
MAX_PATH = 8192  # characters; a longer path gets 414


class InputError(Exception):
    def __init__(self, message, field=None, status=400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


class RefusedUnread(InputError):
    """The request was refused before its body was read in full."""


def read_body(request, max_bytes):
    """A Flask request's body, read through Flask's own limit: never more than `max_bytes` of it
    is held, whatever the method, and with or without a Content-Length. A path over MAX_PATH
    characters, or a body over the limit, is refused unread."""
    if len(request.path) > MAX_PATH:
        raise RefusedUnread(f"the path is {len(request.path)} characters; the limit is {MAX_PATH}", status=414)
    declared = request.headers.get("Content-Length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # werkzeug would read it as 0
            raise RefusedUnread("Content-Length is not a number")
        if int(declared) > max_bytes:
            raise RefusedUnread(f"body is {declared} bytes; the limit is {max_bytes}", status=413)
    # A body without a Content-Length (chunked) is cut at max_content_length, so one byte over
    # the limit shows that there was more.
    request.max_content_length = max_bytes + 1
    try:
        data = request.get_data()
    except Exception:  # the server's own reader refused it: a malformed chunk, or an early end
        raise RefusedUnread("the body could not be read: malformed chunked encoding, or it ended early") from None
    if len(data) > max_bytes:
        raise RefusedUnread(f"body is over the limit of {max_bytes} bytes", status=413)
    return data


def refuse_constant(name):
    raise InputError(f"malformed JSON: {name} is not a JSON number")


def read_integer(text):
    # An integer too long for Python to read is far outside any field's range: read as an
    # infinity, it is refused by its field's own check, which names the field.
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        return -math.inf if text.startswith("-") else math.inf
    return int(text)


# Python 3.11's JSON reader counts a body's nesting against the interpreter's recursion limit, some
# of which gunicorn, Flask and this function have used; 3.12 and later count it against a limit of
# their own. With this one, a body nested up to a thousand deep is read on every runtime (and then
# refused, if it must be, by the check that names its field); deeper is malformed JSON.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 2000))


def parse_json(body):
    """The body (bytes, in any encoding JSON allows) as JSON; NaN and Infinity are refused."""
    if not body.strip():
        raise InputError("empty body; send a JSON object")
    try:
        return json.loads(body, parse_constant=refuse_constant, parse_int=read_integer)
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError("malformed JSON: not valid UTF-8") from None
    except ValueError as err:
        raise InputError(f"malformed JSON: {err}") from None


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


KINDS = {"number": "a number", "integer": "a whole number", "string": "a string", "boolean": "true or false"}


class Field:
    """One input field, as model.json describes it: its type, whether it may be null, and what
    training saw of it (categories, or the range of its numbers)."""

    def __init__(self, spec):
        self.name, self.column, self.type, self.nullable = spec["name"], spec["column"], spec["type"], spec["nullable"]
        self.kind = KINDS[self.type]
        self.range = spec.get("range")
        self.categories = spec.get("categories")
        self.known = set(self.categories) if self.categories is not None else None
        self.ignores_unknown = spec.get("unknown_categories") == "ignore"

    def check(self, value, prefix, key, warnings):
        """The value as the pipeline takes it; an InputError naming path(prefix, key) if it is
        not one this field may hold. What training never saw is answered, with a warning."""
        if value is None and self.nullable:
            return None
        if self.type == "number":
            value = number(value, self.name, prefix, key)
        elif self.type == "integer":
            value = number(value, self.name, prefix, key, kind=self.kind)
            if not value.is_integer():
                raise InputError(f"{self.name} must be a whole number, not {value!r}", path(prefix, key))
            value = int(value)
        elif type(value) is not (str if self.type == "string" else bool):
            raise InputError(f"{self.name} must be {self.kind}, not {kind_of(value)}", path(prefix, key))
        if self.known is not None and value not in self.known:
            quoted = shown(value) if type(value) is str else repr(value)
            if not self.ignores_unknown:
                raise InputError(f"{self.name} must be one of {', '.join(map(str, self.categories))}, not {quoted}",
                                 path(prefix, key))
            warnings.append(f"{self.name} {quoted} is not a value seen in training "
                            f"({', '.join(map(str, self.categories))})")
        elif self.range is not None and not self.range[0] <= value <= self.range[1]:
            side = "above" if value > self.range[1] else "below"
            warnings.append(f"{self.name} {value!r} is {side} the training range {self.range[0]!r} to {self.range[1]!r}")
        return value


class Schema:
    """The model's input: its fields in order, each named in a request by its name or by the
    training column it comes from (what a pandas user's df.to_dict("records") holds)."""

    def __init__(self, fields):
        self.fields = [Field(spec) for spec in fields]
        self.names = [field.name for field in self.fields]
        self.by_key = {**{f.column: f for f in self.fields}, **{f.name: f for f in self.fields}}
        self.numeric = all(field.type in ("number", "integer") for field in self.fields)

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
        array (None as NaN, which the pipeline's imputers fill) for mixed fields, or a pandas
        DataFrame with the training columns for a pipeline that needs one."""
        if kind == "dataframe":
            import pandas as pd  # only a model that needs it imports it: it costs a cold start time and memory

            columns = {}
            for i, field in enumerate(self.fields):
                values = [row[i] for row in rows]
                if field.type in ("number", "integer"):
                    columns[field.column] = pd.array(values, dtype="float64" if None in values or field.type == "number" else "int64")
                else:
                    columns[field.column] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
            return pd.DataFrame(columns)
        values = [[np.nan if v is None else v for v in row] for row in rows]
        return np.array(values, dtype=np.float64 if self.numeric else object).reshape(len(rows), len(self.fields))


def single_row(body, schema):
    if not isinstance(body, dict):
        raise InputError(f"body must be a JSON object with the fields {', '.join(schema.names)}, not {kind_of(body)}")
    return schema.row(body)


def check_count(count, max_rows, field):
    if count > max_rows:
        raise InputError(f"{field} holds {count} rows; the limit is {max_rows}", field, status=413)


def check_beside(body, key, beside):
    """That the body holds nothing beside `key` but the keys `beside`, each an object (the
    parameters Vertex AI and MLflow send, which no model here takes)."""
    unknown = [name for name in body if name != key and name not in beside]
    if unknown:
        raise InputError(f"unknown field {shown(unknown[0])} beside {key}", path("", unknown[0]))
    for name in beside:
        if name in body and not isinstance(body[name], dict):
            raise InputError(f"{name} must be an object, not {kind_of(body[name])}", name)


def batch_rows(body, schema, max_rows, beside=()):
    """{"instances": [row, ...]}: each row an object or an array in field order. Returns the rows'
    values and, per row, its warnings. Keys `beside` may stand beside instances (Vertex AI's parameters)."""
    check_beside(body, "instances", beside)
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InputError(f"instances must be an array of rows, not {kind_of(instances)}", "instances")
    if not instances:
        raise InputError("instances is empty", "instances")
    check_count(len(instances), max_rows, "instances")
    checked = [schema.row(row, f"instances[{i}]") for i, row in enumerate(instances)]
    return [values for values, _ in checked], [warnings for _, warnings in checked]


def bigquery_rows(body, schema, max_rows):
    """BigQuery's {"calls": [[arg, ...], ...]}. Returns the rows to score and, per call, whether
    it is scored: a call with a SQL NULL for a field that may not be null gets a null reply, as
    SQL functions usually do (a NULL for a field the pipeline imputes is imputed)."""
    calls = body["calls"]
    if not isinstance(calls, list):
        raise InputError(f"calls must be an array, not {kind_of(calls)}", "calls")
    check_count(len(calls), max_rows, "calls")
    rows, scored = [], []
    for i, call in enumerate(calls):
        prefix = f"calls[{i}]"
        if not isinstance(call, list):
            raise InputError(f"a call must be an array of arguments, not {kind_of(call)}", prefix)
        is_scored = not (len(call) == len(schema.fields)
                         and any(value is None and not field.nullable for value, field in zip(call, schema.fields)))
        if is_scored:
            rows.append(schema.row(call, prefix)[0])
        scored.append(is_scored)
    return rows, scored


def bigquery_return(body, choices):
    context = body.get("userDefinedContext", {})
    if not isinstance(context, dict):
        raise InputError("userDefinedContext must be an object", "userDefinedContext")
    choice = context.get("return", choices[0])
    if choice not in choices:
        raise InputError(
            f"userDefinedContext.return must be one of {', '.join(choices)}, "
            f"not {shown(choice) if isinstance(choice, str) else kind_of(choice)}",
            "userDefinedContext.return",
        )
    return choice
