"""Scalers, SimpleImputer and the two categorical encoders, computed as scikit-learn does.

Every operation here is elementwise (a subtraction, a division, a lookup), so the output is
scikit-learn's bit for bit. Input is a 2-D float64 array, or an object array for a table of mixed
columns (strings, numbers, None or NaN for a missing cell).

One deliberate difference: in an object array scikit-learn treats NaN as missing but None as an
ordinary value, whereas a DataFrame column of strings (how a notebook fits these steps) stores a
missing cell as NaN. A request's missing cell is null, so here None counts as NaN: SimpleImputer
imputes it (when missing_values is NaN), and the encoders encode it as the NaN category when the
encoder has no None category of its own.
"""

import numbers

import numpy as np

from serving.scorers import Fields, as_float_matrix, is_nan, is_record

PREFIX = "sklearn.preprocessing."
MISSING_INDICATOR = "sklearn.impute._base.MissingIndicator"
# SimpleImputer(add_indicator=True) holds a fitted MissingIndicator, read here as part of it.
NESTED_KINDS = {MISSING_INDICATOR}


class ScalerStep:
    """The scalers' shared reading of n_features_in_ and of one float64 vector per feature.

    None of these steps sets accepts_densified_sparse: on a sparse matrix from the step before,
    scikit-learn's scalers multiply by 1 / scale_ instead of dividing, so the Pipeline refuses that.
    """

    def __init__(self, record, build):
        self.fields = Fields(record)
        self.n_features_in = self.fields.n_features_in()
        self.name = self.fields.class_name

    def vector(self, key, used=True):
        """A per-feature float64 vector, or None when the step doesn't use it (None is stored then)."""
        if not used:
            return None
        return self.fields.array(key, (self.n_features_in,))

    def floats(self, X):
        """X as check_array makes it for a scaler: float64, NaN allowed (passed through), no infinity."""
        return as_float_matrix(X, self.n_features_in, self.name, allow_nan=True)


class CenteringScalerStep(ScalerStep):
    """(X - center) / scale, each part only when its flag says: StandardScaler's and RobustScaler's."""

    CENTER = ("with_mean", "mean_")  # the flag, and the fitted array
    SCALE = ("with_std", "scale_")

    def __init__(self, record, build):
        super().__init__(record, build)
        (centers, center), (scales, scale) = self.CENTER, self.SCALE
        self.centers, self.scales = self.fields.boolean(centers), self.fields.boolean(scales)
        self.center, self.scale = self.vector(center, self.centers), self.vector(scale, self.scales)

    def transform(self, X):
        X = self.floats(X)
        if self.centers:
            X = X - self.center
        if self.scales:
            X = X / self.scale
        return X

    def inverse_transform(self, X):
        X = self.floats(X)
        if self.scales:
            X = X * self.scale
        if self.centers:
            X = X + self.center
        return X


class StandardScalerStep(CenteringScalerStep):
    """(X - mean_) / scale_, each part only when with_mean / with_std."""


class MinMaxScalerStep(ScalerStep):
    """X * scale_ + min_, clipped to feature_range when clip."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.scale = self.vector("scale_")
        self.min = self.vector("min_")
        self.clip = self.fields.boolean("clip")
        feature_range = self.fields.value("feature_range")
        if not (isinstance(feature_range, (tuple, list)) and len(feature_range) == 2
                and all(isinstance(bound, numbers.Real) and np.isfinite(bound) for bound in feature_range)):
            raise self.fields.refuse(f"feature_range is {feature_range!r}, not two finite numbers")
        self.low, self.high = (float(bound) for bound in feature_range)

    def transform(self, X):
        X = self.floats(X) * self.scale
        X += self.min
        if self.clip:
            np.clip(X, self.low, self.high, out=X)
        return X

    def inverse_transform(self, X):
        X = self.floats(X) - self.min
        X /= self.scale
        return X


class MaxAbsScalerStep(ScalerStep):
    """X / scale_, clipped to [-1, 1] when clip."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.scale = self.vector("scale_")
        self.clip = self.fields.boolean("clip", default=False)

    def transform(self, X):
        X = self.floats(X) / self.scale
        if self.clip:
            np.clip(X, -1.0, 1.0, out=X)
        return X

    def inverse_transform(self, X):
        return self.floats(X) * self.scale


