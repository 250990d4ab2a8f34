"""serving/scorers/boosting.py against scikit-learn: GradientBoosting and HistGradientBoosting
classifiers and regressors (and the Dummy estimators GradientBoosting starts from), each
joblib.dump'ed to bytes, read back with records.read, built with serving.scorers.build, and its
predict and predict_proba compared with scikit-learn's, bit for bit, on the training rows, on rows
far beyond them, on missing values, unknown categories, and row by row alone. Then the records a
scorer refuses.
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from palmerpenguins import load_penguins
from scipy.special import expit as scipy_expit
from scipy.special import logit as scipy_logit
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine, make_classification
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from serving.records import RecordError, read
from serving.scorers import build, expit, kinds
from serving.scorers.boosting import logit

from conftest import assert_scores_alike, dumped, served

SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
pytestmark = pytest.mark.filterwarnings(
    "ignore:invalid value encountered in reduce:RuntimeWarning",  # scikit-learn's own check of inf + -inf
    "ignore:X does not have valid feature names:UserWarning",  # scikit-learn given an array after a DataFrame
)


@pytest.fixture(autouse=True, scope="module")
def one_openmp_thread():
    """HistGradientBoosting predicts with OpenMP threads, which on a machine shared with other runs
    take a hundred times longer for the single rows compared here; one thread answers the same."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


def probe_rows(X, rng, categorical=()):
    """The training rows, rows far beyond them, extremes, missing values; for categorical columns,
    categories never seen, negative or fractional."""
    beyond = X * rng.choice([-1000.0, -3.0, 0.5, 7.0, 1e6], size=(X.shape[0], 1)) + rng.normal(size=X.shape)
    extremes = np.array([[v] * X.shape[1] for v in (1e30, -1e30, 0.0, np.inf, -np.inf)])
    missing = np.vstack([np.where(rng.random(X.shape) < 0.3, np.nan, X), np.full((1, X.shape[1]), np.nan)])
    unseen = X.copy()
    for column in categorical:
        unseen[:, column] = rng.choice([-1.0, 0.5, 1.0, 2.0, 7.0, 300.0, np.nan], size=X.shape[0])
    return [X, beyond, extremes[:3], extremes, missing, unseen]


def assert_served_alike(estimator, X, rng, categorical=()):
    step = served(estimator)
    for rows in probe_rows(X, rng, categorical):
        assert_scores_alike(estimator, step, rows)
    return step


