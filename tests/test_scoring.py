"""A bundle served as data answers as scikit-learn does, or is served through scikit-learn."""

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import train
from bundling import proof
from serving.bundle import load_model
from serving.scorers import compose, linear

from conftest import ROOT, Server, copy_function_code, run_train

# Where a step sums products (a linear model's decision), scikit-learn leaves the order to BLAS.
LINEAR = {"rtol": 1e-12, "atol": 1e-15}


def random_points(X, count, seed):
    rng = np.random.default_rng(seed)
    low, high = X.min(axis=0), X.max(axis=0)
    span = high - low
    return rng.uniform(low - span, high + span, size=(count, X.shape[1]))


def test_the_served_model_is_read_as_data(app):
    import main

    assert main.MODEL.metadata["served_as"] == "data"
    assert isinstance(main.MODEL.predictor, compose.PipelineStep)


def test_iris_rows_and_random_points_get_scikit_learn_s_answers(app, pipeline, iris):
    import main

    X = np.vstack([iris.data, random_points(iris.data, 20_000, seed=1)])
    labels, probabilities = main.MODEL.predict(X.tolist())
    assert labels == pipeline.predict(X).tolist()
    assert np.allclose(probabilities, pipeline.predict_proba(X), **LINEAR)


def test_a_row_gets_the_same_floats_alone_or_in_a_batch_of_any_size(app, iris):
    import main

    rows = random_points(iris.data, 3_000, seed=2).tolist()
    _, together = main.MODEL.predict(rows)
    for i in np.random.default_rng(3).choice(len(rows), 60, replace=False):
        assert main.MODEL.predict([rows[i]])[1] == [together[i]]
        assert main.MODEL.predict(rows[i:i + 7])[1] == together[i:i + 7]


def train_bundle(folder, monkeypatch, make_pipeline=None):
    """train.py's model.pkl and model.json for iris, in `folder`, perhaps from another pipeline."""
    if make_pipeline is not None:
        monkeypatch.setattr(train, "make_pipeline", lambda task, fields: make_pipeline())
    train.train(train.iris_data(), folder)
    return json.loads((folder / "model.json").read_text())


def test_a_pipeline_not_read_as_data_is_served_through_scikit_learn_saying_why(iris, tmp_path, monkeypatch):
    metadata = train_bundle(tmp_path, monkeypatch, lambda: make_pipeline(StandardScaler(), KNeighborsClassifier()))
    assert metadata["served_as"] == "pipeline"
    assert metadata["proof"] == {
        "not_served_as_data": "it asks for sklearn.neighbors._classification.KNeighborsClassifier, which is not read as data"}
    model = load_model(tmp_path)
    fitted = joblib.load(tmp_path / "model.pkl")
    assert model.predictor.__class__ is Pipeline
    labels, probabilities = model.predict(iris.data.tolist())
    assert np.array_equal(probabilities, fitted.predict_proba(iris.data))
    assert labels == fitted.predict(iris.data).tolist()


def test_train_serves_as_data_nothing_whose_numpy_form_disagrees(tmp_path, monkeypatch):
    monkeypatch.setattr(linear.LogisticRegressionStep, "probabilities", lambda self, scores: np.full((len(scores), 3), 1 / 3))
    metadata = train_bundle(tmp_path, monkeypatch)
    assert metadata["served_as"] == "pipeline"
    assert metadata["proof"]["not_served_as_data"].startswith("its numpy form gives other probabilities than scikit-learn on ")


def test_answers_through_the_pipeline_path_match(client, iris, pipeline, monkeypatch):
    import main

    monkeypatch.setattr(main.MODEL, "predictor", pipeline)
    predictions = client.post("/", json={"instances": iris.data.tolist()}).get_json()["predictions"]
    assert [p["predicted_class"] for p in predictions] == pipeline.predict(iris.data).tolist()


@pytest.mark.parametrize("load, labels", [(load_wine, None), (load_breast_cancer, ["benign", "malignant"])],
                         ids=["wine, 3 classes", "breast cancer, text labels"])
def test_other_data_is_served_as_data_with_scikit_learn_s_answers(tmp_path, load, labels):
    X, y = load(return_X_y=True)
    y = y if labels is None else np.asarray(labels)[y]
    fitted = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(max_iter=5000))]).fit(X, y)
    fields = [{"name": f"x{i}", "column": f"x{i}", "type": "number", "nullable": False,
               "range": [float(X[:, i].min()), float(X[:, i].max())]} for i in range(X.shape[1])]
    metadata = {"fields": fields, "input": "array"}
    joblib.dump(fitted, tmp_path / "model.pkl")
    found = proof.prove((tmp_path / "model.pkl").read_bytes(), fitted, metadata, X.tolist())
    assert found == {"rows": len(X) + proof.GENERATED_ROWS, "floats": "within 1e-12 of the largest"}


def test_a_worker_serving_penguins_as_data_has_loaded_no_scikit_learn_scipy_or_pandas(tmp_path):
    """The served process itself, read from /proc: none of the compiled modules of scikit-learn,
    scipy or pandas is mapped into the worker that answers, and in-process none is imported."""
    import palmerpenguins

    palmerpenguins.load_penguins().to_csv(tmp_path / "penguins.csv", index=False)
    assert run_train("--data", tmp_path / "penguins.csv", "--target", "species", "--out", tmp_path).returncode == 0
    copy_function_code(ROOT, tmp_path)
    with Server(tmp_path / "main.py").wait_ready() as server:
        assert requests.post(server.url, json=json.loads((tmp_path / "model.json").read_text())["example"]).status_code == 200
        [worker] = server.workers()
        mapped = Path(f"/proc/{worker}/maps").read_text()
    assert "numpy" in mapped  # what it does load
    assert not [line for line in mapped.splitlines() if any(f"/{name}/" in line for name in ("sklearn", "scipy", "pandas"))]
    script = ("import sys, functions_framework; functions_framework.create_app('predict', 'main.py'); "
              "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'pandas', 'joblib'}))")
    imported = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert imported.stdout.strip().splitlines()[-1] == "[]"  # after main.py's start line
