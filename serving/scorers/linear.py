"""Linear models: a decision function `X @ coef_.T + intercept_`, then a label or probabilities.

scikit-learn computes the product with BLAS, whose order of summation depends on the CPU and on
how many rows come at once. Here each row's dot product is summed feature by feature, left to
right (np.add.accumulate, whose order numpy fixes): a row alone and the same row in a batch get
the same floats, which are within a few ulps of scikit-learn's. That is also the order scipy
uses when the features come in as a sparse matrix (a sparse ColumnTransformer or OneHotEncoder
before the model), so for those the scores are scikit-learn's exactly. A text vectorizer's
SparseRows are summed over their stored entries in their order, as scipy's csr_matvecs does
(serving/scorers/sparse.py).

Probabilities follow scikit-learn's own path: expit of the decision (scipy's expit is
1 / (1 + exp(-x)), the same formula) for binary logistic regression and SGD's log loss, softmax
for multinomial logistic regression, and the OvR normalisation and modified Huber clipping of
SGDClassifier.
"""

import numpy as np

from serving.scorers import Fields, ScoredOnce, as_float_matrix, expit, softmax
from serving.scorers.sparse import SparseRows

PREFIX = "sklearn.linear_model."
PROBABILISTIC_SGD_LOSSES = ("log_loss", "modified_huber")
# SGDClassifier pickles its loss object (_loss_function_); predicting never uses it.
NESTED_KINDS = {f"sklearn.linear_model._sgd_fast.{name}" for name in (
    "Hinge", "ModifiedHuber", "SquaredHinge", "Log", "EpsilonInsensitive", "SquaredEpsilonInsensitive", "Huber",
    "SquaredLoss")} | {f"sklearn._loss._loss.{name}" for name in (
        "CyHalfBinomialLoss", "CyHalfSquaredError", "CyHuberLoss", "CyHalfMultinomialLoss")}


def dot_rows(X, coef):
    """X (n, d) times coef (k, d) transposed, each sum taken over the features in order."""
    n_rows, n_features = X.shape
    scores = np.zeros((n_rows, coef.shape[0]))
    if n_features == 0:
        return scores
    for output, weights in enumerate(coef):
        scores[:, output] = np.add.accumulate(X * weights, axis=1)[:, -1]
    return scores


def normalise_ovr(prob):
    """Each row divided by its sum, as LinearClassifierMixin._predict_proba_lr does for OvR;
    a row of zeros becomes uniform."""
    prob_sum = prob.sum(axis=1)
    all_zero = prob_sum == 0
    if all_zero.any():
        prob[all_zero, :] = 1
        prob_sum[all_zero] = prob.shape[1]
    prob /= prob_sum.reshape(prob.shape[0], -1)
    return prob


class LinearStep:
    """What every linear model shares: n_features_in_, coef_ and intercept_ checked, and the
    decision function."""

    # A sparse matrix from the step before is summed in the same order (see the module's doc).
    accepts_densified_sparse = True
    accepts_sparse_rows = True

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        self.name = fields.class_name

    def read_coefficients(self, several_outputs):
        """coef_ as (k, d) and intercept_ as (k,), whatever shape the class stores them in:
        a classifier's coef_ is (k, d), a single-target regressor's (d,)."""
        fields, n_features = self.fields, self.n_features_in
        coef = fields.array("coef_", (None,) * getattr(fields.value("coef_"), "ndim", 1))
        if several_outputs and coef.ndim != 2 or not several_outputs and coef.ndim != 1:
            problem = "not one row per class" if several_outputs else "a model of several targets is not served"
            raise fields.refuse(f"coef_ is {coef.shape}: {problem}")
        if coef.shape[-1] != n_features:
            raise fields.refuse(f"coef_ is {coef.shape} but n_features_in_ is {n_features}")
        coef = coef.reshape(-1, n_features)
        intercept = fields.value("intercept_")
        if isinstance(intercept, np.ndarray) and intercept.ndim > 0:
            intercept = fields.array("intercept_", (coef.shape[0],))
        else:  # 0.0 without fit_intercept, or a numpy scalar for a single target
            intercept = np.full(coef.shape[0], fields.number("intercept_"))
        return np.ascontiguousarray(coef), intercept

    def decision_function(self, X):
        """(n,) scores for one output, (n, k) for several, as scikit-learn's decision_function."""
        if isinstance(X, SparseRows):
            scores = X.checked(self.n_features_in, self.name).dot_rows(self.coef) + self.intercept
        else:
            scores = dot_rows(as_float_matrix(X, self.n_features_in, self.name, allow_nan=False), self.coef) + self.intercept
        return scores[:, 0] if scores.shape[1] == 1 else scores


