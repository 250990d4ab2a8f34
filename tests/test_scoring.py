"""The fast scorer agrees with scikit-learn's own predict_proba, or is not used."""

import io
import json

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

import train
from bundling import writer
from serving import affine_softmax as linear
from serving import safe_pickle
from serving.affine_softmax import affine_softmax
from serving.bundle import load_model


def random_points(X, count, seed):
    rng = np.random.default_rng(seed)
    low, high = X.min(axis=0), X.max(axis=0)
    span = high - low
    return rng.uniform(low - span, high + span, size=(count, X.shape[1]))


def assert_agrees(scorer, pipeline, X):
    fast, exact = scorer.predict_proba(X), pipeline.predict_proba(X)
    assert np.allclose(fast, exact, rtol=0, atol=1e-12)
    assert np.array_equal(pipeline.classes_[fast.argmax(axis=1)], pipeline.predict(X))


def test_served_model_uses_the_fast_scorer(app):
    import main

    assert main.MODEL.scorer is not None


def test_fast_scorer_on_the_iris_rows_and_random_points(pipeline, iris):
    scorer = affine_softmax(pipeline)
    assert_agrees(scorer, pipeline, iris.data)
    assert_agrees(scorer, pipeline, random_points(iris.data, 20_000, seed=1))


def test_a_row_scores_the_same_alone_or_in_a_batch(pipeline, iris):
    scorer = affine_softmax(pipeline)
    together = scorer.predict_proba(iris.data)
    for i, row in enumerate(iris.data):
        assert np.array_equal(scorer.predict_proba(row[np.newaxis, :]), together[i:i + 1])


@pytest.mark.parametrize("features, classes", [(13, 3), (30, 2), (64, 40)])
def test_a_row_scores_the_same_alone_or_in_a_batch_of_any_width_and_size(features, classes):
    """Bit for bit, for wide models too, and across the blocks a large batch is scored in."""
    rng = np.random.default_rng(features)
    scorer = linear.AffineSoftmax(rng.normal(size=(features, classes)) * 3, rng.normal(size=classes), list(range(classes)))
    rows = rng.normal(size=(2 * 2**20 // (features * classes) + 7, features)) * 10 ** rng.uniform(-2, 2, size=features)
    together = scorer.predict_proba(rows)
    for i in rng.choice(len(rows), 60, replace=False):
        assert np.array_equal(scorer.predict_proba(rows[i:i + 1]), together[i:i + 1])
    assert np.allclose(together.sum(axis=1), 1, rtol=0, atol=1e-12)


@pytest.mark.parametrize("load", [load_wine, load_breast_cancer], ids=["wine, 3 classes", "breast cancer, binary"])
def test_fast_scorer_on_other_data(load):
    X, y = load(return_X_y=True)
    pipeline = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    assert_agrees(affine_softmax(pipeline), pipeline, np.vstack([X, random_points(X, 5_000, seed=2)]))


def train_bundle(folder, monkeypatch, make_pipeline=None):
    """train.py's model.pkl and model.json for iris, in `folder`, perhaps from another pipeline."""
    if make_pipeline is not None:
        monkeypatch.setattr(train, "make_pipeline", lambda task, fields: make_pipeline())
    train.train(train.iris_data(), folder)
    return json.loads((folder / "model.json").read_text())


def test_unrecognised_pipeline_falls_back_to_predict_proba(iris, tmp_path, monkeypatch):
    metadata = train_bundle(
        tmp_path, monkeypatch, lambda: Pipeline([("scaler", MinMaxScaler()), ("model", LogisticRegression())])
    )
    assert metadata["served_as"] == "pipeline"
    model = load_model(tmp_path)
    assert model.scorer is None
    pipeline = joblib.load(tmp_path / "model.pkl")
    labels, probabilities = model.predict(iris.data.tolist())
    assert np.array_equal(probabilities, pipeline.predict_proba(iris.data))
    assert labels == pipeline.predict(iris.data).tolist()


def test_train_writes_no_scorer_that_disagrees(tmp_path, monkeypatch):
    monkeypatch.setattr(linear.AffineSoftmax, "predict_proba", lambda self, rows: np.full((len(rows), 3), 1 / 3))
    assert train_bundle(tmp_path, monkeypatch)["served_as"] == "pipeline"
    assert load_model(tmp_path).scorer is None


def test_answers_through_the_pipeline_path_match(client, iris, pipeline, monkeypatch):
    import main

    monkeypatch.setattr(main.MODEL, "scorer", None)
    monkeypatch.setattr(main.MODEL, "pipeline", pipeline)
    predictions = client.post("/", json={"instances": iris.data.tolist()}).get_json()["predictions"]
    assert [p["predicted_class"] for p in predictions] == pipeline.predict(iris.data).tolist()


def fitted(load, scaler=None, model=None, as_frame=False, labels=None):
    data = load(as_frame=as_frame)
    y = data.target if labels is None else np.asarray(labels)[data.target]
    return Pipeline([("scaler", scaler or StandardScaler()), ("model", model or LogisticRegression(max_iter=5000))]).fit(data.data, y)


@pytest.mark.parametrize("pipeline", [
    lambda: fitted(load_iris),
    lambda: fitted(load_breast_cancer),
    lambda: fitted(load_wine, StandardScaler(with_mean=False)),
    lambda: fitted(load_wine, StandardScaler(with_std=False)),
    lambda: fitted(load_iris, StandardScaler(with_mean=False, with_std=False)),
    lambda: fitted(load_wine, model=LogisticRegression(fit_intercept=False, max_iter=5000)),
    lambda: fitted(load_iris, model=LogisticRegression(C=0.05), as_frame=True),
    lambda: fitted(load_breast_cancer, labels=["benign", "malignant"]),
], ids=["iris", "binary", "with_mean=False", "with_std=False", "neither", "no intercept", "notebook's DataFrame",
        "text labels"])
@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_numbers_read_without_scikit_learn_are_scikit_learn_s(pipeline):
    """What a serving instance computes from model.pkl's StandIns is the very scorer computed from
    scikit-learn's own objects, and that scorer gives the pipeline's answers."""
    pipeline = pipeline()
    scorer = affine_softmax(pipeline)
    content = pickle_bytes(pipeline)
    stand_ins = safe_pickle.read_parameters(content, (linear.PIPELINE, linear.SCALER, linear.CLASSIFIER))
    assert isinstance(stand_ins.steps[1][1], safe_pickle.StandIn)
    from_stand_ins = affine_softmax(stand_ins)
    assert np.array_equal(from_stand_ins.weights, scorer.weights) and np.array_equal(from_stand_ins.bias, scorer.bias)
    X = np.asarray(pipeline.steps[0][1].mean_ if pipeline.steps[0][1].mean_ is not None else np.zeros(pipeline.n_features_in_))
    assert_agrees(scorer, pipeline, X + np.random.default_rng(3).normal(scale=5.0, size=(2_000, X.shape[0])))
    assert writer.agrees(scorer, pipeline)


def pickle_bytes(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    return buffer.getvalue()
