"""The linear scorers (serving/scorers/linear.py) against scikit-learn's own predictions.

Decision functions are compared within 1e-12 (scikit-learn sums with BLAS, in an order of its
own), labels exactly wherever the decision isn't within that of a tie, and a row alone must score
the same floats as in a batch.
"""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
    SGDRegressor,
)
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC, LinearSVR

from serving.records import Record, RecordError
from serving.scorers import build
from serving.scorers.linear import dot_rows

from conftest import as_record, served

RELATIVE, ABSOLUTE = 1e-12, 1e-12
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)


def fit(estimator, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings: the fitted model is what matters here
        return estimator.fit(X, y)


@st.composite
def tables(draw, min_rows=12):
    """A training table and rows beyond its range (up to 1000 times wider), float64."""
    n_rows = draw(st.integers(min_rows, 40))
    n_features = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-3, 4, size=n_features)
    X = rng.normal(size=(n_rows, n_features)) * scale
    beyond = rng.normal(size=(25, n_features)) * scale * 10.0 ** rng.integers(0, 4, size=(25, 1))
    return X, beyond, rng


def labels_for(X, rng, n_classes, kind):
    weights = rng.normal(size=X.shape[1]) / (np.abs(X).max(axis=0) + 1e-300)
    score = X @ weights + rng.normal(scale=0.3, size=X.shape[0])
    bins = np.quantile(score, np.linspace(0, 1, n_classes + 1)[1:-1])
    codes = np.digitize(score, bins)
    names = {"int": np.arange(n_classes) * 3 - 2, "str": np.array([f"class {i}" for i in range(n_classes)],
                                                                  dtype=object)}[kind]
    return names[codes]


def assert_same_decisions(ours, theirs):
    assert ours.shape == theirs.shape
    assert np.allclose(ours, theirs, rtol=RELATIVE, atol=ABSOLUTE * max(1.0, np.abs(theirs).max()))


def assert_same_labels(step, estimator, X):
    """Identical labels on every row whose decision is not within rounding of a tie."""
    decision = estimator.decision_function(X)
    tolerance = 1e-9 * max(1.0, np.abs(decision).max())
    if decision.ndim == 1:
        clear = np.abs(decision) > tolerance
    else:
        top_two = np.sort(decision, axis=1)[:, -2:]
        clear = top_two[:, 1] - top_two[:, 0] > tolerance
    assert np.array_equal(step.predict(X)[clear], estimator.predict(X)[clear])


def assert_row_alone_matches_batch(method, X):
    batch = method(X)
    for row in range(0, X.shape[0], 7):
        assert np.array_equal(method(X[row:row + 1])[0], batch[row])


CLASSIFIERS = [
    lambda: LogisticRegression(),
    lambda: LogisticRegression(C=0.05, fit_intercept=False),
    lambda: LogisticRegression(solver="liblinear"),
    lambda: LogisticRegression(solver="newton-cg", C=100.0),
    lambda: SGDClassifier(loss="log_loss", random_state=0),
    lambda: SGDClassifier(loss="modified_huber", random_state=0),
    lambda: SGDClassifier(loss="hinge", random_state=0, fit_intercept=False),
    lambda: LinearSVC(),
    lambda: LinearSVC(multi_class="crammer_singer", C=0.5),
]


@SETTINGS
@given(tables(), st.sampled_from(range(len(CLASSIFIERS))), st.sampled_from([2, 3, 4]), st.sampled_from(["int", "str"]))
def test_classifiers_match_sklearn(table, which, n_classes, label_kind):
    X, beyond, rng = table
    y = labels_for(X, rng, n_classes, label_kind)
    if len(set(y.tolist())) < 2:
        return
    estimator = CLASSIFIERS[which]()
    if isinstance(estimator, LogisticRegression) and estimator.solver == "liblinear" and len(set(y.tolist())) > 2:
        return  # liblinear fits binary problems only
    fit(estimator, X, y)
    step = served(estimator)
    assert list(step.classes) == list(estimator.classes_) and step.n_features_in == X.shape[1]
    for rows in (X, beyond):
        assert_same_decisions(step.decision_function(rows), estimator.decision_function(rows))
        assert_same_labels(step, estimator, rows)
        assert_row_alone_matches_batch(step.decision_function, rows)
        assert hasattr(step, "predict_proba") == hasattr(estimator, "predict_proba")
        if hasattr(estimator, "predict_proba"):
            ours, theirs = step.predict_proba(rows), estimator.predict_proba(rows)
            assert ours.shape == theirs.shape
            assert np.allclose(ours, theirs, rtol=1e-10, atol=1e-12)
            assert_row_alone_matches_batch(step.predict_proba, rows)


REGRESSORS = [
    lambda: LinearRegression(),
    lambda: LinearRegression(fit_intercept=False),
    lambda: Ridge(alpha=0.3),
    lambda: Lasso(alpha=0.01),
    lambda: ElasticNet(alpha=0.05, l1_ratio=0.3),
    lambda: SGDRegressor(random_state=0),
    lambda: LinearSVR(C=2.0),
    lambda: LinearSVR(fit_intercept=False, loss="squared_epsilon_insensitive", dual=False),
]