class RobustScalerStep(CenteringScalerStep):
    """(X - center_) / scale_, each part only when with_centering / with_scaling."""

    CENTER = ("with_centering", "center_")
    SCALE = ("with_scaling", "scale_")


def as_dtype(value):
    """A numpy dtype, whether the reader rebuilt it or left it as a record of numpy.dtype's
    arguments ('f8', 'O', ...); None for anything else."""
    if isinstance(value, np.dtype):
        return value
    if is_record(value) and value.kind == "numpy.dtype" and value.args and isinstance(value.args[0], str):
        try:
            return np.dtype(value.args[0])
        except TypeError:
            return None
    return None


def missing_mask(X, missing_values):
    """Which cells are missing, as sklearn.utils._mask._get_mask says (but None counts as NaN)."""
    if is_nan(missing_values):
        if X.dtype.kind == "f":
            return np.isnan(X)
        return np.frompyfunc(lambda value: value is None or is_nan(value), 1, 1)(X).astype(bool)
    if missing_values is None:
        return np.frompyfunc(lambda value: value is None, 1, 1)(X).astype(bool)
    return np.asarray(X == missing_values, dtype=bool)


class SimpleImputerStep:
    """Missing cells replaced by statistics_ (whatever the strategy computed at fit), features
    without a statistic dropped unless keep_empty_features, and MissingIndicator's columns after."""

    STRATEGIES = ("mean", "median", "most_frequent", "constant")

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        fields.choice("strategy", self.STRATEGIES)
        self.missing_values = fields.value("missing_values")
        if not (self.missing_values is None or isinstance(self.missing_values, (numbers.Real, str))):
            raise fields.refuse(f"missing_values={self.missing_values!r} is not served")
        fit_dtype = as_dtype(fields.value("_fit_dtype"))
        fill_dtype = as_dtype(fields.value("_fill_dtype"))
        if not all(isinstance(dtype, np.dtype) and dtype.kind in "biufO" for dtype in (fit_dtype, fill_dtype)):
            raise fields.refuse(f"_fit_dtype {fit_dtype!r} or _fill_dtype {fill_dtype!r} is not served")
        self.numeric = fit_dtype.kind != "O"
        statistics = fields.array("statistics_", (self.n_features_in,), dtype=None, finite=False)
        self.read_statistics(statistics, fill_dtype, fields.boolean("keep_empty_features"))
        self.indicated = self.read_indicator(fields.boolean("add_indicator"))

    def read_statistics(self, statistics, fill_dtype, keep_empty_features):
        """The value each kept feature is filled with, cast as transform casts it."""
        if statistics.dtype.kind not in "biufO":
            raise self.fields.refuse(f"statistics_ is {statistics.dtype}, not numbers or objects")
        if keep_empty_features:
            self.kept = np.arange(self.n_features_in)
        else:  # a feature that was all missing at fit has NaN for its statistic, and is dropped
            self.kept = np.flatnonzero([not is_nan(value) for value in statistics.tolist()])
        try:
            fills = statistics[self.kept].astype(fill_dtype)
            self.fills = fills.astype(np.float64) if self.numeric else fills.astype(object)
        except (TypeError, ValueError):
            raise self.fields.refuse(f"statistics_ can't be cast to {fill_dtype}") from None
        if self.numeric and np.isinf(self.fills).any():
            raise self.fields.refuse("statistics_ holds infinity")

    def read_indicator(self, add_indicator):
        """The input columns MissingIndicator reports (features_), or None without one."""
        indicator = self.fields.value("indicator_")
        if not add_indicator:
            return None
        if not is_record(indicator) or indicator.kind != MISSING_INDICATOR or not isinstance(indicator.state, dict):
            raise self.fields.refuse("add_indicator is set but indicator_ is not a MissingIndicator")
        state = indicator.state
        theirs = state.get("missing_values")
        same_missing = theirs is self.missing_values or (is_nan(theirs) and is_nan(self.missing_values)) or (
            type(theirs) is type(self.missing_values) and theirs == self.missing_values)
        sparse = state.get("sparse")
        if not same_missing or not (sparse is False or isinstance(sparse, str) and sparse == "auto") or state.get(
                "error_on_new") is not False:
            raise self.fields.refuse("its MissingIndicator is configured in a way not served")
        features = state.get("features_")
        if not isinstance(features, np.ndarray) or features.ndim != 1 or features.dtype.kind not in "iu" or (
                features.size and (features.min() < 0 or features.max() >= self.n_features_in)):
            raise self.fields.refuse("indicator_.features_ is not a list of input columns")
        return features.astype(np.intp)

    def transform(self, X):
        if self.numeric:
            X = as_float_matrix(X, self.n_features_in, "SimpleImputer", allow_nan=is_nan(self.missing_values))
        else:
            X = object_matrix(X, self.n_features_in, "SimpleImputer")
            if not is_nan(self.missing_values) and missing_mask(X, np.nan).any():
                raise ValueError("SimpleImputer: X holds NaN, which was not missing at fit")
        missing = missing_mask(X, self.missing_values)
        imputed = X[:, self.kept]  # fancy indexing copies: the request's X is left alone
        kept_missing = missing[:, self.kept]
        imputed[kept_missing] = np.broadcast_to(self.fills, imputed.shape)[kept_missing]
        if self.indicated is None:
            return imputed
        indicator = missing[:, self.indicated]
        return np.hstack([imputed, indicator.astype(imputed.dtype)])


