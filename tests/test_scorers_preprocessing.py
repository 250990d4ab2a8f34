"""The preprocessing and compose scorers (serving/scorers/preprocessing.py, compose.py) against
scikit-learn's own transforms: bit for bit (NaN where scikit-learn has NaN), on training rows,
on rows beyond the training range, on every category, on unknown categories and missing values.

A request's missing cell may be None or NaN; scikit-learn is given NaN for it (a notebook's
DataFrame of strings stores a missing cell as NaN), the scorers None or NaN.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

from serving.records import Record, RecordError
from serving.scorers import build, is_nan

from conftest import as_record, served

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
WORDS = np.array(["Biscoe", "Dream", "Torgersen", "x", "y"], dtype=object)


def quiet(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def none_as_nan(X):
    """What scikit-learn is given for a request with None in it."""
    if X.dtype != object:
        return X
    return np.where(np.frompyfunc(lambda value: value is None, 1, 1)(X).astype(bool), np.nan, X)


def assert_same(ours, theirs):
    """Equal cell for cell, NaN matching NaN, in a float64 array where scikit-learn's is numeric."""
    theirs = theirs.toarray() if hasattr(theirs, "toarray") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    if theirs.dtype != object:
        assert ours.dtype == np.float64
        assert np.array_equal(ours, theirs.astype(np.float64), equal_nan=True)
        return
    for mine, their in zip(ours.ravel().tolist(), theirs.ravel().tolist()):
        assert (is_nan(mine) and is_nan(their)) or (mine == their and type(mine) is type(their)), (mine, their)


def assert_transforms_alike(estimator, *tables):
    step = served(estimator)
    for X in tables:
        assert_same(step.transform(X), quiet(estimator.transform, none_as_nan(X)))
    return step


@st.composite
def numeric_tables(draw, allow_nan=True):
    """A training table (NaN in some cells, maybe a constant column) and rows far beyond it."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows, n_features = draw(st.integers(4, 30)), draw(st.integers(1, 5))
    scale = 10.0 ** rng.integers(-4, 5, size=n_features)
    X = rng.normal(size=(n_rows, n_features)) * scale + rng.normal(size=n_features) * scale
    if draw(st.booleans()):
        X[:, rng.integers(n_features)] = 3.0
    beyond = rng.normal(size=(20, n_features)) * scale * 10.0 ** rng.integers(0, 5, size=(20, 1))
    if allow_nan:
        X[rng.random(X.shape) < 0.15] = np.nan
        beyond[rng.random(beyond.shape) < 0.2] = np.nan
    return X, beyond


def categorical_column(rng, n_rows, missing=True):
    """Words with skewed frequencies (for min_frequency), NaN in some rows."""
    column = WORDS[np.minimum(rng.geometric(0.45, size=n_rows) - 1, len(WORDS) - 1)].copy()
    if missing:
        column[rng.random(n_rows) < 0.15] = np.nan
    return column


@st.composite
def categorical_tables(draw):
    """Training rows of words (and a numeric-category column), and requests: every category,
    unknown words, None and NaN."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows, n_features = draw(st.integers(8, 60)), draw(st.integers(1, 3))
    X = np.stack([categorical_column(rng, n_rows, missing=draw(st.booleans())) for _ in range(n_features)], axis=1)
    requests = np.array([[word] * n_features for word in [*WORDS, "unseen", None, np.nan]], dtype=object)
    return X, requests


SCALERS = [
    lambda: StandardScaler(), lambda: StandardScaler(with_mean=False), lambda: StandardScaler(with_std=False),
    lambda: MinMaxScaler(), lambda: MinMaxScaler(feature_range=(-2.0, 5.0), clip=True),
    lambda: MaxAbsScaler(), lambda: MaxAbsScaler(clip=True),
    lambda: RobustScaler(), lambda: RobustScaler(with_centering=False, quantile_range=(10.0, 90.0)),
    lambda: RobustScaler(unit_variance=True),
]


