"""Property tests: whatever JSON arrives, the answer is a correct prediction or a 4xx."""

import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TUTORIAL_ROW

FEATURES = list(TUTORIAL_ROW)
# Text as JSON may spell it: lone surrogates too, which no UTF-8 can hold (the answers' writer refuses them).
# (Drawn a character at a time: st.text drops them from its alphabet.)
texts = st.lists(st.characters() | st.sampled_from(["\ud800", "\udfff"]), max_size=8).map("".join)
scalars = st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | texts
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5)
    | st.fixed_dictionaries({"calls": st.just([[5.1, 3.5, 1.4, 0.2]]), "userDefinedContext": st.dictionaries(
        st.just("return"), inner)}),
    max_leaves=20,
)
# Often close to a real request, so the checks deep inside are reached too.
near_rows = st.fixed_dictionaries({name: json_values | st.floats(0, 10) for name in FEATURES})
bodies = (
    json_values
    | near_rows
    | st.builds(lambda row, extra: {**row, **extra}, near_rows, st.dictionaries(texts, scalars, min_size=1, max_size=2))
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
