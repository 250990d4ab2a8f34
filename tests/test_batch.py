"""{"instances": [...]}: many rows in one request, each answered exactly as a single row."""

import numpy as np
import pytest

from conftest import TUTORIAL_ROW, field_names

AS_LIST = list(TUTORIAL_ROW.values())


def test_each_prediction_is_the_single_row_answer(client, iris, metadata):
    rows = [dict(zip(field_names(metadata), row)) for row in iris.data[::10].tolist()]
    predictions = client.post("/", json={"instances": rows}).get_json()["predictions"]
    assert predictions == [client.post("/", json=row).get_json() for row in rows]


def test_rows_may_be_objects_or_lists_in_feature_order(client):
    response = client.post("/", json={"instances": [TUTORIAL_ROW, AS_LIST, [6.7, 3.0, 5.2, 2.3]]})
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert predictions[0] == predictions[1]
    assert [p["class_name"] for p in predictions] == ["setosa", "setosa", "virginica"]


def test_ten_thousand_rows_match_the_pipeline(client, pipeline, metadata):
    rng = np.random.default_rng(7)
    X = rng.uniform([4, 2, 1, 0], [8, 4.5, 7, 2.6], size=(10_000, 4))
    response = client.post("/", json={"instances": X.tolist()})
    assert response.status_code == 200
    predictions = response.get_json()["predictions"]
    assert [p["predicted_class"] for p in predictions] == pipeline.predict(X).tolist()
    got = np.array([list(p["probabilities"].values()) for p in predictions])
    assert np.allclose(got, pipeline.predict_proba(X), rtol=0, atol=1e-12)


def test_batch_is_scored_in_one_call(client, monkeypatch):
    import main

    calls = []
    real = main.MODEL.predict
    monkeypatch.setattr(main.MODEL, "predict", lambda rows, where: calls.append(len(rows)) or real(rows, where))
    client.post("/", json={"instances": [AS_LIST] * 50})
    assert calls == [50]


@pytest.mark.parametrize(
    "instances, field, error",
    [
        ([AS_LIST, AS_LIST, AS_LIST, {**TUTORIAL_ROW, "petal_width": "x"}], "instances[3].petal_width",
         "petal_width must be a number, not a string"),
        ([AS_LIST, [5.1, 3.5, None, 0.2]], "instances[1][2]", "petal_length must be a number, not null"),
        ([AS_LIST, [5.1, 3.5, 1.4]], "instances[1]", "a row must hold 4 numbers"),
        ([AS_LIST, "5.1,3.5,1.4,0.2"], "instances[1]", "a row must be an object or an array, not a string"),
        ([{k: v for k, v in TUTORIAL_ROW.items() if k != "sepal_width"}], "instances[0].sepal_width",
         "sepal_width is missing"),
        ([], "instances", "instances is empty"),
        ({"a": AS_LIST}, "instances", "instances must be an array of rows, not an object"),
        (None, "instances", "instances must be an array of rows, not null"),
    ],
)
def test_a_bad_row_fails_the_request_naming_it(client, instances, field, error):
    response = client.post("/", json={"instances": instances})
    assert response.status_code == 400
    body = response.get_json()
    assert body["field"] == field
    assert body["error"].startswith(error)


def test_unknown_key_beside_instances(client):
    response = client.post("/", json={"instances": [AS_LIST], "colour": "blue"})
    assert response.status_code == 400
    assert response.get_json() == {"error": "unknown field 'colour' beside instances", "field": "colour"}


def test_too_many_rows_is_413(client, monkeypatch):
    import main

    monkeypatch.setattr(main, "MAX_INSTANCES", 3)
    response = client.post("/", json={"instances": [AS_LIST] * 4})
    assert response.status_code == 413
    assert response.get_json() == {"error": "instances holds 4 rows; the limit is 3", "field": "instances"}
    assert client.post("/", json={"instances": [AS_LIST] * 3}).status_code == 200
