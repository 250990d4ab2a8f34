"""The model that answers: model.json's fields and classes, and what scores checked rows: the
pipeline's steps computed with numpy from model.pkl read as data (serving/scorers), or else the
pipeline itself, unpickled. Either has scikit-learn's predict, and predict_proba where it has one."""

import warnings

import numpy as np

from serving.fields import InputError, Schema, path, writable

# A pipeline fitted on a pandas DataFrame warns each time it is given an array of the same columns
# (as serving gives it where make package found the answers the same): the warning would fill the log.
warnings.filterwarnings("ignore", message="X does not have valid feature names")

SCORING_ERRORS = (ValueError, TypeError, ArithmeticError)


class Model:
    """model.json, and the predictor that scores rows."""

    def __init__(self, metadata: dict, predictor, input_kind: str):
        self.metadata = metadata
        self.schema = Schema(metadata["fields"])
        self.features = self.schema.names
        self.task = metadata["task"]
        self.version = metadata["model_sha256"][:12]  # the model's version, as the Open Inference Protocol asks
        self.classes = metadata.get("classes", [])
        self.class_names = metadata.get("class_names", [])
        self.class_name = dict(zip(self.classes, self.class_names))
        self.predictor = predictor  # the pipeline read as data, or the unpickled pipeline
        self.input_kind = input_kind  # what it takes: a numpy "array", or a pandas "dataframe"
        self.gives_probabilities = self.task == "classification" and hasattr(predictor, "predict_proba")

    def predict(self, rows: list, where=lambda i: "") -> tuple:
        """The model's answers for checked rows: the labels its predict gives (the values, for a
        regression) and, for a classifier that gives them, the class probabilities, as lists. A row
        the pipeline itself refuses is an InputError at `where(i)`, naming the field to blame."""
        if not rows:  # a BigQuery call whose every row holds a NULL
            return [], [] if self.gives_probabilities else None
        try:
            return self.answers(rows)
        except SCORING_ERRORS as err:
            raise self.refusal(rows, where, err) from None

    def answers(self, rows):
        X = self.schema.pipeline_input(rows, self.input_kind)
        if self.gives_probabilities and hasattr(self.predictor, "predict_with_proba"):  # read as data: scored once
            labels, probabilities = self.predictor.predict_with_proba(X)
        else:
            labels = self.predictor.predict(X)
            probabilities = self.predictor.predict_proba(X) if self.gives_probabilities else None
        labels = np.asarray(labels)
        if self.task == "regression" and not np.isfinite(labels.astype(np.float64)).all():
            raise ValueError("the model's answer is not a finite number")
        if probabilities is not None and not np.isfinite(probabilities).all():
            raise ValueError("the model's probabilities are not finite numbers")
        return labels.tolist(), None if probabilities is None else probabilities.tolist()

    def scores(self, row):
        """None if the row alone is scored, else why not."""
        try:
            self.answers([row])
            return None
        except SCORING_ERRORS as err:
            return err

    def refusal(self, rows, where, error):
        """The first row the pipeline refuses on its own, and in it the field whose value, once
        replaced by the example's, lets it be scored. Only run when a request has failed."""
        example = self.schema.row(self.metadata["example"])[0]
        for i, row in enumerate(rows):
            err = self.scores(row)
            if err is None:
                continue
            reason = writable(" ".join(str(err).split()))[:300]
            for j, field in enumerate(self.schema.fields):
                if self.scores(row[:j] + [example[j]] + row[j + 1:]) is None:
                    return InputError(f"{field.name}: the model can't score this value ({reason})", path(where(i), field.name))
            return InputError(f"the model can't score this row ({reason})", where(i) or None)
        raise error  # every row scores alone: the failure is not the rows'
