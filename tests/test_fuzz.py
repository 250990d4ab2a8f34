"""Property tests: whatever JSON arrives, the answer is a correct prediction or a 4xx."""

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TUTORIAL_ROW

FEATURES = list(TUTORIAL_ROW)
scalars = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=5)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
# Often close to a real request, so the checks deep inside are reached too.
near_rows = st.fixed_dictionaries({name: json_values | st.floats(0, 10) for name in FEATURES})
bodies = (
    json_values
    | near_rows
    | st.fixed_dictionaries({"instances": st.lists(near_rows | st.lists(st.floats(0, 10) | scalars, max_size=5), max_size=4)})
    | st.fixed_dictionaries({"calls": st.lists(st.lists(st.floats(0, 10) | scalars, max_size=5), max_size=4)})
)

FUZZ = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def expected_classes(pipeline, rows):
    return pipeline.predict(np.array(rows, dtype=float)).tolist()


def is_number(value):
    return type(value) in (int, float) and math.isfinite(float(value)) and abs(value) <= 1e100


@FUZZ
@given(body=bodies)
def test_any_json_gets_a_right_answer_or_a_4xx(client, pipeline, body):
    response = client.post("/", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400, 413), response.get_data(as_text=True)
    answer = response.get_json()
    if response.status_code != 200:
        assert ("error" in answer and "field" in answer) or "errorMessage" in answer
        return
    if isinstance(body, dict) and "calls" in body:
        scored = [call for call in body["calls"] if None not in call]
        names = [reply for reply in answer["replies"] if reply is not None]
        assert all(is_number(v) for call in scored for v in call)
        classes = ["setosa", "versicolor", "virginica"]
        expected = [classes[c] for c in expected_classes(pipeline, scored)] if scored else []
        assert names == expected
    elif isinstance(body, dict) and "instances" in body:
        rows = [[row[f] for f in FEATURES] if isinstance(row, dict) else row for row in body["instances"]]
        assert all(is_number(v) for row in rows for v in row)
        assert [p["predicted_class"] for p in answer["predictions"]] == expected_classes(pipeline, rows)
    else:
        row = [body[f] for f in FEATURES]
        assert all(is_number(v) for v in row)
        assert answer["predicted_class"] == expected_classes(pipeline, [row])[0]


@FUZZ
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_json_answer_never_a_5xx(client, raw):
    response = client.post("/", data=raw, content_type="application/json")
    assert response.status_code in (200, 400)
    assert response.is_json


def refuse_constant(name):
    raise ValueError(name)


def same_json(parsed, expected):
    """Same types, values and key order, but for an integer beyond 64 bits, which may come
    back as the float nearest it (which is what the checks make of it anyway)."""
    if type(expected) is dict:
        return type(parsed) is dict and list(parsed) == list(expected) and all(
            same_json(parsed[key], expected[key]) for key in expected
        )
    if type(expected) is list:
        return type(parsed) is list and len(parsed) == len(expected) and all(map(same_json, parsed, expected))
    if type(expected) is int and abs(expected) >= 2**63 and type(parsed) is float:
        return parsed == float(expected)
    if type(expected) is float:  # bit for bit: -0.0 is not 0.0
        return type(parsed) is float and parsed.hex() == expected.hex()
    return type(parsed) is type(expected) and parsed == expected


json_numbers = st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,30})?([eE][+-]?[0-9]{1,3})?", fullmatch=True)
json_texts = (
    st.builds(lambda value, ascii: json.dumps(value, ensure_ascii=ascii), json_values, st.booleans())
    | st.lists(json_numbers, max_size=5).map(lambda numbers: "[" + ", ".join(numbers) + "]")
).map(str.encode)
spliced = st.builds(lambda text, at, junk: text[:at] + junk + text[at:], json_texts, st.integers(0, 40), st.binary(min_size=1, max_size=3))


@FUZZ
@given(body=json_texts | spliced | st.binary(max_size=100))
def test_bodies_are_read_as_the_json_module_reads_them(body):
    """orjson reads the body, and json what orjson refuses: together, they must read exactly
    what json alone reads (NaN and Infinity refused), and refuse what it refuses."""
    from validation import InputError, parse_json

    try:
        expected = json.loads(body, parse_constant=refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        with pytest.raises(InputError):
            parse_json(body)
        return
    assert same_json(parse_json(body), expected)


@FUZZ
@given(value=st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**63), 2**64 - 1))
def test_answers_numbers_read_back_as_the_very_same_numbers(value):
    """orjson writes an answer's numbers; the json module (and so any caller) reads back the
    same float, bit for bit, and the same integer."""
    import main

    text, status, headers = main.reply({"value": value})
    back = json.loads(text)["value"]
    assert type(back) is type(value) and back == value
    assert math.copysign(1, back) == math.copysign(1, value)  # -0.0 stays -0.0


def test_orjson_reads_a_request_without_the_json_module(monkeypatch):
    import validation

    class Refuse:
        def decode(self, text):
            raise AssertionError("the json module was asked to read a plain request")

    monkeypatch.setattr(validation, "JSON_DECODER", Refuse())
    body = json.dumps({"instances": [TUTORIAL_ROW, list(TUTORIAL_ROW.values())]}).encode()
    assert validation.parse_json(body) == json.loads(body)


def rows_for(features):
    """Rows shaped for `features` (objects or lists) with, now and then, a wrong value or shape."""
    value = st.floats(0, 10) | st.integers(-5, 5) | scalars
    as_object = st.fixed_dictionaries({name: value for name in features})
    as_list = st.lists(value, min_size=len(features), max_size=len(features))
    misshapen = st.dictionaries(st.sampled_from(features + ["other"]), value, max_size=len(features) + 1) | st.lists(value, max_size=5)
    return as_object | as_list | misshapen


@FUZZ
@given(data=st.data(), features=st.sampled_from([FEATURES, ["only"]]))
def test_bulk_row_check_accepts_only_what_the_value_by_value_check_accepts(data, features):
    from validation import InputError, rows_value_by_value, well_formed_rows

    instances = data.draw(st.lists(rows_for(features), min_size=1, max_size=4))
    bulk = well_formed_rows(instances, features)
    try:
        one_by_one = rows_value_by_value(instances, features)
    except InputError:
        assert bulk is None
        return
    if bulk is not None:
        assert bulk.dtype == np.float64 and bulk.shape == (len(instances), len(features))
        assert np.array_equal(bulk, one_by_one)
