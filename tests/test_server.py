"""The real functions-framework server, called over HTTP exactly as the README shows."""

import requests

from conftest import TUTORIAL_ROW


def test_tutorial_call_over_http(server):
    response = requests.post(
        url=server.url,
        json={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    answer = response.json()
    assert answer["predicted_class"] == 0
    assert answer["class_name"] == "setosa"


def test_bad_input_over_http_is_a_400_with_json(server):
    response = requests.post(server.url, json={**TUTORIAL_ROW, "sepal_width": "wide"})
    assert response.status_code == 400
    assert response.json() == {"error": "sepal_width must be a number, not a string", "field": "sepal_width"}


def test_plain_curl_style_body(server):
    response = requests.post(server.url, data='{"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}',
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.json()["class_name"] == "virginica"
