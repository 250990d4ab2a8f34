"""Every rule about what a request may hold, in one place.

Anything wrong raises InputError with an HTTP status (400, or 413 for too much),
a message for people, and `field`: the JSON path of the offending value, where
there is one ("petal_width", "instances[3].petal_width", "calls[2][0]").
"""

import itertools
import json
import math
import operator

import numpy as np
import orjson

# Far beyond any real measurement, and far enough from float overflow that the model's
# arithmetic on any accepted row stays finite.
MAX_MAGNITUDE = 1e100


class InputError(Exception):
    def __init__(self, message, field=None, status=400):
        super().__init__(message)
        self.message = message
        self.field = field
        self.status = status


def read_json(request, max_bytes):
    """The body parsed as JSON, whatever its Content-Type (so plain `curl -d` works too)."""
    # Straight from the WSGI input: werkzeug's stream wrapper costs more than the model does,
    # and the server already bounds the input to the request's Content-Length (or chunks).
    environ = request.environ
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        raise InputError("Content-Length is not a number") from None
    # functions-framework reads the whole body again after every request: hand it what is
    # read here (`_cached_data`), so that it neither reads twice nor buffers an oversized body
    # (gunicorn then skips the rest of that in small pieces).
    if length > max_bytes:
        request._cached_data = b""
        raise InputError(f"body is {length} bytes; the limit is {max_bytes}", status=413)
    body = read_at_most(environ["wsgi.input"], length if length >= 0 else max_bytes + 1)
    if len(body) > max_bytes:
        request._cached_data = b""
        raise InputError(f"body is over the limit of {max_bytes} bytes", status=413)
    request._cached_data = body
    if not body.strip():
        raise InputError("empty body; send a JSON object")
    return parse_json(body)


def parse_json(body):
    """The body (bytes) parsed as JSON. orjson parses a request in a fraction of the json
    module's time, and what it reads it reads as json does (but for an integer beyond 64 bits,
    which it gives as the nearest float: what the checks make of any number anyway). It refuses
    a little that json reads: UTF-16 and UTF-32, numbers beyond a float's range (json reads 1e400
    as infinity, which the checks then refuse by field name), lone surrogates. So what orjson
    refuses, the json module rules on: it reads those, and words the error for what is malformed."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return JSON_DECODER.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except InputError:
        raise
    except RecursionError:
        raise InputError("malformed JSON: nested too deeply") from None
    except UnicodeDecodeError:
        raise InputError("malformed JSON: not valid UTF-8") from None
    except ValueError as err:
        raise InputError(f"malformed JSON: {err}") from None


def read_at_most(stream, size):
    """Up to `size` bytes; a read may return less than asked, so read until EOF or enough."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def reject_constant(name):
    raise InputError(f"malformed JSON: {name} is not a JSON number")


# What json.loads(body, parse_constant=reject_constant) does, but with its decoder built once
# rather than on every call (which costs as much as the decoding). Like json.loads's own
# decoder, one is shared by all threads.
JSON_DECODER = json.JSONDecoder(parse_constant=reject_constant)


