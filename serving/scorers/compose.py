"""The steps that hold other steps: Pipeline, ColumnTransformer, TransformedTargetRegressor, and
FunctionTransformer with one of a few numpy functions.

A Pipeline passes X through its transformers and asks its last step for the answer. A
ColumnTransformer gives each of its fitted transformers its own columns and puts the outputs side
by side, as np.hstack does; when scikit-learn would have returned a sparse matrix instead
(sparse_output_), the same values come out dense, and the Pipeline only lets a step that sums a
sparse row in the same order take them (the linear models: see linear.py).

Text: a vectorizer (text.py) takes a column of documents and says so with `takes_documents = True`
(and `n_features_in = 1`: it is one field of a request); so does a Pipeline or a
TransformedTargetRegressor that starts with one, which is then given the documents as a 1-D array
or a 2-D array of one column. A ColumnTransformer gives a vectorizer the column its scalar selector
names (a column name or index), 1-D, as scikit-learn hands it a Series; a scalar selector of any
other transformer is refused, as is a vectorizer given a list of columns. A vectorizer's output is
SparseRows (sparse.py), not a dense matrix: a step says `outputs_sparse_rows`, and the Pipeline lets
only a step with `accepts_sparse_rows` take it. A ColumnTransformer with such a part and
sparse_output_ stacks its outputs into SparseRows, as scipy.sparse.hstack would; without
sparse_output_, scikit-learn makes every part dense, and so does it here.
"""

import numbers

import numpy as np

from serving.scorers import Fields, as_float_matrix, is_record
from serving.scorers.sparse import SparseRows

# The numpy functions a FunctionTransformer or TransformedTargetRegressor may apply: elementwise,
# so scikit-learn and this module compute the same floats from the same input.
SERVED_UFUNCS = {ufunc.__name__: ufunc for ufunc in (np.log1p, np.log, np.exp, np.sqrt, np.expm1)}


def is_string(value, text):
    return isinstance(value, str) and value == text


