"""serving/records.py (model.pkl read as data) and serving/scorers/trees.py (decision trees and
forests) against scikit-learn: every model joblib.dump'ed to bytes, read back with records.read,
built with serving.scorers.build, and its predict and predict_proba compared with scikit-learn's,
bit for bit, on the training rows, on rows far beyond them, on rows at the trees' thresholds and
one float32 step either side, on missing values, and row by row alone. Then one test per way a
malformed model.pkl is refused, and what importing the scorers imports.
"""

import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from palmerpenguins import load_penguins
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor

from serving.records import Record, RecordError, read
from serving.scorers import build, kinds

from conftest import assert_scores_alike, dumped, served

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)
SINGLE_ROWS = 8  # rows scored alone, each compared with its row of the batch


def threshold_rows(estimator, n_features):
    """Rows whose every value is a split threshold, or the float32 just below or above it: where a
    float32 cast or a < for a <= would send a row the other way."""
    trees = getattr(estimator, "estimators_", [estimator])
    thresholds = np.concatenate([tree.tree_.threshold[tree.tree_.feature >= 0] for tree in trees[:3]])
    thresholds = thresholds[np.isfinite(thresholds)][:40]  # +inf: a split of the missing values only
    near = [thresholds, np.nextafter(thresholds.astype(np.float32), np.float32(-np.inf)),
            np.nextafter(thresholds.astype(np.float32), np.float32(np.inf))]
    values = np.concatenate(near).astype(np.float64)
    return np.repeat(values[:, np.newaxis], n_features, axis=1)


def probe_rows(estimator, X, rng):
    """The training rows, rows far beyond them (in scale and sign), at the thresholds; then rows with
    NaN (which scikit-learn refuses for some trees: then so must the scorer)."""
    beyond = X * rng.choice([-1000.0, -3.0, 0.5, 7.0, 1e6], size=(X.shape[0], 1)) + rng.normal(size=X.shape)
    extremes = np.array([[1e30] * X.shape[1], [-1e30] * X.shape[1], [0.0] * X.shape[1]])
    missing = np.vstack([np.where(rng.random(X.shape) < 0.3, np.nan, X), np.full((1, X.shape[1]), np.nan)])
    return [np.vstack([X, beyond, extremes, threshold_rows(estimator, X.shape[1])]), missing]


def assert_served_alike(estimator, X, rng):
    step = served(estimator)
    for rows in probe_rows(estimator, X, rng):
        assert_scores_alike(estimator, step, rows, single_rows=SINGLE_ROWS)
    return step


