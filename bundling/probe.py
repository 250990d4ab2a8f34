"""A pipeline tried on rows as the function will build them: what it answers, what it takes (a
null, a value it never saw, an array instead of a DataFrame), and the first row it fails on."""

import warnings
from pathlib import Path

import numpy as np

from bundling.fields import DataError
from serving.fields import Schema

NEVER_SEEN = "a value this pipeline never saw"
# Sample rows answered at once: a batch the pipeline fails on is halved, and halved again, down to
# the row it fails on (the row by row of a 5,000-row sample took minutes).
BATCH = 500


class Probe:
    """The pipeline, tried on rows as the function will build them."""

    def __init__(self, pipeline, fields, kind):
        self.pipeline, self.kind = pipeline, kind
        self.schema = Schema(fields)

    def answers(self, rows):
        X = self.schema.pipeline_input(rows, self.kind)
        labels = quietly(self.pipeline.predict, X)
        probabilities = quietly(self.pipeline.predict_proba, X) if hasattr(self.pipeline, "predict_proba") else None
        return labels, probabilities

    @staticmethod
    def finite(labels, probabilities):
        numeric = labels.dtype.kind in "fiu"
        return bool((not numeric or np.isfinite(labels.astype(float)).all())
                    and (probabilities is None or np.isfinite(probabilities).all()))

    def check_one_output(self, where, rows):
        """DataError if the pipeline predicts several values per row (a multi-output regressor, a
        multilabel classifier), or a column of one: an answer is one value, and its probabilities
        those of one set of classes. Nothing if it fails on `rows`: first_failure says how."""
        try:
            labels = quietly(self.pipeline.predict, self.schema.pipeline_input(rows, self.kind))
        except Exception:
            return
        if labels.ndim == 2 and labels.shape[1] > 1:
            raise DataError(f"{where}: it predicts {labels.shape[1]} outputs per row; only one is served: fit one model per output")
        if labels.ndim == 2:
            raise DataError(f"{where}: it predicts a column of one value per row, as a model fitted on a table of one "
                            "column does: fit it on the column itself (y = table['target'], not table[['target']])")

    def takes(self, row):
        try:
            return self.finite(*self.answers([row]))
        except Exception:
            return False


def first_failure(where, count, score):
    """DataError naming the first of `count` rows (by its line in the sample) that the pipeline
    fails on, with its own error; None if it fails on none. `score(indices)` answers the rows of
    those indices (a range) at once, False if an answer is not a finite number. The first row is
    also answered alone, as a request of one row is."""
    batches = [range(1)] + [range(start, min(start + BATCH, count)) for start in range(0, count, BATCH)] if count else []
    for batch in batches:
        found = failing(batch, score)
        if found is not None:
            return fails_on(where, *found)
    return None


def fails_on(where, rows, err):
    """The DataError saying that the pipeline fails on `rows` of the sample `where`, with its error `err`."""
    return DataError(f"the pipeline fails on {lines(where, rows)}: {type(err).__name__}: {' '.join(str(err).split())[:300]}")


def failing(rows, score):
    """(rows, the pipeline's error) for the first of `rows` it fails on: one row, or rows it fails on
    only together (its answer to a row may depend on the others); None if it answers them all."""
    error = attempt(score, rows)
    if error is None or len(rows) == 1:
        return None if error is None else (rows, error)
    middle = len(rows) // 2
    return failing(rows[:middle], score) or failing(rows[middle:], score) or (rows, error)


def attempt(score, rows):
    """The error `score` fails with on `rows`, or None."""
    try:
        if score(rows) is False:
            raise ValueError("its answer is not a finite number")
    except Exception as err:
        return err
    return None


def lines(where, rows):
    """Where `rows` are, by their lines in the sample `where` (its header is line 1)."""
    if not where:
        return "the made-up example"
    if len(rows) == 1:
        return f"line {rows[0] + 2} of {Path(where).name}"
    return f"lines {rows[0] + 2} to {rows[-1] + 2} of {Path(where).name} taken together"


def quietly(predict, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(predict(X))


def input_kind(pipeline, fields, rows, frame, where):
    """"array" if the pipeline gives the same answers for a plain array as for the sample's own
    DataFrame (then serving needs no pandas), else "dataframe"."""
    try:
        expected = quietly(pipeline.predict, frame)
    except Exception as err:  # on which row? Or, if on none of the batches first_failure tries, on them all
        failure = first_failure(where, len(frame), lambda indices: quietly(pipeline.predict, frame.iloc[list(indices)]))
        raise failure or fails_on(where, range(len(frame)), err) from None
    try:
        labels, _ = Probe(pipeline, fields, "array").answers(rows)
        if np.array_equal(labels, expected):
            return "array"
    except Exception:
        pass
    return "dataframe"
