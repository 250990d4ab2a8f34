"""A fitted StandardScaler + LogisticRegression is `softmax(x @ weights + bias)`: answered with
numpy from model.pkl read as data, without scikit-learn (importing it costs a small instance a
second of CPU and 100 MiB).

model.pkl is read with stand-ins for those classes (safe_pickle.read_parameters), and its numbers
turned into this form at start. That the form gives the pipeline's own answers, the bundle writer
proved with scikit-learn before it wrote model.json's `served_as: data`.
"""

import math

import numpy as np

# The one pipeline that has a linear form: its classes, as a pickle names them.
PIPELINE, SCALER, CLASSIFIER = ("sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
                                "sklearn.linear_model._logistic.LogisticRegression")


class AffineSoftmax:
    """Class probabilities as `softmax(x @ weights + bias)`.

    A row gets the same floats, bit for bit, alone or in a batch of any size: `x @ weights` as
    products summed feature by feature (a matrix product's rounding depends on how many rows it is
    given), and exponentials from math.exp (numpy's own exp may round differently in its
    vectorised loop than for the last elements).
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray, classes: list):
        self.weights, self.bias, self.classes = weights, bias, classes  # (features, classes), (classes,)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities for a (rows, features) array."""
        scores = np.empty((len(rows), self.bias.size))
        block = max(1, 2**20 // self.weights.size)  # rows whose products take at most 8 MiB
        for start in range(0, len(rows), block):
            scores[start:start + block] = (rows[start:start + block, :, np.newaxis] * self.weights).sum(axis=1)
        scores += self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exps = np.fromiter(map(math.exp, scores.ravel().tolist()), np.float64, scores.size).reshape(scores.shape)
        return exps / exps.sum(axis=1, keepdims=True)


def class_path(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def as_list(values):
    """An array's values as JSON's: numpy's integers and strings as Python's."""
    return [value.item() if hasattr(value, "item") else value for value in values]


def affine_softmax(pipeline):
    """The pipeline as an AffineSoftmax if it is StandardScaler + LogisticRegression, else None.

    It takes scikit-learn's objects, or the StandIns safe_pickle reads in their place, alike. The
    numbers are computed the same way on every machine (elementwise, and each bias summed by
    math.fsum, where a matrix product's rounding depends on the CPU).
    """
    steps = getattr(pipeline, "steps", None)
    if class_path(pipeline) != PIPELINE or not isinstance(steps, list) or len(steps) != 2:
        return None
    (_, scaler), (_, classifier) = steps
    if class_path(scaler) != SCALER or class_path(classifier) != CLASSIFIER:
        return None
    n_features, n_classes = scaler.n_features_in_, len(classifier.classes_)
    # As StandardScaler.transform does: the mean taken away only if with_mean, the scale only if with_std.
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n_features)
    scale = scaler.scale_ if scaler.with_std else np.ones(n_features)
    coef, intercept = classifier.coef_, classifier.intercept_  # one row per class; one row in all if binary
    rows = 1 if n_classes == 2 else n_classes
    shapes = [(mean, (n_features,)), (scale, (n_features,)), (coef, (rows, n_features)), (intercept, (rows,))]
    if n_classes < 2 or not all(type(a) is np.ndarray and a.dtype == np.float64 and a.shape == shape for a, shape in shapes):
        return None
    if not all(np.isfinite(a).all() for a, _ in shapes):
        return None
    weights = coef.T / scale[:, np.newaxis]
    shift = mean / scale
    bias = np.array([math.fsum([intercept[k], *(-shift * coef[k]).tolist()]) for k in range(rows)])
    if n_classes == 2:  # one decision function, its probability the logistic: softmax of -d/2 and d/2
        weights, bias = np.hstack([-weights / 2, weights / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    return AffineSoftmax(weights, bias, as_list(classifier.classes_))