@st.composite
def tables(draw, classes=True, positive=False, categorical=False):
    """Training rows (NaN in some cells, maybe categorical columns of a few whole numbers) and targets."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows, n_features = draw(st.integers(12, 60)), draw(st.integers(1, 5))
    X = rng.normal(size=(n_rows, n_features)) * 10.0 ** rng.integers(-2, 3, size=n_features)
    columns = sorted(set(rng.integers(0, n_features, size=draw(st.integers(1, 2))).tolist())) if categorical else []
    for column in columns:
        X[:, column] = rng.integers(0, draw(st.integers(2, 6)), size=n_rows)
    if draw(st.booleans()):
        X[rng.random(X.shape) < 0.15] = np.nan
    if classes:
        n_classes = draw(st.integers(2, 4))
        y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, size=n_rows - n_classes)])
        labels = draw(st.sampled_from([None, np.array(["Adelie", "Chinstrap", "Gentoo", "x"], dtype=object)]))
        y = y if labels is None else labels[y]
    else:
        y = np.nansum(X, axis=1) + rng.normal(size=n_rows)
        y = np.exp(y / (1 + np.abs(y).max())) if positive else y
    return X, y, rng, columns


def learning():
    return dict(learning_rate=st.sampled_from([0.05, 0.1, 0.3, 1.0]), max_depth=st.sampled_from([1, 2, 3, None]))


@SETTINGS
@given(table=tables(), n_estimators=st.integers(1, 15), subsample=st.sampled_from([1.0, 0.7]),
       init=st.sampled_from([None, "zero", "prior", "most_frequent"]), exponential=st.booleans(), **learning())
def test_gradient_boosting_classifier(table, n_estimators, subsample, init, exponential, learning_rate, max_depth):
    X, y, rng, _ = table
    X = np.nan_to_num(X)  # it takes no missing values (they are refused below)
    exponential = exponential and len(set(y.tolist())) == 2
    init = DummyClassifier(strategy=init) if init in ("prior", "most_frequent") else init
    model = GradientBoostingClassifier(n_estimators=n_estimators, subsample=subsample, init=init,
                                       loss="exponential" if exponential else "log_loss",
                                       learning_rate=learning_rate, max_depth=max_depth, random_state=0)
    assert_served_alike(model.fit(X, y), X, rng)


@SETTINGS
@given(table=tables(classes=False), n_estimators=st.integers(1, 15),
       loss=st.sampled_from(["squared_error", "absolute_error", "huber", "quantile"]),
       init=st.sampled_from([None, "zero", "median"]), **learning())
def test_gradient_boosting_regressor(table, n_estimators, loss, init, learning_rate, max_depth):
    X, y, rng, _ = table
    X = np.nan_to_num(X)
    init = DummyRegressor(strategy="median") if init == "median" else init
    model = GradientBoostingRegressor(n_estimators=n_estimators, loss=loss, alpha=0.8, init=init,
                                      learning_rate=learning_rate, max_depth=max_depth, random_state=0)
    assert_served_alike(model.fit(X, y), X, rng)


def hist_parameters():
    return dict(max_iter=st.integers(1, 15), min_samples_leaf=st.integers(1, 10),
                max_leaf_nodes=st.sampled_from([3, 31]), l2_regularization=st.sampled_from([0.0, 1.0]),
                by_mask=st.booleans(), **learning())


def categorical_features(columns, n_features, by_mask):
    if not columns:
        return None
    return [column in columns for column in range(n_features)] if by_mask else columns


@SETTINGS
@given(table=tables(categorical=True), categorical=st.booleans(), **hist_parameters())
def test_hist_gradient_boosting_classifier(table, categorical, by_mask, **parameters):
    X, y, rng, columns = table
    columns = columns if categorical else []
    model = HistGradientBoostingClassifier(categorical_features=categorical_features(columns, X.shape[1], by_mask),
                                           random_state=0, **parameters)
    assert_served_alike(model.fit(X, y), X, rng, columns)


@SETTINGS
@given(table=tables(classes=False, positive=True, categorical=True), categorical=st.booleans(),
       loss=st.sampled_from(["squared_error", "absolute_error", "poisson", "gamma", "quantile"]), **hist_parameters())
def test_hist_gradient_boosting_regressor(table, categorical, loss, by_mask, **parameters):
    X, y, rng, columns = table
    columns = columns if categorical else []
    model = HistGradientBoostingRegressor(loss=loss, quantile=0.3 if loss == "quantile" else None, random_state=0,
                                          categorical_features=categorical_features(columns, X.shape[1], by_mask),
                                          **parameters)
    assert_served_alike(model.fit(X, y), X, rng, columns)


@pytest.mark.parametrize("model", [GradientBoostingClassifier, HistGradientBoostingClassifier])
@pytest.mark.parametrize("load", [load_breast_cancer, load_wine, load_iris])
def test_scikit_learns_bundled_classification_sets(model, load):
    X, y = load(return_X_y=True)
    estimator = model(random_state=0, **({"n_estimators": 30} if model is GradientBoostingClassifier else {}))
    assert_served_alike(estimator.fit(X, y), X, np.random.default_rng(0))


@pytest.mark.parametrize("model", [GradientBoostingRegressor, HistGradientBoostingRegressor])
def test_diabetes(model):
    X, y = load_diabetes(return_X_y=True)
    assert_served_alike(model(random_state=0).fit(X, y), X, np.random.default_rng(0))


def penguins_table(as_category):
    """The penguins: island and sex strings (or pandas categories), gaps as NaN; the species to predict."""
    penguins = load_penguins()
    table = penguins[["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"]]
    table = table.astype({"island": object, "sex": object})
    if as_category:
        table = table.astype({"island": "category", "sex": "category"})
    return table, penguins["species"].to_numpy()


@pytest.mark.parametrize("categorical", ["from_dtype", "by_name"])
def test_penguins_with_categories_from_a_dataframe(categorical):
    """Fitted on a DataFrame; served the same columns as an object array: strings for the categories,
    NaN (or None) for the gaps, and also words never seen."""
    table, species = penguins_table(as_category=categorical == "from_dtype")
    features = "from_dtype" if categorical == "from_dtype" else ["island", "sex"]
    model = HistGradientBoostingClassifier(categorical_features=features, max_iter=40, random_state=0)
    model.fit(table, species)
    step = served(model)
    rows = table.astype(object).to_numpy()
    assert_scores_alike(model, step, rows, theirs_X=table)
    unseen = table.astype(object).copy()
    unseen["island"] = ["Atlantis", "Dream", None, np.nan] * (len(unseen) // 4) + ["Biscoe"] * (len(unseen) % 4)
    with_none = unseen.to_numpy()
    assert_scores_alike(model, step, with_none, theirs_X=unseen.fillna(np.nan), single_rows_as_scikit_learn=False)


def test_penguins_numbers_only_with_gradient_boosting():
    penguins = load_penguins().dropna()
    X = penguins[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]].to_numpy()
    model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(X, penguins["species"].to_numpy())
    assert_served_alike(model, X, np.random.default_rng(0))


def test_many_classes_sum_column_after_column():
    """With 8 classes or more, scikit-learn's HistGradientBoosting sums a batch's exponentials column
    after column but a single row's pairwise: the scorer sums column after column always, so a row
    alone gets its batch floats, scikit-learn's batch answer."""
    X, y = make_classification(n_samples=400, n_features=8, n_informative=6, n_classes=9, n_clusters_per_class=1,
                               random_state=0)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    step = served(model)
    assert_scores_alike(model, step, X, single_rows_as_scikit_learn=False)
    theirs_alone = np.vstack([model.predict_proba(X[row:row + 1]) for row in range(50)])
    assert (theirs_alone != model.predict_proba(X[:50])).any()  # scikit-learn 1.9.1 and numpy 2.4: a last bit or two
    assert np.allclose(theirs_alone, step.predict_proba(X[:50]), rtol=1e-14, atol=0)
    gradient = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert_scores_alike(gradient, served(gradient), X)  # a C-ordered sum: the same alone or not


