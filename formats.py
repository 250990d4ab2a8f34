"""The request formats the function reads, each with the answers and errors it writes.

Each format is a class: built from a parsed body, it checks the rows the body holds (raising
InputError naming the bad value), and `answer(labels, probabilities)` writes its answer from the
model's answers for those rows, in order.

  Single    {"sepal_length": 5.1, ...}        -> {"predicted_class": 0, ...}   the original contract
  Batch     {"instances": [row, ...]}         -> {"predictions": [answer, ...]}
  BigQuery  {"calls": [[arg, ...], ...]}      -> {"replies": [reply, ...]}
"""

from validation import batch_rows, bigquery_return, bigquery_rows, single_row


def row_answer(model, label, probabilities=None, warnings=()):
    """One row's answer. A classifier's: the class as the training data spells it (the original
    contract's `predicted_class`), its name, and every class's probability when the model gives
    them. A regression's: the predicted value. Either way, what about the row training never saw."""
    if model.task == "regression":
        answer = {"predicted_value": label}
    else:
        answer = {"predicted_class": label, "class_name": model.class_name[label]}
        if probabilities is not None:
            answer["probabilities"] = dict(zip(model.class_names, probabilities))
    if warnings:
        answer["warnings"] = warnings
    return answer


def bigquery_returns(model):
    """What a BigQuery call may ask for in userDefinedContext.return; the first is the default."""
    return ("predicted_value", "json") if model.task == "regression" else ("class_name", "predicted_class", "json")


class Single:
    """One row, as an object keyed by field: the tutorial's request."""

    def __init__(self, body, model, max_rows):
        self.model = model
        values, self.warnings = single_row(body, model.schema)
        self.rows = [values]

    @staticmethod
    def where(i):
        return ""

    def answer(self, labels, probabilities):
        return row_answer(self.model, labels[0], probabilities and probabilities[0], self.warnings)

    @staticmethod
    def error(message, field=None, cause=None):
        return {"error": message, "field": field, **({"cause": cause} if cause else {})}


class Batch(Single):
    """Many rows, each an object or an array in field order; answered in the same order."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.rows, self.warnings = batch_rows(body, model.schema, max_rows)

    @staticmethod
    def where(i):
        return f"instances[{i}]"

    def answer(self, labels, probabilities):
        probabilities = probabilities or [None] * len(labels)
        return {"predictions": [row_answer(self.model, *answer) for answer in zip(labels, probabilities, self.warnings)]}


class BigQuery:
    """A BigQuery remote function call: one reply per call, in order. BigQuery retries 5xx
    answers, so bad input must be a 4xx; its error key is `errorMessage`."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.returning = bigquery_return(body, bigquery_returns(model))
        self.rows, self.scored = bigquery_rows(body, model.schema, max_rows)
        self.calls = [i for i, is_scored in enumerate(self.scored) if is_scored]

    def where(self, i):
        return f"calls[{self.calls[i]}]"

    def reply(self, label, probabilities):
        if self.returning == "json":
            return row_answer(self.model, label, probabilities)
        return self.model.class_name[label] if self.returning == "class_name" else label

    def answer(self, labels, probabilities):
        replies = iter(map(self.reply, labels, probabilities or [None] * len(labels)))
        return {"replies": [next(replies) if is_scored else None for is_scored in self.scored]}

    @staticmethod
    def error(message, field=None, cause=None):
        where, why = f"{field}: " if field else "", f" ({cause})" if cause else ""
        return {"errorMessage": (where + message + why)[:1000]}  # BigQuery shows at most 1,000 characters


def request_format(body):
    """The format of a parsed POST body."""
    if isinstance(body, dict) and "calls" in body:
        return BigQuery
    if isinstance(body, dict) and "instances" in body:
        return Batch
    return Single
