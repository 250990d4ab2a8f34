"""A fitted pipeline's steps scored with numpy, from model.pkl read as data (serving/records.py).

Each family module (compose, preprocessing, text, linear, and the tree and boosting ones) maps the kinds
it serves, "module.Name" as the pickle names the class, to a step class in its STEPS. A step is
built as `Step(record, build)`: its __init__ checks every field it will use and raises RecordError
naming the class and the problem, so that a record it can't reproduce exactly is refused before
any request is scored. `build` is this module's dispatch, handed down so that Pipeline and
ColumnTransformer can build the records nested in them.

The helpers below are shared by the family modules: `Fields` reads one record's state with the
checks every step needs, and `as_float_matrix` converts a request's rows the way scikit-learn's
check_array does.
"""

import importlib
import math
import numbers

import numpy as np

from serving.records import RecordError

# The family module that serves the classes of each module a pickle names, so that a bundle
# imports only the families its pickle needs: compiled code is loaded at every cold start.
FAMILY_OF_MODULE = {
    "sklearn.pipeline": "compose",
    "sklearn.compose._column_transformer": "compose",
    "sklearn.compose._target": "compose",
    "sklearn.preprocessing._function_transformer": "compose",
    "sklearn.preprocessing._data": "preprocessing",
    "sklearn.preprocessing._encoders": "preprocessing",
    "sklearn.feature_extraction.text": "text",
    "sklearn.impute._base": "preprocessing",
    "sklearn.linear_model._logistic": "linear",
    "sklearn.linear_model._base": "linear",
    "sklearn.linear_model._ridge": "linear",
    "sklearn.linear_model._coordinate_descent": "linear",
    "sklearn.linear_model._stochastic_gradient": "linear",
    "sklearn.linear_model._sgd_fast": "linear",
    "sklearn.svm._classes": "linear",
    "sklearn.tree._classes": "trees",
    "sklearn.tree._tree": "trees",
    "sklearn.ensemble._forest": "trees",
    "sklearn.dummy": "boosting",
    "sklearn.ensemble._gb": "boosting",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting": "boosting",
    "sklearn.ensemble._hist_gradient_boosting.predictor": "boosting",
    "sklearn.ensemble._hist_gradient_boosting.binning": "boosting",
    "sklearn._loss.loss": "boosting",
    "sklearn._loss.link": "boosting",
    "sklearn._loss._loss": "boosting",
    "sklearn.preprocessing._label": "boosting",
    "sklearn.utils.validation": "boosting",
    "functools": "boosting",
}
FAMILIES = ("compose", "preprocessing", "text", "linear", "trees", "boosting")


def family(kind):
    """The family module that may serve `kind` ("module.Name"), imported on first use (not at the
    top: the families import this module's helpers); None for a module no family serves."""
    name = FAMILY_OF_MODULE.get(kind.rpartition(".")[0])
    return None if name is None else importlib.import_module(f"{__name__}.{name}")


def family_kinds(module):
    return set(module.STEPS) | set(getattr(module, "NESTED_KINDS", ()))


class ServedKinds:
    """The kinds records.read may find in a served model.pkl: the steps', and those of the objects
    pickled inside a step that it reads or leaves alone but never builds (a module's NESTED_KINDS:
    SimpleImputer's MissingIndicator, SGDClassifier's loss). `kind in SERVED` imports one family."""

    def __contains__(self, kind):
        module = family(kind)
        return module is not None and kind in family_kinds(module)


SERVED = ServedKinds()


def kinds():
    """Every kind served, as a set: every family imported (for the tools and the tests)."""
    return set().union(*(family_kinds(importlib.import_module(f"{__name__}.{name}")) for name in FAMILIES))


def build(record):
    """The step that scores `record` (checked), or RecordError if its kind isn't served."""
    kind = getattr(record, "kind", None) if is_record(record) else None
    module = family(kind) if isinstance(kind, str) else None
    step_class = module.STEPS.get(kind) if module is not None else None
    if step_class is None:
        kind = getattr(record, "kind", type(record).__name__)
        raise RecordError(f"it holds a {kind}, which is not served as data")
    return step_class(record, build)


def is_record(value):
    return hasattr(value, "kind") and hasattr(value, "state")


class ScoredOnce:
    """A classifier whose labels and probabilities both come from one computation, `scores` (a
    forest's mean leaf values, a boosting's or a linear model's decisions): predict_with_proba
    gives both from one, as a batch needs them, and each is what predict or predict_proba gives."""

    def predict(self, X):
        return self.labels(self.scores(X))

    def predict_proba(self, X):
        return self.probabilities(self.scores(X))

    def predict_with_proba(self, X):
        scores = self.scores(X)
        return self.labels(scores), self.probabilities(scores)


