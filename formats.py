"""The request formats the function reads, each with the answers and errors it writes.

Each format is a class: built from a parsed body, it checks the rows the body holds (raising
InputError naming the bad value), and `answer(probabilities)` writes its answer from the
model's class probabilities for those rows, in order.

  Single    {"sepal_length": 5.1, ...}        -> {"predicted_class": 0, ...}   the original contract
  Batch     {"instances": [row, ...]}         -> {"predictions": [answer, ...]}
  BigQuery  {"calls": [[arg, ...], ...]}      -> {"replies": [reply, ...]}
"""

from validation import batch_rows, bigquery_return, bigquery_rows, single_row

BIGQUERY_RETURNS = ("class_name", "predicted_class", "json")  # the first is the default


def best_class(probabilities):
    return probabilities.index(max(probabilities))


def row_answer(model, probabilities):
    """One row's answer: the class index (the original contract), its name, and every class's
    probability."""
    best = best_class(probabilities)
    return {
        "predicted_class": best,
        "class_name": model.class_names[best],
        "probabilities": dict(zip(model.class_names, probabilities)),
    }


class Single:
    """One row, as an object keyed by field: the tutorial's request."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.rows = [single_row(body, model.features)]

    def answer(self, probabilities):
        return row_answer(self.model, probabilities[0])

    @staticmethod
    def error(message, field=None, cause=None):
        return {"error": message, "field": field, **({"cause": cause} if cause else {})}


class Batch(Single):
    """Many rows, each an object or an array in field order; answered in the same order."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.rows = batch_rows(body, model.features, max_rows)

    def answer(self, probabilities):
        return {"predictions": [row_answer(self.model, row) for row in probabilities]}


class BigQuery:
    """A BigQuery remote function call: one reply per call, in order. BigQuery retries 5xx
    answers, so bad input must be a 4xx; its error key is `errorMessage`. A call with a SQL NULL
    among its arguments gets a null reply, as SQL functions usually do."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.returning = bigquery_return(body, BIGQUERY_RETURNS)
        self.rows, self.scored = bigquery_rows(body, model.features, max_rows)

    def reply(self, probabilities):
        if self.returning == "json":
            return row_answer(self.model, probabilities)
        best = best_class(probabilities)
        return self.model.class_names[best] if self.returning == "class_name" else best

    def answer(self, probabilities):
        replies = iter(map(self.reply, probabilities))
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