def object_matrix(X, n_features, who):
    if not isinstance(X, np.ndarray) or X.ndim != 2:
        raise ValueError(f"{who}: expected a 2-D array")
    if X.shape[1] != n_features:
        raise ValueError(f"{who}: X has {X.shape[1]} features, but {n_features} are expected")
    return X.astype(object)


class CategoryLookup:
    """One feature's categories_: the index of each input value, -1 for a value not seen at fit.
    Values match as in scikit-learn's _encode: by Python equality (a dict), NaN by being NaN."""

    def __init__(self, categories, fields, feature):
        values = categories.tolist()
        self.size = len(values)
        self.nan_index = self.size - 1 if values and is_nan(values[-1]) else -1
        if any(is_nan(value) for value in values[:-1]):
            raise fields.refuse(f"categories_[{feature}] holds NaN before its end")
        self.index = {value: position for position, value in enumerate(values) if not is_nan(value)}
        if len(self.index) + (self.nan_index >= 0) != self.size:
            raise fields.refuse(f"categories_[{feature}] holds a category twice")
        self.none_index = self.index.get(None, self.nan_index)

    def codes(self, column):
        """Category indices of a 1-D array of values."""
        return np.fromiter((self.code(value) for value in column.tolist()), dtype=np.intp, count=column.shape[0])

    def code(self, value):
        if value is None:
            return self.none_index
        if is_nan(value):
            return self.nan_index
        try:
            return self.index.get(value, -1)
        except TypeError:  # an unhashable value is no category
            return -1