@st.composite
def tables(draw, classes=True):
    """Training rows (NaN in some cells, maybe a constant or a two-valued column) and their targets."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_rows, n_features = draw(st.integers(6, 60)), draw(st.integers(1, 5))
    scale = 10.0 ** rng.integers(-3, 4, size=n_features)
    X = rng.normal(size=(n_rows, n_features)) * scale
    if draw(st.booleans()):
        X[:, rng.integers(n_features)] = rng.choice([0.0, 1.0], size=n_rows)
    if draw(st.booleans()):
        X[rng.random(X.shape) < 0.15] = np.nan
    if classes:
        n_classes = draw(st.integers(2, 4))
        y = np.concatenate([np.arange(n_classes), rng.integers(0, n_classes, size=n_rows - n_classes)])
        labels = draw(st.sampled_from([None, np.array(["Adelie", "Chinstrap", "Gentoo", "x"], dtype=object),
                                       np.array([-3.0, 0.0, 2.0, 9.0])]))
        y = y if labels is None else labels[y]
    else:
        y = np.nansum(X, axis=1) + rng.normal(size=n_rows)
    return X, y, rng


@st.composite
def tree_parameters(draw, criteria):
    return dict(
        splitter=draw(st.sampled_from(["best", "random"])),
        criterion=draw(st.sampled_from(criteria)),
        max_depth=draw(st.sampled_from([None, 1, 2, 4, 8])),
        min_samples_leaf=draw(st.integers(1, 5)),
        max_features=draw(st.sampled_from([None, 1, 0.5, "sqrt"])),
    )


@st.composite
def forest_parameters(draw):
    return dict(
        n_estimators=draw(st.integers(1, 12)),
        max_depth=draw(st.sampled_from([None, 2, 5])),
        min_samples_leaf=draw(st.integers(1, 4)),
        bootstrap=draw(st.booleans()),
    )


@SETTINGS
@given(table=tables(), extra=st.booleans(), parameters=tree_parameters(["gini", "entropy", "log_loss"]))
def test_a_decision_tree_classifier_answers_as_scikit_learn_does(table, extra, parameters):
    X, y, rng = table
    model = ExtraTreeClassifier if extra else DecisionTreeClassifier
    X = X if not extra or parameters["splitter"] == "random" else np.nan_to_num(X)  # or it refuses NaN
    assert_served_alike(model(random_state=0, **parameters).fit(X, y), X, rng)


@SETTINGS
@given(table=tables(classes=False), extra=st.booleans(),
       parameters=tree_parameters(["squared_error", "absolute_error"]))
def test_a_decision_tree_regressor_answers_as_scikit_learn_does(table, extra, parameters):
    X, y, rng = table
    model = ExtraTreeRegressor if extra else DecisionTreeRegressor
    X = X if not extra or parameters["splitter"] == "random" else np.nan_to_num(X)  # or it refuses NaN
    assert_served_alike(model(random_state=0, **parameters).fit(X, y), X, rng)


@SETTINGS
@given(table=tables(), extra=st.booleans(), class_weight=st.sampled_from([None, "balanced"]),
       parameters=forest_parameters())
def test_a_forest_classifier_answers_as_scikit_learn_does(table, extra, class_weight, parameters):
    X, y, rng = table
    model = ExtraTreesClassifier if extra else RandomForestClassifier
    assert_served_alike(model(class_weight=class_weight, random_state=0, **parameters).fit(X, y), X, rng)


@SETTINGS
@given(table=tables(classes=False), extra=st.booleans(), parameters=forest_parameters())
def test_a_forest_regressor_answers_as_scikit_learn_does(table, extra, parameters):
    X, y, rng = table
    model = ExtraTreesRegressor if extra else RandomForestRegressor
    assert_served_alike(model(random_state=0, **parameters).fit(X, y), X, rng)


@pytest.mark.parametrize("model", [RandomForestClassifier, ExtraTreesClassifier, DecisionTreeClassifier])
@pytest.mark.parametrize("load", [load_breast_cancer, load_wine])
def test_scikit_learns_bundled_classification_sets(model, load):
    X, y = load(return_X_y=True)
    estimator = model(random_state=0, **({} if model is DecisionTreeClassifier else {"n_estimators": 15}))
    assert_served_alike(estimator.fit(X, y), X, np.random.default_rng(0))


@pytest.mark.parametrize("model", [RandomForestRegressor, ExtraTreesRegressor, DecisionTreeRegressor])
def test_diabetes(model):
    X, y = load_diabetes(return_X_y=True)
    estimator = model(random_state=0, **({} if model is DecisionTreeRegressor else {"n_estimators": 15}))
    assert_served_alike(estimator.fit(X, y), X, np.random.default_rng(0))


def test_penguins_with_their_gaps_and_species_names():
    """The numeric columns (two rows without any measurement), the species as strings: classes_
    is an object array, which joblib pickles inline."""
    penguins = load_penguins()
    X = penguins[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]].to_numpy()
    forest = RandomForestClassifier(n_estimators=10, random_state=0).fit(X, penguins["species"].to_numpy())
    assert forest.classes_.dtype == object
    assert_served_alike(forest, X, np.random.default_rng(0))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_plain_pickle_is_read_too(protocol):
    """pickle.dump's arrays come through numpy's own _reconstruct (protocols 2 to 4) or _frombuffer (5)."""
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, load_iris().target_names[y])
    step = build(read(pickle.dumps(forest, protocol=protocol), kinds()))
    assert_scores_alike(forest, step, X)


def test_protocol_1_objects_behind_a_protocol_2_header():
    """copyreg._reconstructor, builtins.object and _codecs.encode, as protocols 0 and 1 write them."""
    X, y = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    step = build(read(b"\x80\x02" + pickle.dumps(tree, protocol=1), kinds()))
    assert_scores_alike(tree, step, X)


def test_a_record_keeps_what_the_pickle_gave():
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=2, max_depth=2, random_state=0).fit(X, y)
    record = read(dumped(forest), kinds())
    assert isinstance(record, Record) and record.kind == "sklearn.ensemble._forest.RandomForestClassifier"
    assert record.args == () and record.state["n_estimators"] == 2 and record.state["_sklearn_version"]
    tree = record.state["estimators_"][0].state["tree_"]
    assert tree.kind == "sklearn.tree._tree.Tree" and tree.args[0] == 4 and tree.args[2] == 1
    assert np.array_equal(tree.state["nodes"]["threshold"], forest.estimators_[0].tree_.threshold)
    assert tree.state["values"].flags.writeable  # read as joblib reads them


def test_a_batch_of_a_thousand_rows_is_quick():
    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    step = served(forest)
    rows = np.resize(X, (1000, X.shape[1]))
    started = time.perf_counter()
    proba = step.predict_proba(rows)
    assert time.perf_counter() - started < 1.0
    assert np.array_equal(proba, forest.predict_proba(rows))


# --- model.pkl refused: a tree that would walk out of its arrays, or forever, or compare nonsense


def forest_record():
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(X, y)
    return read(dumped(forest), kinds())


def edited_tree(record, index=3):
    """The record, its estimators_[index]'s Tree given copies of its arrays (to edit)."""
    tree = record.state["estimators_"][index].state["tree_"]
    tree.state["nodes"] = tree.state["nodes"].copy()
    tree.state["values"] = tree.state["values"].copy()
    return tree.state


