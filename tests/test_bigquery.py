"""BigQuery remote functions: {"calls": [...]} -> {"replies": [...]}."""

import pytest

from conftest import TUTORIAL_ROW

AS_LIST = list(TUTORIAL_ROW.values())
VIRGINICA = [6.7, 3.0, 5.2, 2.3]


def bigquery_request(calls, context=None):
    """Shaped as BigQuery sends it."""
    return {
        "requestId": "124ab1c",
        "caller": "//bigquery.googleapis.com/projects/myproject/jobs/myproject:US.bquxjob_5b4c112c_17961fafeaf",
        "sessionUser": "test-user@test-company.com",
        "userDefinedContext": context if context is not None else {"return": "class_name"},
        "calls": calls,
    }


def test_class_names_by_default(client):
    body = bigquery_request([AS_LIST, VIRGINICA])
    del body["userDefinedContext"]
    response = client.post("/", json=body)
    assert response.status_code == 200
    assert response.get_json() == {"replies": ["setosa", "virginica"]}


@pytest.mark.parametrize("returning, expected", [("class_name", ["setosa", "virginica"]), ("predicted_class", [0, 2])])
def test_return_chosen_by_user_defined_context(client, returning, expected):
    response = client.post("/", json=bigquery_request([AS_LIST, VIRGINICA], {"return": returning}))
    assert response.get_json() == {"replies": expected}


def test_json_return_is_the_full_answer(client):
    replies = client.post("/", json=bigquery_request([AS_LIST], {"return": "json"})).get_json()["replies"]
    assert replies == [client.post("/", json=TUTORIAL_ROW).get_json()]


def test_sql_null_in_gives_null_out(client):
    calls = [AS_LIST, [None, 3.0, 5.2, 2.3], VIRGINICA, [None, None, None, None]]
    response = client.post("/", json=bigquery_request(calls))
    assert response.status_code == 200
    assert response.get_json() == {"replies": ["setosa", None, "virginica", None]}


def test_every_call_null(client):
    response = client.post("/", json=bigquery_request([[None] * 4]))
    assert response.get_json() == {"replies": [None]}


def test_replies_match_the_pipeline_in_order(client, iris, pipeline):
    response = client.post("/", json=bigquery_request(iris.data.tolist(), {"return": "predicted_class"}))
    assert response.get_json()["replies"] == pipeline.predict(iris.data).tolist()


@pytest.mark.parametrize(
    "calls, message",
    [
        ([AS_LIST, AS_LIST, [5.1, "wide", 1.4, 0.2]], "calls[2][1]: sepal_width must be a number, not a string"),
        ([AS_LIST, [5.1, 3.5]], "calls[1]: a row must hold 4 numbers"),
        ([AS_LIST, {"sepal_length": 5.1}], "calls[1]: a call must be an array of arguments, not an object"),
        ("calls", "calls must be an array, not a string"),  # its path said once
    ],
)
def test_bad_input_is_a_400_naming_the_call(client, calls, message):
    response = client.post("/", json=bigquery_request(calls))
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) == {"errorMessage"}
    assert body["errorMessage"].startswith(message)
    assert len(body["errorMessage"].encode()) < 1024


def test_unknown_return_choice(client):
    response = client.post("/", json=bigquery_request([AS_LIST], {"return": "colour"}))
    assert response.status_code == 400
    assert response.get_json()["errorMessage"].startswith("userDefinedContext.return must be one of")


def test_too_many_calls_is_413_not_a_retried_5xx(client, monkeypatch):
    import main

    monkeypatch.setattr(main, "MAX_INSTANCES", 2)
    response = client.post("/", json=bigquery_request([AS_LIST] * 3))
    assert response.status_code == 413
    assert "errorMessage" in response.get_json()