class EncoderStep:
    """What OneHotEncoder and OrdinalEncoder share: categories_ per feature, and the grouping of
    infrequent categories (min_frequency / max_categories) into one."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        self.name = fields.class_name
        categories = fields.value("categories_")
        if not isinstance(categories, list) or len(categories) != self.n_features_in:
            count = len(categories) if isinstance(categories, list) else type(categories).__name__
            raise fields.refuse(f"categories_ has {count} features but n_features_in_ is {self.n_features_in}")
        self.lookups = []
        for feature, feature_categories in enumerate(categories):
            array = fields.array(f"categories_[{feature}]", (None,), dtype=None, finite=False, value=feature_categories)
            if array.dtype.kind not in "biufOU" or array.size == 0:
                raise fields.refuse(f"categories_[{feature}] is not a list of categories")
            self.lookups.append(CategoryLookup(array, fields, feature))
        dtype = fields.value("dtype")
        if not (dtype is np.float64 or is_record(dtype) and dtype.kind == "numpy.float64"
                or isinstance(dtype, str) and dtype == "float64"):
            raise fields.refuse(f"dtype {dtype!r} is not served (only numpy.float64)")
        self.infrequent = self.read_infrequent()

    def read_infrequent(self):
        """Per feature, the array mapping a category index to its index after grouping, or None."""
        if not self.fields.boolean("_infrequent_enabled"):
            return [None] * self.n_features_in
        mappings = self.fields.value("_default_to_infrequent_mappings")
        indices = self.fields.value("_infrequent_indices")
        if not (isinstance(mappings, list) and isinstance(indices, list) and len(mappings) == len(indices)
                == self.n_features_in):
            raise self.fields.refuse("the infrequent-category mappings don't match n_features_in_")
        for feature, (mapping, infrequent) in enumerate(zip(mappings, indices)):
            if (mapping is None) != (infrequent is None):
                raise self.fields.refuse(f"feature {feature}'s infrequent mapping and indices disagree")
            if mapping is None:
                continue
            lookup = self.lookups[feature]
            n_mapped = lookup.size - (1 if self.ignores_missing(feature) else 0)
            self.fields.array(f"_default_to_infrequent_mappings[{feature}]", (n_mapped,), dtype=None, value=mapping)
            self.fields.array(f"_infrequent_indices[{feature}]", (None,), dtype=None, value=infrequent)
            integers = mapping.dtype.kind in "iu" and infrequent.dtype.kind in "iu"
            if not integers or 0 in (infrequent.size, mapping.size) or (
                    mapping.min() < 0 or infrequent.min() < 0 or infrequent.max() >= n_mapped):
                raise self.fields.refuse(f"feature {feature}'s infrequent mapping is not a list of indices")
        return [None if mapping is None else (mapping.astype(np.intp), int(infrequent[0]))
                for mapping, infrequent in zip(mappings, indices)]

    def ignores_missing(self, feature):
        """Whether the NaN category stays out of the infrequent grouping (OrdinalEncoder's rule)."""
        return False

    def codes(self, X):
        """(n, d) category indices, -1 where a value was not seen at fit."""
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(f"{self.name}: X should be 2-D with {self.n_features_in} features")
        if X.dtype.kind == "f" and np.isinf(X).any():
            raise ValueError(f"{self.name}: X holds infinity")
        codes = np.empty(X.shape, dtype=np.intp)
        for feature, lookup in enumerate(self.lookups):
            codes[:, feature] = lookup.codes(X[:, feature])
        return codes

    def refuse_unknown(self, codes):
        unknown = codes < 0
        if unknown.any():
            columns = sorted(set(np.nonzero(unknown)[1].tolist()))
            raise ValueError(f"{self.name}: found unknown categories in columns {columns} during transform")


class OneHotEncoderStep(EncoderStep):
    """One column per category kept (after grouping infrequent ones and dropping), float64 ones;
    an unknown value gives a row of zeros ('ignore'), the infrequent column ('infrequent_if_exist',
    'warn') or an error."""

    def __init__(self, record, build):
        super().__init__(record, build)
        self.handle_unknown = self.fields.choice("handle_unknown", ("error", "ignore", "infrequent_if_exist", "warn"))
        self.outputs_sparse = self.fields.boolean("sparse_output")
        drops = self.read_drops()
        self.output_columns, self.unknown_columns, widths = [], [], []
        for feature, lookup in enumerate(self.lookups):
            columns, unknown_column, width = self.feature_columns(feature, lookup.size, drops[feature])
            self.output_columns.append(columns)
            self.unknown_columns.append(unknown_column)
            widths.append(width)
        recorded = self.fields.value("_n_features_outs")
        if not isinstance(recorded, list) or [int(width) for width in recorded if isinstance(
                width, numbers.Integral)] != widths:
            raise self.fields.refuse(f"_n_features_outs is {recorded!r}, not {widths}")
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)

    def read_drops(self):
        """Per feature, the index (after grouping) of the category dropped, or None."""
        drops = self.fields.value("_drop_idx_after_grouping")
        public = self.fields.value("drop_idx_")
        if drops is None or public is None:
            if drops is not public:
                raise self.fields.refuse("drop_idx_ and _drop_idx_after_grouping disagree")
            return [None] * self.n_features_in
        drops = self.fields.array("_drop_idx_after_grouping", (self.n_features_in,), dtype=None, value=drops)
        public = self.fields.array("drop_idx_", (self.n_features_in,), dtype=None, value=public)
        for feature, (drop, public_drop) in enumerate(zip(drops.tolist(), public.tolist())):
            for value in (drop, public_drop):
                if value is not None and not (isinstance(value, numbers.Integral) and 0 <= value < self.lookups[
                        feature].size):
                    raise self.fields.refuse(f"drop_idx_[{feature}] is {value!r}, out of range")
            if (drop is None) != (public_drop is None):
                raise self.fields.refuse(f"drop_idx_[{feature}] and _drop_idx_after_grouping disagree")
        return [None if drop is None else int(drop) for drop in drops.tolist()]

    def feature_columns(self, feature, n_categories, drop):
        """The output column (within the feature's block) of each category index, -1 for none;
        the column an unknown value goes to (-1 for none); and the block's width."""
        infrequent = self.infrequent[feature]
        grouped = np.arange(n_categories) if infrequent is None else infrequent[0]
        n_grouped = int(grouped.max()) + 1
        if drop is not None and drop >= n_grouped:
            raise self.fields.refuse(f"drop_idx_[{feature}] is {drop}, out of range")
        columns = grouped.copy()
        if drop is not None:
            columns = np.where(grouped == drop, -1, np.where(grouped > drop, grouped - 1, grouped))
        unknown_column = -1
        if infrequent is not None and self.handle_unknown in ("infrequent_if_exist", "warn"):
            unknown_column = int(columns[infrequent[1]])
        return columns, unknown_column, n_grouped - (drop is not None)

    def transform(self, X):
        codes = self.codes(X)
        if self.handle_unknown == "error":
            self.refuse_unknown(codes)
        out = np.zeros((codes.shape[0], int(self.offsets[-1])))
        rows = np.arange(codes.shape[0])
        for feature, columns in enumerate(self.output_columns):
            code = codes[:, feature]
            column = np.where(code >= 0, columns[code], self.unknown_columns[feature])
            hot = column >= 0
            out[rows[hot], self.offsets[feature] + column[hot]] = 1.0
        return out


