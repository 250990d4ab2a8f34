"""Gradient boosting (GradientBoosting*, HistGradientBoosting*) and the Dummy estimators GradientBoosting
starts from, scored as scikit-learn does, in its order of floating-point operations.

GradientBoosting (sklearn/ensemble/_gb.py, _gradient_boosting.pyx predict_stages): X cast to float32,
raw = the init estimator's raw prediction (zeros for init='zero'; else its probabilities clipped to
[eps, 1 - eps] and mapped by the loss's link, or a regressor's constant), then for each stage in
order raw[:, k] += learning_rate * the leaf value of tree (stage, k). A regressor answers raw; a
classifier the loss's predict_proba of it: expit(raw) (expit(2 raw) for the exponential loss), or
the softmax of sklearn.utils.extmath.

HistGradientBoosting (gradient_boosting.py _raw_predict, _predictor.pyx _predict_from_raw_data):
X as float64, raw = zeros + _baseline_prediction, then for each iteration in order raw[:, k] += the
leaf value of predictor (iteration, k). A node goes left when X <= num_threshold; a missing value
the way missing_go_to_left says; a categorical node goes left when the category's bit is set in
the node's raw_left_cat_bitsets, right when it is a known category (the _BinMapper's), and an
unknown or negative one goes as a missing value. With categorical features, HistGradientBoosting
always fits its own _preprocessor: a ColumnTransformer with an OrdinalEncoder (unknown and missing
values -> NaN) on the categorical columns, put first, and check_array(dtype=float64) on the rest.
That encoder is built with `build` (preprocessing.py's OrdinalEncoder); the rest is read here.

Input: a 2-D array in the columns the model was fitted on (feature_names_in_ order for a
DataFrame). For a categorical column, the values themselves as scikit-learn saw them: numbers, or
strings in an object array (a DataFrame's category or string column), None or NaN for missing.

scipy's expit and logit are computed with the C library's exp, log and log1p, as scipy's own code
calls them (Python's math module calls the same functions), element by element; numpy's exp may
round differently where it uses its own SIMD code.

One difference from scikit-learn, by design: for a HistGradientBoostingClassifier of 8 classes or
more, scikit-learn sums each row's exponentials column after column for a batch (its raw
predictions are a Fortran-ordered array) but pairwise for a single row (a 1-row array is C-ordered
too). Here they are always summed column after column, so a row gets the same floats alone as in a
batch: scikit-learn's batch answer, which for a single row may differ from scikit-learn's in the
last bit.
"""

import math

import numpy as np

from serving.records import RecordError
from serving.scorers import Fields, ScoredOnce, expit, is_nan, is_record, softmax
from serving.scorers.trees import (
    DecisionTreeRegressorStep,
    TreeWalk,
    node_field,
    read_single_output,
    tree_in_ensemble,
    tree_input,
)