@SETTINGS
@given(numeric_tables(), st.sampled_from(range(len(SCALERS))))
def test_scalers_bit_equal(table, which):
    X, beyond = table
    estimator = quiet(SCALERS[which]().fit, X)
    step = assert_transforms_alike(estimator, X, beyond, X.astype(object))
    for rows in (X, beyond):
        assert_same(step.inverse_transform(rows), estimator.inverse_transform(rows))


IMPUTERS = [
    dict(strategy="mean"), dict(strategy="median", add_indicator=True), dict(strategy="most_frequent"),
    dict(strategy="constant", fill_value=-7.5, add_indicator=True), dict(strategy="mean", keep_empty_features=True),
    dict(strategy="constant", keep_empty_features=True, add_indicator=True),
    dict(strategy="median", missing_values=3.0),
]


@SETTINGS
@given(numeric_tables(), st.sampled_from(IMPUTERS), st.booleans())
def test_simple_imputer_numeric_bit_equal(table, parameters, empty_column):
    X, beyond = table
    if empty_column:
        X = X.copy()
        X[:, 0] = np.nan
    if parameters.get("missing_values") == 3.0:
        X, beyond = np.nan_to_num(X, nan=3.0), np.nan_to_num(beyond, nan=3.0)
    estimator = quiet(SimpleImputer(**parameters).fit, X)
    step = assert_transforms_alike(estimator, X, beyond)
    if "missing_values" not in parameters:  # a request's nulls, in a table of mixed columns
        nulls = np.where(np.isnan(beyond), None, beyond).astype(object)
        assert_same(step.transform(nulls), quiet(estimator.transform, beyond))


@SETTINGS
@given(categorical_tables(), st.sampled_from([
    dict(strategy="most_frequent"), dict(strategy="constant", add_indicator=True),
    dict(strategy="constant", fill_value="gap"), dict(strategy="most_frequent", add_indicator=True,
                                                      keep_empty_features=True)]))
def test_simple_imputer_on_words_bit_equal(table, parameters):
    X, requests = table
    estimator = SimpleImputer(**parameters).fit(X)
    assert_transforms_alike(estimator, X, requests)


@SETTINGS
@given(categorical_tables(), st.sampled_from([
    dict(), dict(handle_unknown="ignore"), dict(handle_unknown="ignore", drop="first"),
    dict(drop="if_binary", handle_unknown="ignore"), dict(handle_unknown="infrequent_if_exist", min_frequency=4),
    dict(handle_unknown="infrequent_if_exist", max_categories=3, drop="first"),
    dict(handle_unknown="ignore", min_frequency=0.2), dict(handle_unknown="warn", max_categories=2),
    dict(handle_unknown="infrequent_if_exist", min_frequency=3, drop="if_binary"),
]), st.booleans())
def test_one_hot_encoder_bit_equal(table, parameters, sparse):
    X, requests = table
    estimator = quiet(OneHotEncoder(sparse_output=sparse, **parameters).fit, X)
    step = assert_transforms_alike(estimator, X, X[::-1])
    if parameters.get("handle_unknown", "error") == "error":
        with pytest.raises(ValueError):
            step.transform(np.array([["unseen"] * X.shape[1]], dtype=object))
    else:
        assert_transforms_alike(estimator, requests)


def test_one_hot_encoder_drop_list_and_numeric_categories():
    rng = np.random.default_rng(5)
    X = np.stack([categorical_column(rng, 50), rng.integers(0, 4, 50).astype(float)], axis=1)
    X[::7, 1] = np.nan
    requests = np.array([["Dream", 2.0], ["x", np.nan], [np.nan, 1.0], [None, 0.0], ["unseen", 9.0]], dtype=object)
    for parameters in (dict(drop=["Dream", 2.0]), dict(drop=[np.nan, np.nan]), dict(drop=["x", 0.0])):
        estimator = OneHotEncoder(sparse_output=False, handle_unknown="ignore", **parameters).fit(X)
        assert_transforms_alike(estimator, X, requests)
    numbers = np.array([[1.0], [2.0], [np.nan], [2.0], [-0.0]])
    estimator = OneHotEncoder(handle_unknown="ignore").fit(numbers)
    assert_transforms_alike(estimator, numbers, np.array([[0.0], [5.0], [np.nan], [1.0]]))


