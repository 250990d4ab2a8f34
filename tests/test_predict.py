"""The answer to a good request: the original contract and what was added to it."""

import json
import math

import numpy as np
import pytest

from conftest import TUTORIAL_ROW, field_names, is_compact_json


def test_tutorial_request_gets_json_answer(client):
    response = client.post("/", json=TUTORIAL_ROW)
    assert response.status_code == 200
    assert response.content_type == "application/json"
    answer = response.get_json()
    assert answer["predicted_class"] == 0
    assert answer["class_name"] == "setosa"
    assert list(answer["probabilities"]) == ["setosa", "versicolor", "virginica"]
    assert answer["probabilities"]["setosa"] > 0.95


def test_predicted_class_is_a_json_integer(client):
    raw = client.post("/", json=TUTORIAL_ROW).get_data(as_text=True)
    assert raw.startswith('{"predicted_class":0,')


def test_probabilities_sum_to_one_and_agree_with_the_class(client):
    answer = client.post("/", json={"sepal_length": 6.3, "sepal_width": 2.8,
                                    "petal_length": 5.1, "petal_width": 1.5}).get_json()
    probabilities = list(answer["probabilities"].values())
    assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-12)
    assert probabilities.index(max(probabilities)) == answer["predicted_class"]
    assert answer["class_name"] == list(answer["probabilities"])[answer["predicted_class"]]


def test_every_iris_row_gets_what_the_pipeline_gives(client, iris, pipeline, metadata):
    import main

    expected_classes = pipeline.predict(iris.data)
    expected_probabilities = pipeline.predict_proba(iris.data)
    for row, expected_class, expected_probability in zip(iris.data, expected_classes, expected_probabilities):
        body = dict(zip(field_names(metadata), row.tolist()))
        answer = client.post("/", json=body).get_json()
        assert answer["predicted_class"] == expected_class
        assert answer["class_name"] == metadata["class_names"][expected_class]
        assert np.allclose(list(answer["probabilities"].values()), expected_probability, rtol=0, atol=1e-12)
        # and, read back from the answer's text, the very floats the model computed
        assert list(answer["probabilities"].values()) == main.MODEL.predict([row.tolist()])[1][0]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_body_is_json_whatever_the_content_type(client, content_type):
    body = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
    response = client.post("/", data=body, content_type=content_type)
    assert response.status_code == 200
    assert response.get_json()["predicted_class"] == 0


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_body_may_be_any_unicode_encoding_json_allows(client, encoding):
    body = json.dumps(TUTORIAL_ROW).encode(encoding)
    response = client.post("/", data=body, content_type="application/json")
    assert response.get_data() == client.post("/", json=TUTORIAL_ROW).get_data()


def test_integers_are_numbers_too(client):
    answer = client.post("/", json={"sepal_length": 7, "sepal_width": 3, "petal_length": 6, "petal_width": 2}).get_json()
    assert answer["class_name"] == "virginica"


def test_model_is_loaded_once_not_per_request(client, monkeypatch):
    import joblib

    def fail(*args, **kwargs):
        raise AssertionError("model unpickled during a request")

    monkeypatch.setattr(joblib, "load", fail)
    assert client.post("/", json=TUTORIAL_ROW).status_code == 200


@pytest.mark.parametrize("body", [
    TUTORIAL_ROW,
    {"instances": [TUTORIAL_ROW, [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]},
    {"calls": [[5.1, 3.5, 1.4, 0.2], [None, 3.0, 5.2, 2.3]], "userDefinedContext": {"return": "json"}},
    {"calls": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], "userDefinedContext": {"return": "class_name"}},
    {"calls": [[5.1, 3.5, 1.4, 0.2], [None, 3.0, 5.2, 2.3]], "userDefinedContext": {"return": "predicted_class"}},
], ids=["single", "batch", "bigquery json", "bigquery class_name", "bigquery predicted_class"])
def test_answers_are_compact_json_on_one_line_as_flask_writes_them(client, body):
    response = client.post("/", json=body)
    assert response.status_code == 200
    assert is_compact_json(response.get_data(as_text=True))