class OrdinalEncoderStep(EncoderStep):
    """Each value's category index (after grouping infrequent ones) as a float64; a missing value
    gives encoded_missing_value, an unknown one unknown_value ('use_encoded_value') or an error."""

    def __init__(self, record, build):
        fields = Fields(record)
        missing = fields.value("_missing_indices")
        if not isinstance(missing, dict):
            raise fields.refuse("_missing_indices is not a dict")
        self.missing_indices = missing
        super().__init__(record, build)
        for feature, index in missing.items():
            if not (isinstance(feature, int) and 0 <= feature < self.n_features_in
                    and self.lookups[feature].nan_index == index):
                raise self.fields.refuse(f"_missing_indices {missing!r} doesn't match categories_")
        self.handle_unknown = self.fields.choice("handle_unknown", ("error", "use_encoded_value"))
        self.unknown_value = self.read_code("unknown_value") if self.handle_unknown == "use_encoded_value" else None
        self.encoded_missing_value = self.read_code("encoded_missing_value")

    def read_code(self, key):
        value = self.fields.value(key)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or np.isinf(value):
            raise self.fields.refuse(f"{key} is {value!r}, not an integer or NaN")
        return float(value)

    def ignores_missing(self, feature):
        return feature in self.missing_indices

    def transform(self, X):
        codes = self.codes(X)
        if self.handle_unknown == "error":
            self.refuse_unknown(codes)
        out = np.empty(codes.shape)
        for feature in range(self.n_features_in):
            code = codes[:, feature]
            encoded = code.copy()
            if feature in self.missing_indices:
                missing = code == self.missing_indices[feature]
            else:
                missing = np.zeros(code.shape, dtype=bool)
            grouping = self.infrequent[feature]
            if grouping is not None:
                mapped = (code >= 0) & ~missing
                encoded[mapped] = grouping[0][code[mapped]]
            out[:, feature] = encoded
            out[missing, feature] = self.encoded_missing_value
            out[code < 0, feature] = self.unknown_value if self.unknown_value is not None else np.nan
        return out


STEPS = {
    PREFIX + "_data.StandardScaler": StandardScalerStep,
    PREFIX + "_data.MinMaxScaler": MinMaxScalerStep,
    PREFIX + "_data.MaxAbsScaler": MaxAbsScalerStep,
    PREFIX + "_data.RobustScaler": RobustScalerStep,
    "sklearn.impute._base.SimpleImputer": SimpleImputerStep,
    PREFIX + "_encoders.OneHotEncoder": OneHotEncoderStep,
    PREFIX + "_encoders.OrdinalEncoder": OrdinalEncoderStep,
}