def is_nan(value):
    """Whether a scalar is NaN (a float or numpy float), as scikit-learn's is_scalar_nan says."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isnan(value)


class Fields:
    """One record's state, read with checks: each refusal is a RecordError naming the class."""

    def __init__(self, record):
        self.record = record
        self.class_name = record.kind.rsplit(".", 1)[-1]
        self.state = record.state if isinstance(record.state, dict) else {}
        if not isinstance(record.state, dict):
            raise self.refuse("its pickled state is not a dict of attributes")

    def refuse(self, problem):
        return RecordError(f"{self.class_name}: {problem}")

    def has(self, key):
        return key in self.state

    def value(self, key, default=...):
        if key not in self.state:
            if default is not ...:
                return default
            raise self.refuse(f"{key} is missing (not fitted, or another scikit-learn version)")
        return self.state[key]

    def choice(self, key, allowed, default=...):
        """A hyper-parameter that must be one of `allowed` (strings, None, booleans)."""
        value = self.value(key, default)
        if not any(value is option or (isinstance(value, str) and value == option) for option in allowed):
            raise self.refuse(f"{key}={value!r} is not served (only {', '.join(map(repr, allowed))})")
        return value

    def boolean(self, key, default=...):
        value = self.value(key, default)
        if not isinstance(value, (bool, np.bool_)):
            raise self.refuse(f"{key} is {value!r}, not a boolean")
        return bool(value)

    def integer(self, key, minimum=0, default=...):
        value = self.value(key, default)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < minimum:
            raise self.refuse(f"{key} is {value!r}, not an integer >= {minimum}")
        return int(value)

    def number(self, key, default=...):
        """A finite real number (a Python or numpy scalar), as a float."""
        value = self.value(key, default)
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise self.refuse(f"{key} is {value!r}, not a finite number")
        return float(value)

    def n_features_in(self):
        return self.integer("n_features_in_", minimum=1)

    def array(self, key, shape, dtype=np.float64, finite=True, value=...):
        """A numpy array of exactly `dtype` (None: any) and `shape` (None for any length on an axis)."""
        array = self.value(key) if value is ... else value
        if not isinstance(array, np.ndarray):
            raise self.refuse(f"{key} is a {type(array).__name__}, not a numpy array")
        if dtype is not None and array.dtype != np.dtype(dtype):
            raise self.refuse(f"{key} is {array.dtype}, not {np.dtype(dtype)}")
        if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
            wanted = "(" + ", ".join("any" if want is None else str(want) for want in shape) + ")"
            raise self.refuse(f"{key} is {array.shape} but should be {wanted}")
        if finite and array.dtype.kind == "f" and not np.isfinite(array).all():
            raise self.refuse(f"{key} holds NaN or infinity")
        return array

    def classes(self):
        """classes_: the labels a classifier predicts, distinct, in scikit-learn's sorted order."""
        classes = self.value("classes_")
        if not isinstance(classes, np.ndarray) or classes.ndim != 1 or classes.dtype.kind not in "biuOUf":
            raise self.refuse("classes_ is not a 1-D numpy array of labels")
        if classes.shape[0] < 2:
            raise self.refuse(f"classes_ holds {classes.shape[0]} class; at least 2 are needed")
        if classes.dtype.kind == "f" and not np.isfinite(classes).all():
            raise self.refuse("classes_ holds NaN or infinity")
        if len(set(classes.tolist())) != classes.shape[0]:
            raise self.refuse("classes_ holds a label twice")
        return classes

    def feature_names(self, n_features):
        """feature_names_in_ (the DataFrame's column names at fit) as a list of str, or None."""
        if not self.has("feature_names_in_"):
            return None
        names = self.array("feature_names_in_", (n_features,), dtype=None)
        if not all(isinstance(name, str) for name in names.tolist()):
            raise self.refuse("feature_names_in_ holds a name that is not a string")
        return names.tolist()


def as_float_matrix(X, n_features, who, allow_nan=True):
    """X as a C-ordered float64 matrix, as check_array(dtype=float64) makes it: object cells are
    converted with numpy's cast, so None becomes NaN and a string that isn't a number is an error."""
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"{who}: expected a 2-D array")
    if X.shape[1] != n_features:
        raise ValueError(f"{who}: X has {X.shape[1]} features, but {n_features} are expected")
    if X.dtype.kind not in "biufO":
        raise ValueError(f"{who}: X of dtype {X.dtype} is not numeric")
    try:
        X = np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{who}: X holds a value that is not a number ({error})") from None
    if allow_nan:
        if np.isinf(X).any():
            raise ValueError(f"{who}: X holds infinity")
    elif not np.isfinite(X).all():
        raise ValueError(f"{who}: X holds NaN or infinity")
    return X


def expit(raw):
    """scipy.special.expit, element by element: 1 / (1 + exp(-x)), exp overflowing to inf giving 0.
    Python's math.exp is the C library's exp, as scipy's is; numpy's own may round otherwise (AVX-512)."""
    def one(x):
        try:
            return 1.0 / (1.0 + math.exp(-x))
        except OverflowError:
            return 0.0
    raw = np.asarray(raw, dtype=np.float64)
    return np.array([one(x) for x in raw.ravel().tolist()], dtype=np.float64).reshape(raw.shape)


def softmax(raw, sum_columns_in_order=False):
    """sklearn.utils.extmath.softmax: shift by the row's maximum, exp, divide by the row's sum; the
    sum either as numpy sums a C-ordered row, or column after column (HistGradientBoosting's many classes: see boosting.py)."""
    shifted = raw - raw.max(axis=1).reshape(-1, 1)
    np.exp(shifted, out=shifted)
    if sum_columns_in_order:
        total = np.zeros(shifted.shape[0])
        for column in range(shifted.shape[1]):
            total = total + shifted[:, column]
    else:
        total = np.ascontiguousarray(shifted).sum(axis=1)
    shifted /= total.reshape(-1, 1)
    return shifted