LOSS = "sklearn._loss.loss."
LINK = "sklearn._loss.link."
HGB = "sklearn.ensemble._hist_gradient_boosting."
PREDICTOR = HGB + "predictor.TreePredictor"
BIN_MAPPER = HGB + "binning._BinMapper"
COLUMN_TRANSFORMER = "sklearn.compose._column_transformer.ColumnTransformer"
FUNCTION_TRANSFORMER = "sklearn.preprocessing._function_transformer.FunctionTransformer"
PARTIAL = "functools.partial"
CHECK_ARRAY = "sklearn.utils.validation.check_array"
LOSS_NAMES = (
    "HalfBinomialLoss", "HalfMultinomialLoss", "ExponentialLoss", "HalfSquaredError", "AbsoluteError",
    "PinballLoss", "HuberLoss", "HalfPoissonLoss", "HalfGammaLoss",
)
# Pickled inside a fitted model, read as records: the losses (their Cython halves, pickled through
# __pyx_unpickle_* functions, and their links), HistGradientBoosting's parts, and what its
# preprocessor's FunctionTransformer holds. None of them is built by `build`.
NESTED_KINDS = (
    {LOSS + name for name in LOSS_NAMES}
    | {f"sklearn._loss._loss.{prefix}Cy{name}" for name in LOSS_NAMES for prefix in ("", "__pyx_unpickle_")}
    | {LINK + name for name in ("IdentityLink", "LogLink", "LogitLink", "HalfLogitLink", "MultinomialLogit",
                                "Interval")}
    | {"sklearn.tree._tree.Tree", PREDICTOR, BIN_MAPPER, "sklearn.preprocessing._label.LabelEncoder", PARTIAL,
       CHECK_ARRAY}
)
# The loss a classifier's raw predictions go through: its link's kind, and how many trees a stage has.
CLASSIFIER_LOSSES = {
    LOSS + "HalfBinomialLoss": ("LogitLink", "binary"),
    LOSS + "ExponentialLoss": ("HalfLogitLink", "binary"),
    LOSS + "HalfMultinomialLoss": ("MultinomialLogit", "multiclass"),
}
REGRESSOR_LOSSES = {
    LOSS + "HalfSquaredError": "IdentityLink", LOSS + "AbsoluteError": "IdentityLink",
    LOSS + "PinballLoss": "IdentityLink", LOSS + "HuberLoss": "IdentityLink",
    LOSS + "HalfPoissonLoss": "LogLink", LOSS + "HalfGammaLoss": "LogLink",
}
EPS = np.finfo(np.float64).eps


def logit(p):
    """scipy.special.logit, element by element: log(p / (1 - p)), but log1p(s) - log1p(-s) with
    s = 2 (p - 0.5) for p in [0.3, 0.65], where that loses less precision (scipy's xsf log_exp.h)."""
    def one(x):
        if x < 0.3 or x > 0.65:
            return math.log(x / (1 - x))
        s = 2 * (x - 0.5)
        return math.log1p(s) - math.log1p(-s)
    return np.array([one(x) for x in p.tolist()], dtype=np.float64)


def multinomial_link(proba):
    """MultinomialLogit.link: log(p / gmean(p)), scipy.stats.gmean being exp(mean(log(p))) by row."""
    geometric_mean = np.exp(np.mean(np.log(proba), axis=1))
    return np.log(proba / geometric_mean[:, None])


def binary_proba(positive):
    """HalfBinomialLoss.predict_proba: [1 - p, p]."""
    proba = np.empty((positive.shape[0], 2))
    proba[:, 1] = positive
    proba[:, 0] = 1 - proba[:, 1]
    return proba


def n_rows(X, who):
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"{who}: expected a 2-D array")
    return X.shape[0]


def read_loss(fields, losses):
    """The kind of the loss record _loss, one of `losses`, with the link it is expected to hold."""
    loss = fields.value("_loss")
    kind = getattr(loss, "kind", type(loss).__name__)
    if not is_record(loss) or kind not in losses:
        raise fields.refuse(f"_loss is a {kind}, which is not served")
    expected = losses[kind]
    expected_link = expected[0] if isinstance(expected, tuple) else expected
    link = loss.state.get("link")
    if not is_record(link) or link.kind != LINK + expected_link:
        raise fields.refuse(f"_loss {kind.rpartition('.')[2]} has a link other than {expected_link}")
    return kind