def test_dummy_estimators_as_steps_of_their_own():
    X, y = load_iris(return_X_y=True)
    for strategy in ("prior", "most_frequent"):
        assert_scores_alike(DummyClassifier(strategy=strategy).fit(X, load_iris().target_names[y]),
                            served(DummyClassifier(strategy=strategy).fit(X, load_iris().target_names[y])), X)
    regressor = DummyRegressor(strategy="quantile", quantile=0.3).fit(X, y * 1.5)
    assert_scores_alike(regressor, served(regressor), X)


def test_expit_and_logit_are_scipys():
    raw = np.concatenate([np.linspace(-800, 800, 4001), np.random.default_rng(0).normal(0, 10, 20000), [0.0, -0.0]])
    assert np.array_equal(expit(raw), scipy_expit(raw))
    eps = np.finfo(np.float64).eps
    p = np.concatenate([np.linspace(eps, 1 - eps, 20001), [0.3, 0.65, np.nextafter(0.3, 0), np.nextafter(0.65, 1)]])
    assert np.array_equal(logit(p), scipy_logit(p))


def test_a_thousand_rows_are_quick():
    import time

    X, y = load_wine(return_X_y=True)
    rows = np.resize(X, (1000, X.shape[1]))
    for model in (GradientBoostingClassifier(n_estimators=100, random_state=0),
                  HistGradientBoostingClassifier(max_iter=100, random_state=0)):
        step = served(model.fit(X, y))
        started = time.perf_counter()
        proba = step.predict_proba(rows)
        assert time.perf_counter() - started < 1.0, type(model).__name__
        assert np.array_equal(proba, model.predict_proba(rows))


# --- records refused


