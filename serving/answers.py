"""The one answer type of every route, and how each route's clients read an error.

Every route answers an Answer: a body, its status and headers, and how many rows it predicted (for
the log line). A refusal is written in the error shape its route's clients read: the function's own
`{"error", "field"}` at the root, MLflow's at /invocations, the Open Inference Protocol's under /v2
(and BigQuery's, for a BigQuery call, by formats.BigQuery).
"""

from typing import NamedTuple

import orjson

JSON_TYPE = {"Content-Type": "application/json"}


class Answer(NamedTuple):
    body: bytes
    status: int = 200
    headers: dict = JSON_TYPE
    rows: int = 0  # how many rows were predicted, for the log line


def json_answer(body, status=200, headers=JSON_TYPE, rows=0) -> Answer:
    """The body as compact JSON ending in a newline, the form Flask's jsonify writes, with the
    keys in the order they were built. orjson, the one JSON writer here (answers and log lines),
    writes a batch's answer in a twentieth of json.dumps's time (bench/README.md)."""
    return Answer(orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE), status, headers, rows)


def located(message, field):
    """An error's message with the JSON path of its value in front, for the error shapes that have
    no key of their own for it; never the path twice ("calls: calls must be an array")."""
    if not field or message.startswith(field):
        return message
    return f"{field}: {message}"


def function_error(message, field=None):
    return {"error": message, "field": field}


def mlflow_error(message, field=None):
    return {"error_code": "BAD_REQUEST", "message": located(message, field)}


def open_inference_error(message, field=None):
    return {"error": located(message, field)}