class LinearRegressorStep(LinearStep):
    """LinearRegression, Ridge, Lasso, ElasticNet, SGDRegressor, LinearSVR: predict is the
    decision function of a single target."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.coef, self.intercept = self.read_coefficients(several_outputs=False)

    def predict(self, X):
        return self.decision_function(X)


class LinearClassifierStep(LinearStep):
    """LinearSVC and the base of the classifiers: the label of the positive decision (one row of
    coef_, two classes) or of the largest one, first on a tie as np.argmax takes it."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.classes = self.fields.classes()
        self.coef, self.intercept = self.read_coefficients(several_outputs=True)
        n_rows, n_classes = self.coef.shape[0], self.classes.shape[0]
        if n_rows != n_classes and not (n_rows == 1 and n_classes == 2):
            raise self.fields.refuse(f"coef_ has {n_rows} rows but classes_ holds {n_classes} classes")

    def predict(self, X):
        return self.labels(self.decision_function(X))

    def labels(self, scores):
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes.take(indices)


class LogisticRegressionStep(ScoredOnce, LinearClassifierStep):
    """Binary: [1 - expit(d), expit(d)]; more classes: softmax of the decisions (multinomial, the
    only scheme LogisticRegression fits since scikit-learn 1.8)."""

    def __init__(self, record, build):
        super().__init__(record, build)
        if self.classes.shape[0] == 2 and self.coef.shape[0] != 1:
            raise self.fields.refuse(f"coef_ is {self.coef.shape}: a binary model has one row")

    def scores(self, X):
        return self.decision_function(X)

    def probabilities(self, scores):
        if scores.ndim == 1:
            positive = expit(scores)
            return np.stack([1 - positive, positive], axis=1)
        return softmax(scores)


class SGDClassifierStep(LinearClassifierStep):
    """predict_proba only for loss='log_loss' (expit, OvR-normalised) and 'modified_huber'
    ((clip(d, -1, 1) + 1) / 2, normalised), as SGDClassifier offers it."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.loss = self.fields.value("loss")
        if not isinstance(self.loss, str):
            raise self.fields.refuse(f"loss is {self.loss!r}, not a name")
        if self.loss in PROBABILISTIC_SGD_LOSSES and self.classes.shape[0] == 2 and self.coef.shape[0] != 1:
            raise self.fields.refuse(f"coef_ is {self.coef.shape}: a binary model has one row")

    @property
    def predict_proba(self):
        """Absent (AttributeError, so hasattr says False) for the losses without probabilities."""
        if self.loss not in PROBABILISTIC_SGD_LOSSES:
            raise AttributeError(f"SGDClassifier with loss={self.loss!r} has no predict_proba")
        return self.probabilities

    def probabilities(self, X):
        scores = self.decision_function(X)
        if self.loss == "log_loss":
            prob = expit(scores)
        else:  # modified_huber
            prob = (np.clip(scores, -1, 1) + 1.0) / 2.0
        if prob.ndim == 1:
            return np.stack([1.0 - prob, prob], axis=1)
        return normalise_ovr(prob)


STEPS = {
    PREFIX + "_logistic.LogisticRegression": LogisticRegressionStep,
    PREFIX + "_base.LinearRegression": LinearRegressorStep,
    PREFIX + "_ridge.Ridge": LinearRegressorStep,
    PREFIX + "_coordinate_descent.Lasso": LinearRegressorStep,
    PREFIX + "_coordinate_descent.ElasticNet": LinearRegressorStep,
    PREFIX + "_stochastic_gradient.SGDClassifier": SGDClassifierStep,
    PREFIX + "_stochastic_gradient.SGDRegressor": LinearRegressorStep,
    "sklearn.svm._classes.LinearSVC": LinearClassifierStep,
    "sklearn.svm._classes.LinearSVR": LinearRegressorStep,
}