def refused(record, *words):
    with pytest.raises(RecordError) as refusal:
        build(record)
    message = str(refusal.value)
    assert "\n" not in message and all(word in message for word in words), message
    return message


def test_a_child_outside_the_tree_is_refused():
    record = forest_record()
    nodes = edited_tree(record)["nodes"]
    nodes["left_child"][0] = 900
    message = refused(record, "RandomForestClassifier", "estimators_[3]", "left child 900 is outside")
    assert message.startswith("RandomForestClassifier: estimators_[3]: ")


def test_a_tree_alone_has_its_links_checked_when_built():
    X, y = load_iris(return_X_y=True)
    record = read(dumped(DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)), kinds())
    nodes = record.state["tree_"].state["nodes"] = record.state["tree_"].state["nodes"].copy()
    nodes["right_child"][0] = nodes["left_child"][0]
    assert refused(record, "has two parents") == f"DecisionTreeClassifier: tree_: node {nodes['left_child'][0]} has two parents"


def test_a_child_before_its_parent_is_refused():
    """A loop: the walk would never reach a leaf."""
    record = forest_record()
    nodes = edited_tree(record)["nodes"]
    second = int(np.flatnonzero(nodes["left_child"] != -1)[1])
    nodes["right_child"][second] = 0
    refused(record, f"node {second}'s right child 0 does not come after it")


def test_a_node_with_two_parents_is_refused():
    record = forest_record()
    nodes = edited_tree(record)["nodes"]
    nodes["right_child"][0] = nodes["left_child"][0]
    refused(record, "has two parents")


def test_a_feature_out_of_range_is_refused():
    record = forest_record()
    edited_tree(record, 0)["nodes"]["feature"][0] = 4
    refused(record, "estimators_[0]", "node 0 splits on feature 4 of 4")


@pytest.mark.parametrize("threshold", [np.nan, -np.inf])
def test_a_threshold_that_is_not_a_number_is_refused(threshold):
    record = forest_record()
    edited_tree(record, 1)["nodes"]["threshold"][0] = threshold
    refused(record, "node 0's threshold")


def test_a_leaf_value_that_is_not_finite_is_refused():
    record = forest_record()
    state = edited_tree(record, 2)
    leaf = int(np.flatnonzero(state["nodes"]["left_child"] == -1)[0])
    state["values"][leaf, 0, 0] = np.inf
    refused(record, "leaf's values are not finite")


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_values_of_the_wrong_dtype_are_refused(dtype):
    record = forest_record()
    state = edited_tree(record)
    state["values"] = state["values"].astype(dtype)
    refused(record, "not float64")


def test_nodes_of_the_wrong_dtype_are_refused():
    record = forest_record()
    state = edited_tree(record)
    state["nodes"] = state["nodes"]["threshold"].copy()
    refused(record, "no field 'left_child'")


def test_a_tree_of_another_number_of_classes_is_refused():
    record = forest_record()
    record.state["estimators_"][1].state["tree_"].args = (4, np.array([2]), 1)
    refused(record, "estimators_[1]", "other than 3 classes")


def test_a_forest_without_trees_or_a_fitted_attribute_is_refused():
    record = forest_record()
    record.state["estimators_"] = []
    refused(record, "estimators_ is not a list of trees")
    record = forest_record()
    del record.state["n_features_in_"]
    refused(record, "n_features_in_ is missing")


def test_rows_a_tree_cannot_take_are_refused():
    X, y = load_iris(return_X_y=True)
    step = served(DecisionTreeClassifier(random_state=0).fit(X, y))
    for rows in (X[:, :3], X[0], np.full((1, 4), np.inf), np.full((1, 4), 1e300)):
        with pytest.raises(ValueError):
            step.predict(rows)


# --- model.pkl refused before anything it names is imported or called


def global_pickle(module, name, argument="touch /tmp/records-test-was-run"):
    """A protocol-4 pickle that calls module.name(argument): STACK_GLOBAL, then REDUCE."""
    def text(value):
        data = value.encode()
        return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE
    return b"\x80\x04" + text(module) + text(name) + b"\x93" + text(argument) + b"\x85R."


