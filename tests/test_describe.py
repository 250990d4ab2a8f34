"""GET: what the deployed model is, and how to call it."""

from conftest import field_names


def test_get_describes_the_model(client, metadata):
    response = client.get("/")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    model = response.get_json()["model"]
    assert model["features"] == field_names(metadata)
    assert model["class_names"] == ["setosa", "versicolor", "virginica"]
    assert model["pipeline"] == ["scaler: StandardScaler", "model: LogisticRegression"]
    assert model["model_sha256"] == metadata["model_sha256"]
    assert model["versions"] == metadata["versions"]
    assert model["metrics"] == metadata["metrics"]
    assert model["fields"] == metadata["fields"] and model["classes"] == [0, 1, 2]
    assert not {"training_accuracy", "cv_accuracy", "training_columns"} & model.keys()  # each said once, in metrics or fields
    assert model["trained_at"] == metadata["trained_at"]


def test_a_client_can_build_every_request_from_the_description(client):
    examples = client.get("/").get_json()["requests"]
    single = client.post("/", json=examples["single"]).get_json()
    assert single["class_name"] == "setosa"
    assert client.post("/", json=examples["batch"]).get_json() == {"predictions": [single, single]}
    assert client.post("/", json=examples["bigquery"]).get_json() == {"replies": ["setosa"]}