class PipelineStep:
    """Transformers in order, then the last step's predict, predict_proba or transform."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        if fields.value("transform_input", None) is not None:
            raise fields.refuse("transform_input is not served")
        steps = fields.value("steps")
        if not isinstance(steps, list) or not steps or not all(
                isinstance(step, tuple) and len(step) == 2 and isinstance(step[0], str) for step in steps):
            raise fields.refuse("steps is not a list of (name, estimator) pairs")
        self.steps = [build(estimator) for _, estimator in steps
                      if not (estimator is None or is_string(estimator, "passthrough"))]
        if not self.steps:
            raise fields.refuse("every step is 'passthrough'")
        if steps[0][1] is None or is_string(steps[0][1], "passthrough"):
            raise fields.refuse("its first step is 'passthrough', so its number of features is unknown")
        ends_in_passthrough = steps[-1][1] is None or is_string(steps[-1][1], "passthrough")
        self.check_chain(self.steps if ends_in_passthrough else self.steps[:-1])
        self.n_features_in = self.steps[0].n_features_in
        self.offer_final_step_methods(None if ends_in_passthrough else self.steps[-1])

    def check_chain(self, transformers):
        """Each step before the last transforms, and a sparse output only goes into a step that
        sums a sparse row in the order used here (scikit-learn's scalers, say, compute otherwise)."""
        for step in transformers:
            if not hasattr(step, "transform"):
                raise self.fields.refuse(f"a {type(step).__name__} comes before the last step but can't transform")
        for before, after in zip(self.steps, self.steps[1:]):
            if getattr(after, "takes_documents", False):
                raise self.fields.refuse(f"a {type(after).__name__} takes documents but comes after another step")
            if getattr(before, "outputs_sparse_rows", False):
                accepted = getattr(after, "accepts_sparse_rows", False)
            else:
                accepted = not getattr(before, "outputs_sparse", False) or getattr(after, "accepts_densified_sparse", False)
            if not accepted:
                raise self.fields.refuse(f"a sparse output goes into a {type(after).__name__}, which computes "
                                         "differently on sparse input")

    def offer_final_step_methods(self, final):
        """The Pipeline has the methods its last step has (instance attributes, so hasattr tells),
        takes what its first step takes and gives what its last step gives."""
        for name in ("outputs_sparse", "outputs_sparse_rows"):
            setattr(self, name, getattr(self.steps[-1], name, False))
        for name in ("accepts_densified_sparse", "accepts_sparse_rows", "takes_documents"):
            setattr(self, name, getattr(self.steps[0], name, False))
        if final is None:  # the last step is 'passthrough': the Pipeline is all transformers
            self.transform = self.transform_all
        for method in ("predict", "predict_proba", "predict_with_proba", "transform"):
            if hasattr(final, method):
                setattr(self, method, self.through(getattr(final, method)))
        if hasattr(final, "classes"):
            self.classes = final.classes
        if all(hasattr(step, "inverse_transform") for step in self.steps):
            self.inverse_transform = self.inverse_all  # a Pipeline of scalers as a target transformer

    def transform_all(self, X):
        for step in self.steps:
            X = step.transform(X)
        return X

    def inverse_all(self, X):
        for step in reversed(self.steps):
            X = step.inverse_transform(X)
        return X

    def through(self, final_method):
        def method(X):
            for step in self.steps[:-1]:
                X = step.transform(X)
            return final_method(X)
        return method


def is_scalar_selector(columns):
    """A column name or index, for which scikit-learn hands the transformer one column, 1-D."""
    return isinstance(columns, (str, numbers.Integral)) and not isinstance(columns, (bool, np.bool_))


def resolve_columns(fields, columns, names, n_features):
    """The input column indices a ColumnTransformer selector picks, as _get_column_indices does:
    a list, or one index for a scalar selector."""
    if callable(columns) or is_record(columns):
        raise fields.refuse("a callable column selector is not served")
    if is_scalar_selector(columns):
        return column_index(fields, columns, names, n_features)
    if isinstance(columns, slice):
        return slice_columns(fields, columns, names, n_features)
    if isinstance(columns, np.ndarray):
        columns = columns.tolist()
    if not isinstance(columns, (list, tuple)):
        raise fields.refuse(f"the column selector {columns!r} is not served")
    if all(isinstance(column, (bool, np.bool_)) for column in columns) and columns:
        if len(columns) != n_features:
            raise fields.refuse(f"a boolean column mask has {len(columns)} entries for {n_features} features")
        return [index for index, chosen in enumerate(columns) if chosen]
    return [column_index(fields, column, names, n_features) for column in columns]


def column_index(fields, column, names, n_features):
    if isinstance(column, str):
        if names is None or column not in names:
            raise fields.refuse(f"column {column!r} is not among feature_names_in_")
        return names.index(column)
    if isinstance(column, numbers.Integral) and not isinstance(column, (bool, np.bool_)):
        if not -n_features <= column < n_features:
            raise fields.refuse(f"column {column} is out of range for {n_features} features")
        return int(column) % n_features
    raise fields.refuse(f"the column selector holds {column!r}, neither a name nor an index")


def slice_columns(fields, columns, names, n_features):
    """A slice of indices (end excluded), or of names (end included, as pandas' .loc slices)."""
    bounds = (columns.start, columns.stop)
    if any(isinstance(bound, str) for bound in bounds):
        start = 0 if columns.start is None else column_index(fields, columns.start, names, n_features)
        stop = n_features if columns.stop is None else column_index(fields, columns.stop, names, n_features) + 1
        return list(range(n_features))[start:stop:columns.step]
    if not all(bound is None or isinstance(bound, numbers.Integral) for bound in (*bounds, columns.step)):
        raise fields.refuse(f"the column slice {columns!r} is not served")
    return list(range(n_features))[columns]


class ColumnTransformerStep:
    """Each fitted transformer on its own columns ('drop' and empty selections left out), times
    its transformer_weights entry, the outputs side by side."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        names = fields.feature_names(self.n_features_in)
        weights = fields.value("transformer_weights", None)
        weights = {} if weights is None else weights
        if not isinstance(weights, dict):
            raise fields.refuse("transformer_weights is not a dict")
        indices_at_fit = fields.value("_transformer_to_input_indices", None)
        self.parts = []  # (step or None for passthrough, column indices or one index, weight or None)
        for name, transformer, columns in self.fitted_transformers():
            indices = resolve_columns(fields, columns, names, self.n_features_in)
            listed = [indices] if is_scalar_selector(columns) else indices
            if isinstance(indices_at_fit, dict) and name in indices_at_fit and list(indices_at_fit[name]) != listed:
                raise fields.refuse(f"the columns of {name!r} don't match the ones recorded at fit")
            if is_string(transformer, "drop") or not listed:
                continue
            step = None if is_string(transformer, "passthrough") else build(transformer)
            self.check_part(name, step, columns, len(listed))
            chosen = indices if is_scalar_selector(columns) else np.array(indices, dtype=np.intp)
            self.parts.append((step, chosen, self.weight(weights, name)))
        self.outputs_sparse = fields.boolean("sparse_output_")
        self.outputs_sparse_rows = self.outputs_sparse and any(
            getattr(step, "outputs_sparse_rows", False) for step, _, _ in self.parts)

    def check_part(self, name, step, columns, n_columns):
        """A text vectorizer takes the one column a scalar selector names; any other step a list of columns."""
        takes_documents = getattr(step, "takes_documents", False)
        if is_scalar_selector(columns) and not takes_documents:
            raise self.fields.refuse(f"the scalar column selector {columns!r} gives its transformer 1-D input; "
                                     "served only for a text vectorizer")
        if takes_documents and not is_scalar_selector(columns):
            raise self.fields.refuse(f"transformer {name!r} takes a column of documents, but its selector "
                                     f"{columns!r} is not one column's name or index")
        if step is not None and (not hasattr(step, "transform") or step.n_features_in != n_columns):
            raise self.fields.refuse(f"transformer {name!r} can't transform its {n_columns} columns")

    def fitted_transformers(self):
        transformers = self.fields.value("transformers_")
        if not isinstance(transformers, list) or not all(
                isinstance(item, tuple) and len(item) == 3 and isinstance(item[0], str) for item in transformers):
            raise self.fields.refuse("transformers_ is not a list of (name, transformer, columns)")
        return transformers

    def weight(self, weights, name):
        weight = weights.get(name)
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, numbers.Real)
                                   or not np.isfinite(weight)):
            raise self.fields.refuse(f"transformer_weights[{name!r}] is {weight!r}, not a number")
        return weight

    def transform(self, X):
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(f"ColumnTransformer: X should be 2-D with {self.n_features_in} columns")
        outputs = []
        for step, indices, weight in self.parts:
            output = X[:, indices] if step is None else step.transform(X[:, indices])
            if weight is not None:
                output = output * weight
            if isinstance(output, SparseRows) and not self.outputs_sparse:
                output = output.toarray()  # _hstack makes each part dense when the output is
            elif self.outputs_sparse and not isinstance(output, SparseRows):  # check_array before stacking
                output = as_float_matrix(output, output.shape[1], "ColumnTransformer")
            outputs.append(output)
        if not outputs:
            return np.zeros((X.shape[0], 0))
        if self.outputs_sparse_rows:
            return SparseRows.hstack([output if isinstance(output, SparseRows) else SparseRows.from_dense(output)
                                      for output in outputs])
        return np.hstack(outputs)


def served_function(fields, key):
    """None, or one of SERVED_UFUNCS (the pickle names numpy's ufunc, read back as the ufunc)."""
    function = fields.value(key)
    if function is None:
        return None
    if isinstance(function, np.ufunc) and SERVED_UFUNCS.get(function.__name__) is function:
        return function
    name = getattr(function, "__name__", None) or getattr(function, "kind", type(function).__name__)
    raise fields.refuse(f"{key} {name} is not served (only None or numpy's {', '.join(SERVED_UFUNCS)})")


class FunctionTransformerStep:
    """func (or inverse_func) applied to X, which is checked first when validate=True."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        self.n_features_in = fields.n_features_in()
        self.func = served_function(fields, "func")
        self.inverse_func = served_function(fields, "inverse_func")
        self.validate = fields.boolean("validate")
        for key in ("kw_args", "inv_kw_args"):
            arguments = fields.value(key, None)
            if not (arguments is None or isinstance(arguments, dict) and not arguments):
                raise fields.refuse(f"{key} is not served")

    def transform(self, X):
        return self.apply(self.func, X)

    def inverse_transform(self, X):
        return self.apply(self.inverse_func, X)

    def apply(self, function, X):
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.shape[1] != self.n_features_in:
            raise ValueError(f"FunctionTransformer: X should be 2-D with {self.n_features_in} columns")
        if self.validate:  # check_array: numbers only, no NaN or infinity
            X = as_float_matrix(X, self.n_features_in, "FunctionTransformer", allow_nan=False)
        elif function is None:
            return X  # the identity, as scikit-learn's, returns what it was given
        elif X.dtype != np.float64:  # the numeric DataFrame columns a notebook fitted it on
            X = np.ascontiguousarray(X, dtype=np.float64)
        if function is None:
            return X
        with np.errstate(all="ignore"):  # log of 0 is -inf there too; only the warning is left out
            return function(np.ascontiguousarray(X))


class TransformedTargetRegressorStep:
    """regressor_'s prediction mapped back through transformer_.inverse_transform."""

    def __init__(self, record, build):
        self.fields = fields = Fields(record)
        training_dim = fields.value("_training_dim")
        if isinstance(training_dim, bool) or not isinstance(training_dim, numbers.Integral) or training_dim != 1:
            raise fields.refuse("it was fitted on a 2-D target; only a 1-D one is served")
        self.regressor = build(fields.value("regressor_"))
        self.transformer = build(fields.value("transformer_"))
        if not hasattr(self.regressor, "predict") or hasattr(self.regressor, "classes"):
            raise fields.refuse("regressor_ is not a regressor")
        if not hasattr(self.transformer, "inverse_transform") or self.transformer.n_features_in != 1:
            raise fields.refuse("transformer_ can't map one target back")
        self.n_features_in = self.regressor.n_features_in
        for name in ("accepts_densified_sparse", "accepts_sparse_rows", "takes_documents"):
            setattr(self, name, getattr(self.regressor, name, False))

    def predict(self, X):
        prediction = self.regressor.predict(X)
        return self.transformer.inverse_transform(prediction.reshape(-1, 1))[:, 0]


STEPS = {
    "sklearn.pipeline.Pipeline": PipelineStep,
    "sklearn.compose._column_transformer.ColumnTransformer": ColumnTransformerStep,
    "sklearn.compose._target.TransformedTargetRegressor": TransformedTargetRegressorStep,
    "sklearn.preprocessing._function_transformer.FunctionTransformer": FunctionTransformerStep,
}