@SETTINGS
@given(categorical_tables(), st.sampled_from([
    dict(), dict(handle_unknown="use_encoded_value", unknown_value=-1),
    dict(handle_unknown="use_encoded_value", unknown_value=np.nan, encoded_missing_value=-2),
    dict(handle_unknown="use_encoded_value", unknown_value=99, min_frequency=4),
    dict(handle_unknown="use_encoded_value", unknown_value=-1, max_categories=2, encoded_missing_value=-5),
]))
def test_ordinal_encoder_bit_equal(table, parameters):
    X, requests = table
    estimator = OrdinalEncoder(**parameters).fit(X)
    step = assert_transforms_alike(estimator, X)
    if "unknown_value" in parameters:
        assert_transforms_alike(estimator, requests)
    else:
        with pytest.raises(ValueError):
            step.transform(np.array([["unseen"] * X.shape[1]], dtype=object))


@SETTINGS
@given(numeric_tables(allow_nan=False), st.sampled_from(["log1p", "log", "exp", "sqrt", "expm1", None]),
       st.booleans())
def test_function_transformer_bit_equal(table, name, validate):
    X, beyond = table
    X, beyond = np.abs(X) / np.abs(X).max(), np.abs(beyond) / np.abs(X).max()  # in every function's domain
    estimator = FunctionTransformer(None if name is None else getattr(np, name), validate=validate).fit(X)
    assert_transforms_alike(estimator, X, beyond)


def penguins():
    table = load_penguins()
    return table.drop(columns="species"), table["species"]


def as_request_rows(table, columns):
    """A DataFrame's rows as the object array a request gives: its columns in order, gaps as None."""
    cells = table[columns].astype(object)
    return cells.where(cells.notna(), None).to_numpy()


def notebook_penguins_model(classifier):
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    categorical = ["island", "sex"]
    preprocess = ColumnTransformer([
        ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("categorical", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                      OneHotEncoder(handle_unknown="ignore")), categorical),
    ])
    return make_pipeline(preprocess, classifier)


def test_penguins_pipeline_as_a_notebook_fits_it():
    X, y = penguins()
    model = notebook_penguins_model(LogisticRegression(max_iter=1000)).fit(X, y)
    step = served(model)
    rows = as_request_rows(X, list(model.feature_names_in_))
    assert list(step.classes) == list(model.classes_) and step.n_features_in == X.shape[1]
    assert np.array_equal(step.predict(rows), model.predict(X))
    assert np.allclose(step.predict_proba(rows), model.predict_proba(X), rtol=1e-10, atol=1e-12)
    assert_same(step.steps[0].transform(rows).astype(float), model[0].transform(X))
    unusual = X.head(4).copy()
    unusual["island"] = ["Atlantis", None, "Dream", "Biscoe"]
    unusual["bill_length_mm"] = [1e4, None, -50.0, 0.0]
    assert np.allclose(step.predict_proba(as_request_rows(unusual, list(model.feature_names_in_))),
                       model.predict_proba(unusual), rtol=1e-10, atol=1e-12)