def kind_of(value):
    if value is None:
        return "null"
    return {bool: "a boolean", str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def number(value, field, feature):
    """A finite float from a JSON number; anything else is an InputError naming `field`."""
    if type(value) not in (int, float):  # bool is an int subclass, and is refused here
        raise InputError(f"{feature} must be a number, not {kind_of(value)}", field)
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise InputError(f"{feature} must be a finite number", field)
    if abs(result) > MAX_MAGNITUDE:
        raise InputError(f"{feature} must be between {-MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}", field)
    return result


def path(prefix, key):
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def row_from_object(obj, features, prefix=""):
    """{"sepal_length": 5.1, ...} -> [5.1, ...] in the model's feature order."""
    for feature in features:
        if feature not in obj:
            raise InputError(f"{feature} is missing", path(prefix, feature))
    if len(obj) != len(features):
        unknown = next(key for key in obj if key not in features)
        raise InputError(
            f"unknown field {unknown!r}; the fields are {', '.join(features)}", path(prefix, unknown)
        )
    return [number(obj[feature], path(prefix, feature), feature) for feature in features]


def row_from_list(values, features, prefix):
    """[5.1, 3.5, 1.4, 0.2] -> the same, checked, in the model's feature order."""
    if len(values) != len(features):
        raise InputError(
            f"a row must hold {len(features)} numbers ({', '.join(features)}), not {len(values)}", prefix
        )
    return [number(value, path(prefix, i), feature) for i, (value, feature) in enumerate(zip(values, features))]


def single_row(body, features):
    if not isinstance(body, dict):
        raise InputError(f"body must be a JSON object with the fields {', '.join(features)}, not {kind_of(body)}")
    return row_from_object(body, features)


def batch_rows(body, features, max_rows):
    """{"instances": [row, ...]}: each row an object or a list in feature order."""
    unknown = [key for key in body if key != "instances"]
    if unknown:
        raise InputError(f"unknown field {unknown[0]!r} beside instances", unknown[0])
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InputError(f"instances must be an array of rows, not {kind_of(instances)}", "instances")
    if not instances:
        raise InputError("instances is empty", "instances")
    check_count(len(instances), max_rows, "instances")
    rows = well_formed_rows(instances, features)
    return rows if rows is not None else rows_value_by_value(instances, features)


def rows_value_by_value(instances, features):
    """The rows checked one value at a time: slower, but it names the first bad value."""
    rows = []
    for i, row in enumerate(instances):
        prefix = f"instances[{i}]"
        if isinstance(row, dict):
            rows.append(row_from_object(row, features, prefix))
        elif isinstance(row, list):
            rows.append(row_from_list(row, features, prefix))
        else:
            raise InputError(f"a row must be an object or an array, not {kind_of(row)}", prefix)
    return np.array(rows)


def well_formed_rows(instances, features):
    """The rows as an array if every row is well formed, checked in bulk (builtins and numpy
    over the whole batch, not a Python check per value); None if anything is off, or if rows
    mix objects and lists, for rows_value_by_value to sort out."""
    kinds = set(map(type, instances))
    if kinds == {dict}:
        # Every row as long as the features and holding each of them: so holding no other.
        if set(map(len, instances)) != {len(features)}:
            return None
        pick = operator.itemgetter(*features) if len(features) > 1 else lambda row: (row[features[0]],)
        try:
            instances = list(map(pick, instances))
        except KeyError:
            return None
    elif kinds != {list} or set(map(len, instances)) != {len(features)}:
        return None
    if not set(map(type, itertools.chain.from_iterable(instances))) <= {int, float}:  # no bool, str, None...
        return None
    try:
        rows = np.array(instances, dtype=np.float64)
    except (OverflowError, ValueError):
        return None
    if not (np.isfinite(rows).all() and np.abs(rows).max() <= MAX_MAGNITUDE):
        return None
    return rows


def bigquery_rows(body, features, max_rows):
    """BigQuery's {"calls": [[arg, ...], ...]}. Returns the rows to score and, per call,
    whether it is scored: a call with a SQL NULL among its arguments gets a null reply."""
    calls = body["calls"]
    if not isinstance(calls, list):
        raise InputError(f"calls must be an array, not {kind_of(calls)}", "calls")
    check_count(len(calls), max_rows, "calls")
    if all(type(call) is list for call in calls):
        checked = well_formed_rows(calls, features)
        if checked is not None:
            return checked, [True] * len(calls)
    rows, scored = [], []
    for i, call in enumerate(calls):
        prefix = f"calls[{i}]"
        if not isinstance(call, list):
            raise InputError(f"a call must be an array of arguments, not {kind_of(call)}", prefix)
        if len(call) == len(features) and None in call:
            scored.append(False)
            continue
        rows.append(row_from_list(call, features, prefix))
        scored.append(True)
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(features)), scored


def bigquery_return(body, choices):
    context = body.get("userDefinedContext", {})
    if not isinstance(context, dict):
        raise InputError("userDefinedContext must be an object", "userDefinedContext")
    choice = context.get("return", choices[0])
    if choice not in choices:
        raise InputError(
            f"userDefinedContext.return must be one of {', '.join(choices)}, not {choice!r}",
            "userDefinedContext.return",
        )
    return choice


def check_count(count, max_rows, field):
    if count > max_rows:
        raise InputError(f"{field} holds {count} rows; the limit is {max_rows}", field, status=413)