@SETTINGS
@given(tables(), st.sampled_from(range(len(REGRESSORS))))
def test_regressors_match_sklearn(table, which):
    X, beyond, rng = table
    y = X @ rng.normal(size=X.shape[1]) + rng.normal(size=X.shape[0])
    estimator = fit(REGRESSORS[which](), X, y)
    step = served(estimator)
    assert not hasattr(step, "predict_proba") and not hasattr(step, "classes")
    for rows in (X, beyond):
        assert_same_decisions(step.predict(rows), estimator.predict(rows))
        assert_row_alone_matches_batch(step.predict, rows)


def test_dot_rows_sums_each_row_left_to_right():
    X = np.array([[1e16, 1.0, -1e16, 1.0]])
    # left to right: ((1e16 + 1) - 1e16) + 1 = 0 + 1 = 1 (1e16 + 1 rounds to 1e16)
    assert dot_rows(X, np.ones((1, 4)))[0, 0] == 1.0


def test_breast_cancer_wine_and_diabetes_pipelines():
    X, y = load_breast_cancer(return_X_y=True)
    for estimator in (make_pipeline(StandardScaler(), LogisticRegression()), make_pipeline(StandardScaler(),
                                                                                            LinearSVC())):
        fit(estimator, X, y)
        step = served(estimator)
        assert np.array_equal(step.predict(X), estimator.predict(X))
        if hasattr(estimator, "predict_proba"):
            assert np.allclose(step.predict_proba(X), estimator.predict_proba(X), rtol=1e-10, atol=1e-12)
    X, y = load_wine(return_X_y=True)
    estimator = fit(make_pipeline(StandardScaler(), LogisticRegression(C=10.0)), X, y)
    step = served(estimator)
    assert np.array_equal(step.predict(X), estimator.predict(X))
    assert np.allclose(step.predict_proba(X), estimator.predict_proba(X), rtol=1e-10, atol=1e-12)
    X, y = load_diabetes(return_X_y=True)
    estimator = fit(Ridge(alpha=0.5), X, y)
    assert np.allclose(served(estimator).predict(X), estimator.predict(X), rtol=RELATIVE, atol=1e-9)


def test_multinomial_softmax_and_binary_expit_survive_extreme_scores():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 3))
    for n_classes in (2, 3):
        y = rng.integers(0, n_classes, 60)
        estimator = fit(LogisticRegression(), X, y)
        rows = np.array([[1e6, -1e6, 1e6], [-1e6, 1e6, -1e6], [0.0, 0.0, 0.0]])
        ours, theirs = served(estimator).predict_proba(rows), estimator.predict_proba(rows)
        assert np.all(np.isfinite(ours)) and np.allclose(ours, theirs, rtol=1e-10, atol=1e-12)


def test_nan_or_text_in_a_request_is_an_error_as_in_sklearn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 2))
    step = served(fit(LinearRegression(), X, X[:, 0]))
    with pytest.raises(ValueError):
        step.predict(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError):
        step.predict(np.array([["a", 1.0]], dtype=object))
    with pytest.raises(ValueError):
        step.predict(np.ones((1, 3)))
    assert step.predict(np.array([[1.0, 2]], dtype=object)).shape == (1,)


def fitted_record(estimator, X, y, **changes):
    record = as_record(fit(estimator, X, y))
    record.state.update(changes)
    return record


def test_refuses_coef_of_the_wrong_shape():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 3, 40)
    with pytest.raises(RecordError, match=r"LogisticRegression: coef_ is \(3, 5\) but n_features_in_ is 4"):
        build(fitted_record(LogisticRegression(), X, y, coef_=np.zeros((3, 5))))
    with pytest.raises(RecordError, match=r"coef_ has 2 rows but classes_ holds 3 classes"):
        build(fitted_record(LinearSVC(), X, y, coef_=np.zeros((2, 4)), intercept_=np.zeros(2)))
    with pytest.raises(RecordError, match="several targets"):
        build(fitted_record(Ridge(), X, y, coef_=np.zeros((2, 4))))
    with pytest.raises(RecordError, match=r"intercept_ is \(2,\)"):
        build(fitted_record(LogisticRegression(), X, y, intercept_=np.zeros(2)))


def test_refuses_arrays_of_the_wrong_dtype_or_values():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(40, 4)), rng.integers(0, 2, 40)
    with pytest.raises(RecordError, match="LogisticRegression: coef_ is float32, not float64"):
        build(fitted_record(LogisticRegression(), X, y, coef_=np.zeros((1, 4), dtype=np.float32)))
    with pytest.raises(RecordError, match="coef_ holds NaN or infinity"):
        build(fitted_record(LogisticRegression(), X, y, coef_=np.full((1, 4), np.nan)))
    with pytest.raises(RecordError, match="coef_ is a list"):
        build(fitted_record(Lasso(), X, y, coef_=[0.0] * 4))
    with pytest.raises(RecordError, match="intercept_ is 'x', not a finite number"):
        build(fitted_record(Lasso(), X, y, intercept_="x"))
    with pytest.raises(RecordError, match="classes_ holds a label twice"):
        build(fitted_record(LogisticRegression(), X, y, classes_=np.array([1, 1])))
    with pytest.raises(RecordError, match="n_features_in_ is missing"):
        record = fitted_record(SGDRegressor(), X, y)
        del record.state["n_features_in_"]
        build(record)


def test_refuses_an_unknown_kind():
    with pytest.raises(RecordError, match="it holds a sklearn.svm._classes.SVC, which is not served as data"):
        build(Record(kind="sklearn.svm._classes.SVC", args=(), state={}))
