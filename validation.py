"""Every rule about what a request may hold, in one place.

Anything wrong raises InputError with an HTTP status (400, or 413 for too much), a message
for people, and `field`: the JSON path of the offending value, where there is one
("petal_width", "instances[3].petal_width", "calls[2][0]").
"""

import json
import math
import sys

# Far beyond any real measurement, and far enough from float overflow that the model's
# arithmetic on any accepted row stays finite.
MAX_MAGNITUDE = 1e100
# Python refuses to read an integer of more digits than this (a guard against slow conversions).
MAX_INTEGER_DIGITS = 4300


class InputError(Exception):
    def __init__(self, message, field=None, status=400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


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


def path(prefix, key):
    """The JSON path of `key` in the object or array at `prefix`. A key is written as the request
    spelled it, but for a lone surrogate (which JSON may spell, and no UTF-8 text can hold)."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    key = key.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{prefix}.{key}" if prefix else key


def number(value, feature, prefix, key):
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
    raise InputError(f"{feature} must be a number, not {kind_of(value)}", path(prefix, key))


def row_values(row, features, prefix=""):
    """One row's values in the model's feature order, from an object keyed by feature or from
    an array in feature order; the first bad value is named."""
    if isinstance(row, dict):
        for feature in features:
            if feature not in row:
                raise InputError(f"{feature} is missing", path(prefix, feature))
        if len(row) != len(features):
            unknown = next(key for key in row if key not in features)
            raise InputError(
                f"unknown field {unknown!r}; the fields are {', '.join(features)}", path(prefix, unknown)
            )
        return [number(row[feature], feature, prefix, feature) for feature in features]
    if isinstance(row, list):
        if len(row) != len(features):
            raise InputError(
                f"a row must hold {len(features)} numbers ({', '.join(features)}), not {len(row)}", prefix
            )
        return [number(value, feature, prefix, i) for i, (value, feature) in enumerate(zip(row, features))]
    raise InputError(f"a row must be an object or an array, not {kind_of(row)}", prefix)


def single_row(body, features):
    if not isinstance(body, dict):
        raise InputError(f"body must be a JSON object with the fields {', '.join(features)}, not {kind_of(body)}")
    return row_values(body, features)


def check_count(count, max_rows, field):
    if count > max_rows:
        raise InputError(f"{field} holds {count} rows; the limit is {max_rows}", field, status=413)


def batch_rows(body, features, max_rows):
    """{"instances": [row, ...]}: each row an object or an array in feature order."""
    unknown = [key for key in body if key != "instances"]
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} beside instances", unknown[0])
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InputError(f"instances must be an array of rows, not {kind_of(instances)}", "instances")
    if not instances:
        raise InputError("instances is empty", "instances")
    check_count(len(instances), max_rows, "instances")
    return [row_values(row, features, f"instances[{i}]") for i, row in enumerate(instances)]


def bigquery_rows(body, features, max_rows):
    """BigQuery's {"calls": [[arg, ...], ...]}. Returns the rows to score and, per call,
    whether it is scored: a call with a SQL NULL among its arguments gets a null reply."""
    calls = body["calls"]
    if not isinstance(calls, list):
        raise InputError(f"calls must be an array, not {kind_of(calls)}", "calls")
    check_count(len(calls), max_rows, "calls")
    rows, scored = [], []
    for i, call in enumerate(calls):
        prefix = f"calls[{i}]"
        if not isinstance(call, list):
            raise InputError(f"a call must be an array of arguments, not {kind_of(call)}", prefix)
        is_scored = not (len(call) == len(features) and None in call)
        if is_scored:
            rows.append(row_values(call, features, prefix))
        scored.append(is_scored)
    return rows, scored


def bigquery_return(body, choices):
    context = body.get("userDefinedContext", {})
    if not isinstance(context, dict):
        raise InputError("userDefinedContext must be an object", "userDefinedContext")
    choice = context.get("return", choices[0])
    if choice not in choices:
        shown = repr(choice) if isinstance(choice, str) else kind_of(choice)
        raise InputError(
            f"userDefinedContext.return must be one of {', '.join(choices)}, not {shown[:100]}",
            "userDefinedContext.return",
        )
    return choice
