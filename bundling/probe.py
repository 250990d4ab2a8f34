"""A pipeline tried on rows as the function will build them: what it answers, what it takes (a
null, a value it never saw, an array instead of a DataFrame), and the first row it fails on."""

import warnings
from pathlib import Path

import numpy as np

from bundling.fields import DataError
from serving.fields import Schema

NEVER_SEEN = "a value this pipeline never saw"


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

    def takes(self, row):
        try:
            return self.finite(*self.answers([row]))
        except Exception:
            return False


def first_failure(where, count, score):
    """DataError naming the first of `count` rows (by its line in the sample) that `score(i)`
    fails on, with the pipeline's own error; None if none fails."""
    for i in range(count):
        try:
            if score(i) is False:
                raise ValueError("its answer is not a finite number")
        except Exception as err:
            line = f"line {i + 2} of {Path(where).name}" if where else "the made-up example"
            return DataError(f"the pipeline fails on {line}: {type(err).__name__}: {' '.join(str(err).split())[:300]}")
    return None


def quietly(predict, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(predict(X))


def input_kind(pipeline, fields, rows, frame, where):
    """"array" if the pipeline gives the same answers for a plain array as for the sample's own
    DataFrame (then serving needs no pandas), else "dataframe"."""
    try:
        expected = quietly(pipeline.predict, frame)
    except Exception:
        raise first_failure(where, len(frame), lambda i: quietly(pipeline.predict, frame.iloc[[i]])) from None
    try:
        labels, _ = Probe(pipeline, fields, "array").answers(rows)
        if np.array_equal(labels, expected):
            return "array"
    except Exception:
        pass
    return "dataframe"
