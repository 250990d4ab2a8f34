"""Bad input is a 400 (or 413) JSON answer naming the field and the problem; never a 500."""

import pytest

from conftest import TUTORIAL_ROW


def error_of(response, status=400):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/json"
    body = response.get_json()
    assert set(body) == {"error", "field"}
    assert "Traceback" not in body["error"]
    return body


def with_field(name, value):
    return {**TUTORIAL_ROW, name: value}


def without_field(name):
    return {key: value for key, value in TUTORIAL_ROW.items() if key != name}


@pytest.mark.parametrize("field", list(TUTORIAL_ROW))
def test_missing_field_is_named(client, field):
    body = error_of(client.post("/", json=without_field(field)))
    assert body == {"error": f"{field} is missing", "field": field}


def test_unknown_field_is_named(client):
    body = error_of(client.post("/", json={**TUTORIAL_ROW, "colour": "blue"}))
    assert body["field"] == "colour"
    assert "unknown field 'colour'" in body["error"]


def test_unknown_field_that_is_a_lone_surrogate_is_named_too(client):
    # JSON may spell a key no UTF-8 text can hold; the error quoting it must still be written
    data = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2, "\\ud800": 1}'
    body = error_of(client.post("/", data=data, content_type="application/json"))
    assert body["field"] == "\\ud800"  # spelled as JSON spells it: no UTF-8 text holds it
    assert "unknown field '\\ud800'" in body["error"]


@pytest.mark.parametrize(
    "value, kind",
    [("5.1", "a string"), (True, "a boolean"), (None, "null"), ([5.1], "an array"), ({"v": 5.1}, "an object")],
)
def test_values_must_be_json_numbers(client, value, kind):
    body = error_of(client.post("/", json=with_field("petal_width", value)))
    assert body == {"error": f"petal_width must be a number, not {kind}", "field": "petal_width"}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_refused(client, literal):
    data = '{"sepal_length": %s, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}' % literal
    body = error_of(client.post("/", data=data, content_type="application/json"))
    assert literal in body["error"]


@pytest.mark.parametrize("number", ["1e999", "-1e400", "1" + "0" * 400])
def test_numbers_that_overflow_are_refused(client, number):
    data = '{"sepal_length": %s, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}' % number
    body = error_of(client.post("/", data=data, content_type="application/json"))
    assert body == {"error": "sepal_length must be a finite number", "field": "sepal_length"}


@pytest.mark.parametrize("data", ['{"sepal_length": 5.1,', "not json", "{'sepal_length': 5.1}"])
def test_malformed_json(client, data):
    body = error_of(client.post("/", data=data, content_type="application/json"))
    assert body["error"].startswith("malformed JSON")
    assert body["field"] is None


@pytest.mark.parametrize("data", ["[5.1, 3.5, 1.4, 0.2]", "5.1", '"setosa"', "null", "true"])
def test_body_must_be_an_object(client, data):
    body = error_of(client.post("/", data=data, content_type="application/json"))
    assert body["error"].startswith("body must be a JSON object")


def test_empty_body(client):
    body = error_of(client.post("/", data=b"", content_type="application/json"))
    assert body["error"].startswith("empty body")


def test_invalid_utf8(client):
    body = error_of(client.post("/", data=b'{"sepal_length": "\xff\xfe"}', content_type="application/json"))
    assert body["error"] == "malformed JSON: not valid UTF-8"


def test_deeply_nested_json(client):
    body = error_of(client.post("/", data="[" * 100_000, content_type="application/json"))
    assert body["error"].startswith("malformed JSON")


def test_malformed_content_length(client):
    response = client.post("/", data=b"{}", content_type="application/json", environ_overrides={"CONTENT_LENGTH": "many"})
    assert error_of(response) == {"error": "Content-Length is not a number", "field": None}