class DummyClassifierStep:
    """DummyClassifier with strategy 'prior' (GradientBoostingClassifier's init) or 'most_frequent'."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        read_single_output(fields)
        self.strategy = fields.choice("_strategy", ("prior", "most_frequent"))
        if fields.boolean("sparse_output_"):
            raise fields.refuse("sparse_output_ is not served")
        self.classes = fields.classes()
        self.class_prior = fields.array("class_prior_", (self.classes.shape[0],))
        if ((self.class_prior < 0) | (self.class_prior > 1)).any():
            raise fields.refuse("class_prior_ holds a value outside [0, 1]")

    def predict_proba(self, X):
        n = n_rows(X, "DummyClassifier")
        if self.strategy == "prior":
            return np.ones((n, 1)) * self.class_prior
        proba = np.zeros((n, self.classes.shape[0]))
        proba[:, self.class_prior.argmax()] = 1.0
        return proba

    def predict(self, X):
        return np.ravel(np.tile([self.classes[self.class_prior.argmax()]], [n_rows(X, "DummyClassifier"), 1]))


class DummyRegressorStep:
    """DummyRegressor (GradientBoostingRegressor's init): its constant_, whatever the strategy."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        read_single_output(fields)
        self.constant = fields.array("constant_", (1, 1), dtype=None)
        if self.constant.dtype.kind not in "iuf" or not np.isfinite(self.constant).all():
            raise fields.refuse("constant_ is not a finite number")

    def predict(self, X):
        return np.ravel(np.full((n_rows(X, "DummyRegressor"), 1), self.constant, dtype=self.constant.dtype))


class GradientBoostingRegressorStep:
    """GradientBoostingRegressor: the init's prediction, plus learning_rate times each stage's leaf."""

    init_step = DummyRegressorStep

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        self.read_outputs()
        if fields.integer("n_trees_per_iteration_", minimum=1) != self.n_trees_per_stage:
            raise fields.refuse(f"n_trees_per_iteration_ is not {self.n_trees_per_stage}")
        self.learning_rate = fields.number("learning_rate")
        self.init = self.read_init(build)
        self.read_stages(build)

    def read_outputs(self):
        self.loss = read_loss(self.fields, REGRESSOR_LOSSES)
        self.n_trees_per_stage = 1

    def read_init(self, build):
        init = self.fields.value("init_")
        if isinstance(init, str) and init == "zero":
            return None
        if getattr(init, "kind", None) != "sklearn.dummy." + self.init_step.__name__[:-4]:
            raise self.fields.refuse(f"init_ is a {getattr(init, 'kind', type(init).__name__)}; only "
                                     f"{self.init_step.__name__[:-4]} or 'zero' are served")
        try:
            step = build(init)
        except RecordError as error:
            raise self.fields.refuse(f"init_: {error}") from None
        if type(step) is not self.init_step or step.n_features_in != self.n_features_in:
            raise self.fields.refuse(f"init_ is not a {self.init_step.__name__[:-4]} of {self.n_features_in} features")
        return step

    def read_stages(self, build):
        estimators = self.fields.array("estimators_", (None, self.n_trees_per_stage), dtype=object, finite=False)
        if estimators.shape[0] == 0:
            raise self.fields.refuse("estimators_ holds no stage")
        trees = []
        for (stage, k), record in np.ndenumerate(estimators):  # stage after stage, as predict_stages
            step = tree_in_ensemble(record, DecisionTreeRegressorStep, build,
                                    lambda problem, where=f"estimators_[{stage}, {k}]": self.fields.refuse(where + problem))
            if step.n_features_in != self.n_features_in:
                raise self.fields.refuse(f"estimators_[{stage}, {k}] is not a regression tree of "
                                         f"{self.n_features_in} features")
            trees.append(step.tree)
        self.walk = TreeWalk(trees)
        self.scaled_leaf_values = self.learning_rate * self.walk.values  # predict_stages adds scale * value

    def raw_predictions(self, X):
        X32 = tree_input(X, self.n_features_in, self.fields.class_name, allow_nan=False)
        return self.walk.add_leaf_values(X32, self.init_raw_predictions(X32), self.scaled_leaf_values,
                                         self.n_trees_per_stage)

    def init_raw_predictions(self, X32):
        if self.init is None:
            return np.zeros((X32.shape[0], self.n_trees_per_stage))
        return self.init.predict(X32).astype(np.float64).reshape(-1, 1)  # the identity link

    def predict(self, X):
        return self.raw_predictions(X).ravel()


class GradientBoostingClassifierStep(ScoredOnce, GradientBoostingRegressorStep):
    """GradientBoostingClassifier: raw predictions as the regressor's, through the loss's link."""

    init_step = DummyClassifierStep

    def read_outputs(self):
        self.loss = read_loss(self.fields, CLASSIFIER_LOSSES)
        self.classes = self.fields.classes()
        n_classes = self.classes.shape[0]
        if self.fields.integer("n_classes_") != n_classes:
            raise self.fields.refuse(f"n_classes_ is not the {n_classes} classes of classes_")
        binary = CLASSIFIER_LOSSES[self.loss][1] == "binary"
        if binary != (n_classes == 2):
            raise self.fields.refuse(f"its loss {self.loss.rpartition('.')[2]} does not fit {n_classes} classes")
        self.n_trees_per_stage = 1 if binary else n_classes

    def read_init(self, build):
        init = super().read_init(build)
        if init is not None and init.classes.shape[0] != self.classes.shape[0]:
            raise self.fields.refuse("init_ was fitted on another number of classes")
        return init

    def init_raw_predictions(self, X32):
        """_init_raw_predictions: the init's probabilities, clipped to [eps, 1 - eps], through the link."""
        if self.init is None:
            return np.zeros((X32.shape[0], self.n_trees_per_stage))
        proba = self.init.predict_proba(X32)
        if self.n_trees_per_stage == 1:
            proba = proba[:, 1]
        proba = np.clip(proba, EPS, 1 - EPS, dtype=np.float64)
        if self.loss == LOSS + "HalfMultinomialLoss":
            return multinomial_link(proba)
        raw = logit(proba)
        if self.loss == LOSS + "ExponentialLoss":
            raw = 0.5 * raw  # HalfLogitLink
        return raw.reshape(-1, 1)

    def scores(self, X):  # decision_function
        raw = self.raw_predictions(X)
        return raw.ravel() if self.n_trees_per_stage == 1 else raw

    def labels(self, raw):
        encoded = (raw >= 0).astype(int) if raw.ndim == 1 else np.argmax(raw, axis=1)
        return self.classes[encoded]

    def probabilities(self, raw):
        if raw.ndim == 2:
            return softmax(raw, sum_columns_in_order=False)
        return binary_proba(expit(2 * raw if self.loss == LOSS + "ExponentialLoss" else raw))


def read_bin_mapper(fields, n_features):
    """From HistGradientBoosting's _bin_mapper: which features are categorical, and the bitsets of
    their known categories with each feature's row in them (make_known_categories_bitsets); the
    bitsets have one more row, of zeros, for the numeric features."""
    mapper = fields.value("_bin_mapper")
    if not is_record(mapper) or mapper.kind != BIN_MAPPER:
        raise fields.refuse(f"_bin_mapper is a {getattr(mapper, 'kind', type(mapper).__name__)}")
    mapper_fields = Fields(mapper)
    is_categorical = mapper_fields.array("is_categorical_", (n_features,), dtype=np.uint8).astype(bool)
    thresholds = mapper_fields.value("bin_thresholds_")
    if not isinstance(thresholds, list) or len(thresholds) != n_features:
        raise fields.refuse(f"_bin_mapper's bin_thresholds_ is not a list for {n_features} features")
    categorical = np.flatnonzero(is_categorical)
    feature_row = np.full(n_features, categorical.shape[0], dtype=np.intp)
    feature_row[categorical] = np.arange(categorical.shape[0])
    bitsets = np.zeros((categorical.shape[0] + 1, 8), dtype=np.uint32)
    for row, feature in enumerate(categorical.tolist()):
        known = mapper_fields.array(f"bin_thresholds_[{feature}]", (None,), value=thresholds[feature])
        if ((known != np.floor(known)) | (known < 0) | (known > 255)).any():
            raise fields.refuse(f"_bin_mapper's categories of feature {feature} are not codes from 0 to 255")
        for category in known.astype(np.intp).tolist():
            bitsets[row, category >> 5] |= np.uint32(1 << (category & 31))
    return is_categorical, bitsets, feature_row


class PredictorNodes:
    """One of HistGradientBoosting's TreePredictors, checked, as TreeWalk's arrays, with its
    categorical splits: is_categorical and each one's row of raw_left_cat_bitsets."""

    def __init__(self, record, n_features, is_categorical_feature, refuse):
        if not is_record(record) or record.kind != PREDICTOR:
            raise refuse(f"it is a {getattr(record, 'kind', type(record).__name__)}, not a TreePredictor")
        nodes, bitsets = record.state.get("nodes"), record.state.get("raw_left_cat_bitsets")
        if not isinstance(nodes, np.ndarray) or nodes.ndim != 1 or nodes.shape[0] == 0:
            raise refuse("its nodes are not a 1-D array of nodes")
        if not isinstance(bitsets, np.ndarray) or bitsets.dtype != np.uint32 or bitsets.ndim != 2 or (
                bitsets.shape[1] != 8):
            raise refuse("its raw_left_cat_bitsets are not (n, 8) uint32")
        self.left_bitsets = bitsets
        self.values = node_field(nodes, "value", "f", refuse).astype(np.float64)[:, np.newaxis]
        self.feature = node_field(nodes, "feature_idx", "iu", refuse).astype(np.intp)
        self.threshold = node_field(nodes, "num_threshold", "f", refuse).astype(np.float64)
        self.missing_left = node_field(nodes, "missing_go_to_left", "ub", refuse).astype(bool)
        self.left = node_field(nodes, "left", "iu", refuse).astype(np.intp)
        self.right = node_field(nodes, "right", "iu", refuse).astype(np.intp)
        self.is_leaf = node_field(nodes, "is_leaf", "ub", refuse).astype(bool)
        self.is_categorical = node_field(nodes, "is_categorical", "ub", refuse).astype(bool) & ~self.is_leaf
        self.bitset_index = node_field(nodes, "bitset_idx", "iu", refuse).astype(np.intp)
        self.n_nodes, self.refuse = nodes.shape[0], refuse  # PredictorWalk checks all the predictors' links at once
        self.check_splits(n_features, is_categorical_feature, refuse)

    def check_splits(self, n_features, is_categorical_feature, refuse):
        internal = ~self.is_leaf
        for problem, bad in (
            ("splits on a feature out of range", internal & ((self.feature < 0) | (self.feature >= n_features))),
            ("has a threshold that is NaN or -inf", internal & ~self.is_categorical & (
                np.isnan(self.threshold) | (self.threshold == -np.inf))),
            ("has a bitset index out of range", self.is_categorical & (
                (self.bitset_index < 0) | (self.bitset_index >= self.left_bitsets.shape[0]))),
            ("is a leaf whose value is not finite", self.is_leaf & ~np.isfinite(self.values[:, 0])),
        ):
            if bad.any():
                raise refuse(f"node {int(np.argmax(bad))} {problem}")
        categorical_on_numeric = self.is_categorical & ~is_categorical_feature[np.where(internal, self.feature, 0)]
        if categorical_on_numeric.any():
            raise refuse(f"node {int(np.argmax(categorical_on_numeric))} splits on a numeric feature by category")


class PredictorWalk(TreeWalk):
    """TreeWalk with HistGradientBoosting's categorical splits (_predict_one_from_raw_data)."""

    def __init__(self, predictors, known_bitsets, feature_row):
        super().__init__(predictors)
        self.is_categorical = np.concatenate([predictor.is_categorical for predictor in predictors])
        starts = np.cumsum([0] + [predictor.left_bitsets.shape[0] for predictor in predictors])
        left_bitsets = np.concatenate([p.left_bitsets for p in predictors])
        bitset_row = np.concatenate([p.bitset_index + start for p, start in zip(predictors, starts)])
        self.category_table(left_bitsets, bitset_row, known_bitsets, feature_row[self.feature])

    def category_table(self, left_bitsets, bitset_row, known_bitsets, known_row):
        """For each categorical split, which way each of the 256 codes goes, made once: left if the
        code's bit is set in the node's bitset; right if it is a known category (the _BinMapper's);
        else (unknown) the way missing values go. Other nodes share a row that is never read."""
        nodes = np.flatnonzero(self.is_categorical)
        self.table_row = np.zeros(self.is_categorical.shape[0], dtype=np.intp)
        self.table_row[nodes] = np.arange(nodes.shape[0])
        codes = np.arange(256)
        word, bit = codes >> 5, (codes & 31).astype(np.uint32)
        in_left = (left_bitsets[bitset_row[nodes]][:, word] >> bit) & 1
        known = (known_bitsets[known_row[nodes]][:, word] >> bit) & 1
        unknown = self.missing_left[nodes][:, np.newaxis]
        self.table = np.where(in_left == 1, True, np.where(known == 1, False, unknown)) if nodes.size else (
            np.zeros((1, 256), dtype=bool))

    def read_nodes(self, predictors):
        """The predictors' node fields side by side (each read and checked by PredictorNodes)."""
        for name in ("feature", "threshold", "missing_left", "values"):
            setattr(self, name, np.concatenate([getattr(predictor, name) for predictor in predictors]))
        return tuple(np.concatenate([getattr(predictor, name) for predictor in predictors])
                     for name in ("left", "right", "is_leaf"))

    def goes_left(self, value, node):
        go_left = value <= np.take(self.threshold, node)
        categorical = np.take(self.is_categorical, node)
        if categorical.any():  # only where a node splits by category: the bitset lookups cost the most
            go_left[categorical] = self.category_goes_left(value[categorical], node[categorical])
        missing = np.isnan(value)
        if missing.any():
            go_left = np.where(missing, np.take(self.missing_left, node), go_left)
        return go_left

    def category_goes_left(self, value, node):
        """The node's table's way for the value's code; a negative value goes as a missing one. The
        Cython casts the value to uint8: the encoder's codes are whole numbers from 0 to 254 (NaN is
        handled before)."""
        code = np.clip(np.nan_to_num(value, nan=0.0), 0, 255).astype(np.intp)
        return np.where(value < 0, np.take(self.missing_left, node), self.table[np.take(self.table_row, node), code])


def same_mask(columns, mask):
    return isinstance(columns, np.ndarray) and columns.dtype == bool and columns.shape == mask.shape and (
        np.array_equal(columns, mask))


def selects_nothing(columns):
    if isinstance(columns, np.ndarray):
        return columns.dtype == bool and not columns.any()
    return isinstance(columns, list) and all(isinstance(column, (bool, np.bool_)) and not column for column in columns)


def check_float64_function(function, refuse):
    """The FunctionTransformer HistGradientBoosting gives its numeric columns: check_array(dtype=[float64],
    ensure_all_finite=False), as a functools.partial."""
    state = function.state if is_record(function) and function.kind == FUNCTION_TRANSFORMER else {}
    partial = state.get("func")
    partial_state = partial.state if is_record(partial) and partial.kind == PARTIAL else {}
    keywords, args = partial_state.get("keywords"), partial_state.get("args")
    dtype = keywords.get("dtype") if type(keywords) is dict else None
    if not (getattr(partial_state.get("func"), "kind", None) == CHECK_ARRAY and type(args) is tuple and not args
            and type(keywords) is dict and set(keywords) == {"dtype", "ensure_all_finite"}
            and type(dtype) is list and len(dtype) == 1
            and dtype[0] is np.float64 and keywords["ensure_all_finite"] is False):
        raise refuse("its numerical transformer is not check_array(dtype=[float64], ensure_all_finite=False)")
    if state.get("validate") is not False or state.get("kw_args") is not None or state.get("inverse_func") is not None:
        raise refuse("its numerical transformer has settings HistGradientBoosting does not give it")


class CategoricalInput:
    """HistGradientBoosting's _preprocessor: its categorical columns through its OrdinalEncoder
    (built with `build`), then the others as float64, side by side (a ColumnTransformer's hstack)."""

    def __init__(self, record, is_categorical, build, refuse):
        if not is_record(record) or record.kind != COLUMN_TRANSFORMER:
            raise refuse("it is not a ColumnTransformer")
        fields = Fields(record)
        self.n_features_in = is_categorical.shape[0]
        if fields.n_features_in() != self.n_features_in:
            raise refuse(f"it is not a ColumnTransformer of {self.n_features_in} features")
        if fields.value("sparse_output_", False) is not False or fields.value("transformer_weights", None) is not None:
            raise refuse("it has settings HistGradientBoosting does not give it")
        encoder, function = self.read_transformers(fields.value("transformers_"), is_categorical, refuse)
        check_float64_function(function, refuse)
        self.encoder = self.read_encoder(encoder, int(is_categorical.sum()), build, refuse)
        self.categorical_columns = np.flatnonzero(is_categorical)
        self.numeric_columns = np.flatnonzero(~is_categorical)

    @staticmethod
    def read_transformers(transformers, is_categorical, refuse):
        """transformers_: ("encoder", encoder, the categorical mask), ("numerical", function, the rest),
        and maybe ("remainder", "drop", no column)."""
        if not isinstance(transformers, list) or len(transformers) not in (2, 3) or not all(
                type(item) is tuple and len(item) == 3 and isinstance(item[0], str) for item in transformers):
            raise refuse("its transformers_ are not 2 or 3 (name, transformer, columns)")
        (encoder_name, encoder, encoder_columns), (numeric_name, function, numeric_columns) = transformers[:2]
        if encoder_name != "encoder" or not same_mask(encoder_columns, is_categorical) or numeric_name != (
                "numerical") or not same_mask(numeric_columns, ~is_categorical):
            raise refuse("its transformers are not the encoder of the categorical columns, then the numerical one")
        if len(transformers) == 3:
            name, remainder, columns = transformers[2]
            if name != "remainder" or not (isinstance(remainder, str) and remainder == "drop") or not (
                    selects_nothing(columns)):
                raise refuse("its remainder is not an empty 'drop'")
        return encoder, function

    @staticmethod
    def read_encoder(record, n_categorical, build, refuse):
        settings = Fields(record) if is_record(record) else None
        handle_unknown = settings.value("handle_unknown", None) if settings is not None else None
        if not (isinstance(handle_unknown, str) and handle_unknown == "use_encoded_value") or not all(
                is_nan(settings.value(key, None)) for key in ("unknown_value", "encoded_missing_value")):
            raise refuse("its encoder does not encode unknown and missing values as NaN")
        try:
            encoder = build(record)
        except RecordError as error:
            raise refuse(f"its encoder: {error}") from None
        if not hasattr(encoder, "transform") or encoder.n_features_in != n_categorical:
            raise refuse(f"its encoder does not transform {n_categorical} columns")
        return encoder

    def transform(self, X):
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(f"HistGradientBoosting: X should be 2-D with {self.n_features_in} columns")
        encoded = self.encoder.transform(X[:, self.categorical_columns])
        return np.hstack([encoded, float64_input(X[:, self.numeric_columns], self.numeric_columns.shape[0])])


def float64_input(X, n_features, who="HistGradientBoosting"):
    """check_array(dtype=[float64], ensure_all_finite=False): NaN and infinity pass."""
    if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != n_features:
        raise ValueError(f"{who}: X should be 2-D with {n_features} columns")
    try:
        return np.ascontiguousarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{who}: X holds a value that is not a number ({error})") from None


class HistGradientBoostingRegressorStep:
    """HistGradientBoostingRegressor: _baseline_prediction plus each iteration's leaf, through the
    loss's inverse link (the identity, or exp for the poisson and gamma losses)."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        self.read_outputs()
        if fields.integer("n_trees_per_iteration_", minimum=1) != self.n_trees_per_iteration:
            raise fields.refuse(f"n_trees_per_iteration_ is not {self.n_trees_per_iteration}")
        self.baseline = fields.array("_baseline_prediction", (1, self.n_trees_per_iteration))
        is_categorical, known_bitsets, feature_row = read_bin_mapper(fields, self.n_features_in)
        self.categorical_input = self.read_preprocessor(build, is_categorical)
        predictors = self.read_predictors(is_categorical)
        self.walk = PredictorWalk(predictors, known_bitsets, feature_row)

    def read_outputs(self):
        self.loss = read_loss(self.fields, REGRESSOR_LOSSES)
        self.n_trees_per_iteration = 1

    def read_preprocessor(self, build, is_categorical):
        """None, or the _preprocessor a model with categorical features has; their columns then come
        first, as the _bin_mapper (fitted on the preprocessor's output) has them."""
        fields = self.fields
        preprocessor = fields.value("_preprocessor", None)
        if preprocessor is None:
            if is_categorical.any() or fields.value("is_categorical_", None) is not None:
                raise fields.refuse("it has categorical features but no _preprocessor")
            return None
        mask = fields.array("is_categorical_", (self.n_features_in,), dtype=bool)
        remapped = fields.array("_is_categorical_remapped", (self.n_features_in,), dtype=bool)
        n_categorical = int(mask.sum())
        if not np.array_equal(remapped, is_categorical) or remapped[:n_categorical].sum() != n_categorical:
            raise fields.refuse("_is_categorical_remapped does not put the categorical features first")
        return CategoricalInput(preprocessor, mask, build, lambda problem: fields.refuse(f"_preprocessor: {problem}"))

    def read_predictors(self, is_categorical):
        predictors = self.fields.value("_predictors")
        per_iteration = self.n_trees_per_iteration
        if not isinstance(predictors, list) or not predictors or not all(
                isinstance(row, list) and len(row) == per_iteration for row in predictors):
            raise self.fields.refuse(f"_predictors is not a list of lists of {per_iteration} TreePredictors")
        nodes = []
        for iteration, row in enumerate(predictors):
            for k, predictor in enumerate(row):
                def refuse(problem, where=f"_predictors[{iteration}][{k}]"):
                    return self.fields.refuse(f"{where}: {problem}")
                nodes.append(PredictorNodes(predictor, self.n_features_in, is_categorical, refuse))
        return nodes

    def raw_predictions(self, X):
        """_raw_predict: zeros (Fortran-ordered) plus the baseline, then each iteration's leaves in turn."""
        if self.categorical_input is not None:
            X = self.categorical_input.transform(X)
        else:
            X = float64_input(X, self.n_features_in, self.fields.class_name)
        raw = np.zeros((X.shape[0], self.n_trees_per_iteration))
        raw += self.baseline
        return self.walk.add_leaf_values(X, raw, self.walk.values, self.n_trees_per_iteration)

    def predict(self, X):
        raw = self.raw_predictions(X).ravel()
        return np.exp(raw) if REGRESSOR_LOSSES[self.loss] == "LogLink" else raw


class HistGradientBoostingClassifierStep(ScoredOnce, HistGradientBoostingRegressorStep):
    """HistGradientBoostingClassifier: raw predictions as the regressor's, through expit or softmax."""

    def read_outputs(self):
        self.loss = read_loss(self.fields, {kind: link for kind, link in CLASSIFIER_LOSSES.items()
                                            if kind != LOSS + "ExponentialLoss"})
        self.classes = self.fields.classes()
        binary = self.loss == LOSS + "HalfBinomialLoss"
        if binary != (self.classes.shape[0] == 2):
            raise self.fields.refuse(f"its loss {self.loss.rpartition('.')[2]} does not fit "
                                     f"{self.classes.shape[0]} classes")
        self.n_trees_per_iteration = 1 if binary else self.classes.shape[0]

    def scores(self, X):
        return self.raw_predictions(X)

    def labels(self, raw):
        # > 0, not >= 0, as scikit-learn's: argmax of [0.5, 0.5] is the first class
        encoded = (raw.ravel() > 0).astype(int) if raw.shape[1] == 1 else np.argmax(raw, axis=1)
        return self.classes[encoded]

    def probabilities(self, raw):
        if raw.shape[1] == 1:
            return binary_proba(expit(raw[:, 0]))
        return softmax(raw, sum_columns_in_order=True)


STEPS = {
    "sklearn.dummy.DummyClassifier": DummyClassifierStep,
    "sklearn.dummy.DummyRegressor": DummyRegressorStep,
    "sklearn.ensemble._gb.GradientBoostingClassifier": GradientBoostingClassifierStep,
    "sklearn.ensemble._gb.GradientBoostingRegressor": GradientBoostingRegressorStep,
    HGB + "gradient_boosting.HistGradientBoostingClassifier": HistGradientBoostingClassifierStep,
    HGB + "gradient_boosting.HistGradientBoostingRegressor": HistGradientBoostingRegressorStep,
}