def refused_unread(content, *words):
    before = set(sys.modules)
    with pytest.raises(RecordError) as refusal:
        read(content, kinds())
    assert set(sys.modules) == before
    message = str(refusal.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_a_pickle_naming_os_system_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    refused_unread(global_pickle("os", "system", f"touch {marker}"), "os.system", "not read as data")
    assert not marker.exists()


def test_a_pickle_naming_numpy_f2py_main_is_refused_without_importing_it():
    assert "numpy.f2py.__main__" not in sys.modules
    refused_unread(global_pickle("numpy.f2py.__main__", "main"), "numpy.f2py.__main__.main")
    refused_unread(global_pickle("numpy.f2py", "__main__"), "numpy.f2py.__main__")
    assert "numpy.f2py.__main__" not in sys.modules


def test_a_module_not_on_the_list_is_refused_without_importing_it():
    refused_unread(global_pickle("no_such_module_anywhere", "Thing"), "no_such_module_anywhere.Thing")
    refused_unread(global_pickle("sklearn.linear_model._logistic", "LogisticRegression.__init__"))
    refused_unread(global_pickle("builtins", "getattr"), "builtins.getattr")


def test_a_class_not_served_is_refused():
    X, y = load_iris(return_X_y=True)
    content = dumped(LogisticRegression(max_iter=500).fit(X, y))
    with pytest.raises(RecordError, match="LogisticRegression, which is not read as data"):
        read(content, kinds() - {"sklearn.linear_model._logistic.LogisticRegression"})


def test_a_value_only_name_is_not_called():
    """np.log1p and numpy.ndarray may be values in a pickle, but a pickle can't call them."""
    ufunc_call = b"\x80\x04\x8c\x05numpy\x8c\x05log1p\x93K\x01\x85R."
    refused_unread(ufunc_call, "calls a ufunc")
    ndarray_call = b"\x80\x04\x8c\x05numpy\x8c\x07ndarray\x93J\x00\xe1\xf5\x05\x85\x85R."
    refused_unread(ndarray_call, "calls a type")


def test_sizes_a_pickle_announces_are_checked_before_anything_is_allocated():
    huge_bytearray = b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"."
    refused_unread(huge_bytearray, "bytearray larger than itself")
    empty_array = b"\x80\x04\x8c\x16numpy._core.multiarray\x8c\x0c_reconstruct\x93\x8c\x05numpy\x8c\x07ndarray\x93"
    refused_unread(empty_array + b"J\x00\xe1\xf5\x05\x85C\x01b\x87R.", "starts an array other than")


def test_a_key_that_would_take_forever_to_hash_is_refused():
    """A tuple holding the same tuple twice, 60 levels deep: 2**60 parts to hash as a dict key."""
    stream = b"\x80\x04}N"
    for _ in range(60):
        stream += b"2\x86"  # DUP, TUPLE2
    stream += b"Ns."  # the value, SETITEM
    refused_unread(stream, "more than")


@pytest.fixture(scope="module")
def small_forest_pickle():
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0)
    return dumped(forest.fit(X, load_iris().target_names[y]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_a_damaged_pickle_is_refused_with_a_record_error_only(small_forest_pickle, data):
    """Bytes changed, cut or added anywhere: read and build answer or raise RecordError, nothing else
    (and nothing crashes: numpy's own dtype and array state setters are never given unchecked state)."""
    content = bytearray(small_forest_pickle)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(2, len(content) - 1))
        change = data.draw(st.sampled_from(["byte", "cut", "insert"]))
        if change == "byte":
            content[at] = data.draw(st.integers(0, 255))
        elif change == "cut":
            del content[at:at + data.draw(st.integers(1, 64))]
        else:
            content[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        step = build(read(bytes(content), kinds()))
    except RecordError:
        return
    if step.n_features_in == 4:
        assert step.predict_proba(load_iris().data[:5]).shape == (5, step.classes.shape[0])


def test_a_compressed_or_truncated_file_is_refused():
    X, y = load_iris(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(X, y)
    compressed = dumped(forest, compress=3)  # read whole (tests/test_saving.py); cut short, refused
    refused_unread(compressed[:len(compressed) // 2], "compressed (zlib)", "is the file whole?")
    refused_unread(dumped(forest)[:3000])
    refused_unread(b"hello", "not a pickle")


def test_importing_and_using_the_scorers_imports_no_scikit_learn_scipy_pandas_or_joblib(tmp_path):
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.pkl"
    path.write_bytes(dumped(RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)))
    code = (
        "import sys, numpy as np\n"
        "import serving.records, serving.scorers.trees, serving.scorers.boosting\n"
        "from serving.scorers import build, kinds\n"
        f"step = build(serving.records.read(open({str(path)!r}, 'rb').read(), kinds()))\n"
        "step.predict_proba(np.ones((2, 4)))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'sklearn', 'scipy', 'pandas', 'joblib'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_walking_a_record_that_holds_itself_ends():
    from serving.records import Record, walk

    loop = []
    record = Record("sklearn.pipeline.Pipeline", state={"steps": loop})
    loop.append(loop)
    loop.append(record)
    assert list(walk(record)) == [record]