def test_column_selectors_remainders_weights_and_sparse_output():
    rng = np.random.default_rng(6)
    X = np.stack([rng.normal(size=40), categorical_column(rng, 40), rng.normal(size=40) * 100,
                  categorical_column(rng, 40, missing=False), rng.normal(size=40)], axis=1)
    numeric = X[:, [0, 2, 4]].astype(float)
    words = make_pipeline(SimpleImputer(strategy="constant"), OneHotEncoder(handle_unknown="ignore"))
    layouts = [
        ColumnTransformer([("n", StandardScaler(), [0, 2]), ("w", words, [1, 3])], remainder="passthrough"),
        ColumnTransformer([("n", MinMaxScaler(), slice(0, 1)), ("w", words, [False, True, False, True, False])],
                          remainder=RobustScaler(), transformer_weights={"n": 2.5, "remainder": 0.5}),
        ColumnTransformer([("n", "passthrough", [-1, 0]), ("gone", "drop", [2]), ("none", StandardScaler(), []),
                           ("w", words, [1, 3])], sparse_threshold=0.9),
    ]
    for layout in layouts:
        layout.fit(X)
        requests = X.copy()
        requests[:3, 1] = [None, "unseen", np.nan]
        step = served(layout)
        assert step.outputs_sparse == layout.sparse_output_
        for rows in (X, requests):
            assert_same(np.asarray(step.transform(rows), dtype=float), layout.transform(none_as_nan(rows)))
    on_numbers = ColumnTransformer([("n", StandardScaler(), [0, 2])], remainder="passthrough").fit(numeric)
    assert_transforms_alike(on_numbers, numeric)


def test_column_names_resolved_through_feature_names_in():
    X, _ = penguins()
    layout = ColumnTransformer([
        ("a", StandardScaler(), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]),
        ("b", OrdinalEncoder(), ["sex", "island"]),
    ], remainder="drop").fit(X)
    rows = as_request_rows(X, list(layout.feature_names_in_))
    assert_same(served(layout).transform(rows).astype(float), layout.transform(X))
    # A slice of names takes its end too, as pandas' .loc does (records.py reads only slices of
    # numbers today, so this selector is put in the record by hand).
    record = as_record(layout)
    name, scaler, _ = record.state["transformers_"][0]
    record.state["transformers_"][0] = (name, scaler, slice("bill_length_mm", "flipper_length_mm"))
    assert_same(build(record).transform(rows).astype(float), layout.transform(X))


def test_sparse_output_into_a_linear_model_is_summed_as_scipy_does():
    X, y = penguins()
    model = notebook_penguins_model(LogisticRegression(max_iter=1000))
    model.set_params(columntransformer__sparse_threshold=1.0).fit(X, y)
    assert model[0].sparse_output_
    step = served(model)
    rows = as_request_rows(X, list(model.feature_names_in_))
    assert np.array_equal(step.predict(rows), model.predict(X))
    assert np.allclose(step.predict_proba(rows), model.predict_proba(X), rtol=1e-12, atol=1e-14)
    scaled_after = make_pipeline(OneHotEncoder(), MaxAbsScaler(), LogisticRegression()).fit(X[["island"]], y)
    with pytest.raises(RecordError, match="sparse output goes into a MaxAbsScalerStep"):
        served(scaled_after)


def test_transformed_target_regressors_on_diabetes():
    X, y = load_diabetes(return_X_y=True)
    models = [
        TransformedTargetRegressor(Ridge(alpha=0.1), func=np.log1p, inverse_func=np.expm1),
        TransformedTargetRegressor(make_pipeline(StandardScaler(), LinearRegression()), func=np.log,
                                   inverse_func=np.exp),
        TransformedTargetRegressor(Ridge(), transformer=StandardScaler()),
        TransformedTargetRegressor(LinearRegression(), transformer=MinMaxScaler()),
        TransformedTargetRegressor(Ridge(), transformer=make_pipeline(RobustScaler(), MaxAbsScaler(), "passthrough")),
        make_pipeline(StandardScaler(), Ridge(alpha=2.0)),
    ]
    beyond = X * 50.0
    for model in models:
        quiet(model.fit, X, y)
        step = served(model)
        for rows in (X, beyond):
            ours, theirs = step.predict(rows), model.predict(rows)
            assert ours.shape == theirs.shape
            assert np.allclose(ours, theirs, rtol=1e-12, atol=1e-9)


def fitted_record(estimator, X, **changes):
    record = as_record(quiet(estimator.fit, X))
    record.state.update(changes)
    return record