def refused(record, *words):
    with pytest.raises(RecordError) as refusal:
        build(record)
    message = str(refusal.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_an_init_estimator_not_served_is_refused():
    X, y = load_iris(return_X_y=True)
    model = GradientBoostingClassifier(n_estimators=2, init=LogisticRegression(max_iter=500)).fit(X, y)
    refused(read(dumped(model), kinds()), "GradientBoostingClassifier: init_ is a sklearn.linear_model", "Logistic")


def gradient_boosting_record():
    X, y = load_iris(return_X_y=True)
    return read(dumped(GradientBoostingClassifier(n_estimators=3, max_depth=2, random_state=0).fit(X, y)), kinds())


def test_a_stage_tree_out_of_shape_is_refused():
    record = gradient_boosting_record()
    tree = record.state["estimators_"][2, 1].state["tree_"]
    tree.state["nodes"] = tree.state["nodes"].copy()
    tree.state["nodes"]["left_child"][0] = 77
    refused(record, "GradientBoostingClassifier: estimators_[2, 1]: ", "left child 77 is outside")
    record = gradient_boosting_record()
    record.state["estimators_"] = record.state["estimators_"][:, :2]
    refused(record, "estimators_ is (3, 2) but should be (any, 3)")


def test_a_loss_that_does_not_fit_the_classes_is_refused():
    record = gradient_boosting_record()
    record.state["_loss"].kind = "sklearn._loss.loss.HalfBinomialLoss"
    refused(record, "_loss HalfBinomialLoss has a link other than LogitLink")


def hist_record(categorical=True):
    X, y = load_iris(return_X_y=True)
    X = X.round()
    model = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0] if categorical else None,
                                           random_state=0).fit(X, y)
    return read(dumped(model), kinds())


def first_split_predictor(record, categorical):
    for row in record.state["_predictors"]:
        for predictor in row:
            nodes = predictor.state["nodes"]
            splits = np.flatnonzero((nodes["is_leaf"] == 0) & (nodes["is_categorical"] == categorical))
            if splits.size:
                predictor.state["nodes"] = nodes = nodes.copy()
                return predictor, nodes, int(splits[0])
    raise AssertionError("no such split")


def test_a_predictor_child_outside_is_refused():
    record = hist_record()
    _, nodes, node = first_split_predictor(record, categorical=0)
    nodes["right"][node] = 4000
    refused(record, "HistGradientBoostingClassifier: _predictors[", "right child 4000 is outside")


def test_a_categorical_split_without_its_bitset_is_refused():
    record = hist_record()
    _, nodes, node = first_split_predictor(record, categorical=1)
    nodes["bitset_idx"][node] = 50
    refused(record, "bitset index out of range")


def test_a_categorical_split_on_a_numeric_feature_is_refused():
    record = hist_record()
    _, nodes, node = first_split_predictor(record, categorical=1)
    nodes["feature_idx"][node] = 3
    refused(record, "splits on a numeric feature by category")


def test_a_hist_threshold_or_leaf_that_is_not_a_number_is_refused():
    record = hist_record(categorical=False)
    _, nodes, node = first_split_predictor(record, categorical=0)
    nodes["num_threshold"][node] = np.nan
    refused(record, "threshold that is NaN")
    record = hist_record(categorical=False)
    _, nodes, _ = first_split_predictor(record, categorical=0)
    nodes["value"][np.flatnonzero(nodes["is_leaf"])[0]] = np.inf
    refused(record, "leaf whose value is not finite")


def test_hist_parts_of_the_wrong_shape_or_kind_are_refused():
    record = hist_record()
    record.state["_baseline_prediction"] = record.state["_baseline_prediction"].astype(np.float32)
    refused(record, "_baseline_prediction is float32, not float64")
    record = hist_record()
    record.state["_preprocessor"] = None
    refused(record, "categorical features but no _preprocessor")
    record = hist_record()
    function = record.state["_preprocessor"].state["transformers_"][1][1]
    function.state["func"].state["keywords"]["ensure_all_finite"] = True
    refused(record, "_preprocessor: its numerical transformer is not check_array")
    record = hist_record()
    record.state["_predictors"][1] = record.state["_predictors"][1][:2]
    refused(record, "_predictors is not a list of lists of 3 TreePredictors")