def test_refuses_categories_not_matching_n_features_in():
    X = np.array([["a", "b"], ["c", "d"]], dtype=object)
    record = fitted_record(OneHotEncoder(), X, n_features_in_=3)
    with pytest.raises(RecordError, match="OneHotEncoder: categories_ has 2 features but n_features_in_ is 3"):
        build(record)
    record = fitted_record(OrdinalEncoder(), X, categories_=[np.array(["a", "a"], dtype=object)] * 2)
    with pytest.raises(RecordError, match="OrdinalEncoder: categories_\\[0\\] holds a category twice"):
        build(record)
    record = fitted_record(OneHotEncoder(drop="first"), X, _drop_idx_after_grouping=np.array([0, 5], dtype=object),
                           drop_idx_=np.array([0, 5], dtype=object))
    with pytest.raises(RecordError, match="OneHotEncoder: drop_idx_\\[1\\] is 5, out of range"):
        build(record)
    with pytest.raises(RecordError, match="dtype .* is not served"):
        build(fitted_record(OneHotEncoder(dtype=np.int32), X))


def test_refuses_arrays_of_the_wrong_dtype_or_shape():
    X = np.arange(12.0).reshape(4, 3)
    with pytest.raises(RecordError, match="StandardScaler: mean_ is int64, not float64"):
        build(fitted_record(StandardScaler(), X, mean_=np.arange(3)))
    with pytest.raises(RecordError, match=r"MinMaxScaler: scale_ is \(2,\) but should be \(3\)"):
        build(fitted_record(MinMaxScaler(), X, scale_=np.ones(2)))
    with pytest.raises(RecordError, match="RobustScaler: center_ holds NaN or infinity"):
        build(fitted_record(RobustScaler(), X, center_=np.full(3, np.inf)))
    with pytest.raises(RecordError, match="SimpleImputer: strategy='knn' is not served"):
        build(fitted_record(SimpleImputer(), X, strategy="knn"))


def test_refuses_an_unsupported_function_transformer_func():
    X = np.ones((3, 2))
    with pytest.raises(RecordError, match="FunctionTransformer: func tanh is not served"):
        build(fitted_record(FunctionTransformer(np.tanh), X))
    with pytest.raises(RecordError, match="FunctionTransformer: inverse_func square is not served"):
        build(fitted_record(FunctionTransformer(np.log1p, inverse_func=np.square), X))
    with pytest.raises(RecordError):  # a function records.py doesn't even read
        fitted_record(FunctionTransformer(np.sin), X)
    with pytest.raises(RecordError, match="FunctionTransformer: func .* is not served"):
        build(fitted_record(FunctionTransformer(np.log1p), X, func=Record("numpy.log1p", (), {})))
    with pytest.raises(RecordError, match="kw_args is not served"):
        build(fitted_record(FunctionTransformer(np.log1p, kw_args={"out": None}), X))


def test_refuses_callable_and_scalar_column_selectors():
    X = np.ones((3, 2))
    layout = ColumnTransformer([("n", StandardScaler(), [0])]).fit(X)
    record = as_record(layout)
    record.state["transformers_"][0] = ("n", record.state["transformers_"][0][1], len)
    with pytest.raises(RecordError, match="ColumnTransformer: a callable column selector is not served"):
        build(record)
    record.state["transformers_"][0] = ("n", record.state["transformers_"][0][1], 0)
    with pytest.raises(RecordError, match="scalar column selector 0"):
        build(record)


def test_importing_the_scorers_imports_no_sklearn_scipy_pandas_or_joblib():
    code = (
        "import sys\n"
        "import serving.scorers, serving.scorers.compose, serving.scorers.preprocessing, serving.scorers.linear\n"
        "import serving.scorers.trees, serving.scorers.boosting\n"
        "serving.scorers.kinds()\n"
        "heavy = ('sklearn', 'scipy', 'pandas', 'joblib')\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "[]"

