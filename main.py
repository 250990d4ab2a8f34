"""An HTTP Google Cloud Function that serves the scikit-learn pipeline in model.pkl.

POST {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
  -> {"predicted_class": 0, "class_name": "setosa", "probabilities": {"setosa": 0.98..., ...}}
POST {"instances": [row, ...]}   -> {"predictions": [answer, ...]}   (Vertex AI, KServe, MLflow)
POST {"calls": [[...], ...]}     -> {"replies": [...]}               (BigQuery remote functions)
GET                              -> what this model is, and how to call it (a browser gets a page)
GET /openapi.json                -> the API as OpenAPI 3.1
OPTIONS                          -> CORS preflight

Entry point: `predict`. Run it locally with `functions-framework --target predict`.
Read top to bottom: configuration, the model loaded once, the answers, then `predict`.
"""

import gc
import json
import math
import os
import secrets
import sys
import threading
import time
import traceback
from pathlib import Path

import functions_framework
import numpy as np
import orjson

from model_loader import ModelError, load_model
from openapi import openapi_document
from request_log import RequestLog
from validation import InputError, batch_rows, bigquery_return, bigquery_rows, read_json, single_row

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 1024 * 1024))
MAX_INSTANCES = int(os.environ.get("MAX_INSTANCES", 10_000))
ALLOWED_ORIGINS = [origin.strip() for origin in os.environ.get("ALLOWED_ORIGINS", "*").split(",") if origin.strip()]

# The model is loaded once per instance, when Cloud Functions imports this file, and
# reused by every request. Loading takes milliseconds: it reads model.json's scorer (the
# numbers the function answers with) and checks model.pkl's checksum. A model that can't be
# trusted stops the instance here, with one line saying why. Importing scikit-learn to
# unpickle model.pkl and check the scorer against it takes a second or more, so each process
# does that in the background, from its first request on (see `predict`).
try:
    MODEL = load_model(HERE, expected_sha256=os.environ.get("MODEL_SHA256"))
except ModelError as err:
    sys.exit(f"cannot serve: {err}")

LOG = RequestLog()
# How many rows this request predicted, for its log line. gunicorn serves each request in one
# thread, so a thread-local keeps it per request, as flask.g would at a twentieth of g's cost.
THIS_REQUEST = threading.local()
MODEL_FAILED = "the model failed its check when this instance started"  # a 503's error
JSON_HEADERS = {"Content-Type": "application/json"}
BIGQUERY_RETURNS = ("class_name", "predicted_class", "json")  # the first is the default
ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "3600",
    "Allow": ALLOWED_METHODS,
}


def describe(metadata):
    """GET's answer: the model, and an example of each request it takes."""
    example = metadata["example"]
    as_list = [example[name] for name in metadata["features"]]
    return {
        "model": {key: metadata.get(key) for key in (
            "features", "training_columns", "class_names", "pipeline", "training_accuracy",
            "cv_accuracy", "versions", "model_sha256", "trained_at", "data",
        )},
        "requests": {
            "single": example,
            "batch": {"instances": [example, as_list]},
            "bigquery": {"calls": [as_list], "userDefinedContext": {"return": "class_name"}},
        },
        "limits": {"max_body_bytes": MAX_BODY_BYTES, "max_instances": MAX_INSTANCES},
    }


# GET's answers never change while the instance lives: built once, here.
DESCRIPTION = json.dumps(describe(MODEL.metadata), indent=2)
OPENAPI = json.dumps(openapi_document(MODEL.metadata, BIGQUERY_RETURNS, MAX_INSTANCES), indent=2)
PAGE = (HERE / "page.html").read_bytes()


def score(rows, row_path):
    """Class probabilities for the rows (an array), as lists; `row_path(i)` names row i in an error."""
    THIS_REQUEST.rows_predicted = len(rows)
    try:
        probabilities = MODEL.predict_proba(rows)
    except ValueError:  # a pipeline's own input check, if values overflow once scaled
        probabilities = np.full((len(rows), len(MODEL.class_names)), np.nan)
    if not np.isfinite(probabilities).all():  # a safeguard: accepted values are bounded
        first = int((~np.isfinite(probabilities).all(axis=1)).argmax())
        raise InputError("values too large for the model to score", row_path(first))
    return probabilities.tolist()


def score_row(values):
    """score() for a single row (a list), without numpy's cost per call."""
    THIS_REQUEST.rows_predicted = 1
    try:
        probabilities = MODEL.predict_proba_row(values)
    except ValueError:  # as in score()
        probabilities = [math.nan]
    if not all(map(math.isfinite, probabilities)):
        raise InputError("values too large for the model to score")
    return probabilities


def best_class(probabilities):
    return probabilities.index(max(probabilities))


def answer(probabilities):
    """One row's answer: the class index (the original contract), its name, and every
    class's probability."""
    best = best_class(probabilities)
    return {
        "predicted_class": best,
        "class_name": MODEL.class_names[best],
        "probabilities": dict(zip(MODEL.class_names, probabilities)),
    }


def reply(body, status=200, headers=JSON_HEADERS):
    """(body, status, headers), the body as compact JSON ending in a newline, the form Flask's
    jsonify writes. orjson writes it in a fifteenth of json.dumps's time. Like json.dumps,
    it writes each float in the fewest digits that read back as that very float, though not
    always in the same notation (6.2e-8 for 6.2e-08, 0.0000385 for 3.85e-05)."""
    try:
        text = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:  # a lone surrogate, from a request's key quoted in an error
        text = json.dumps(body, separators=(",", ":")) + "\n"
    return text, status, headers


def single(body):
    return reply(answer(score_row(single_row(body, MODEL.features))))


def batch(body):
    rows = batch_rows(body, MODEL.features, MAX_INSTANCES)
    return reply({"predictions": list(map(answer, score(rows, lambda i: f"instances[{i}]")))})


BIGQUERY_REPLY = {
    "json": answer,
    "class_name": lambda probabilities: MODEL.class_names[best_class(probabilities)],
    "predicted_class": best_class,
}


def bigquery(body):
    """A BigQuery remote function call: one reply per call, in order. BigQuery retries
    5xx answers, so bad input must be a 4xx; its error key is `errorMessage`."""
    try:
        returning = bigquery_return(body, BIGQUERY_RETURNS)
        rows, scored = bigquery_rows(body, MODEL.features, MAX_INSTANCES)
        scored_indexes = [i for i, is_scored in enumerate(scored) if is_scored]
        found = score(rows, lambda i: f"calls[{scored_indexes[i]}]") if len(rows) else []
    except InputError as err:
        where = f"{err.field}: " if err.field else ""
        return reply({"errorMessage": (where + err.message)[:1000]}, err.status)
    except ModelError:
        return reply({"errorMessage": MODEL_FAILED}, 503)
    found = map(BIGQUERY_REPLY[returning], found)
    return reply({"replies": [next(found) if is_scored else None for is_scored in scored]})


def cors_headers(origin):
    """Which web pages may read the answers: ALLOWED_ORIGINS, `*` (any) by default. `*` is
    safe here because the function uses no cookies or other credentials."""
    if "*" in ALLOWED_ORIGINS:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in ALLOWED_ORIGINS:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}  # no allow header: the browser withholds the answer


def wants_html(request):
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def handle(request):
    """Route by method: POST predicts, GET describes, OPTIONS answers a CORS preflight."""
    if request.method == "POST":
        try:
            body = read_json(request, MAX_BODY_BYTES)
            if isinstance(body, dict) and "calls" in body:
                return bigquery(body)
            if isinstance(body, dict) and "instances" in body:
                return batch(body)
            return single(body)
        except InputError as err:
            return reply({"error": err.message, "field": err.field}, err.status)
        except ModelError:  # model.pkl failed the background check: see report_model_check
            return reply({"error": MODEL_FAILED, "field": None}, 503)
    if request.method in ("GET", "HEAD"):
        if request.path.rstrip("/").endswith("/openapi.json") or "openapi" in request.args:
            return OPENAPI, 200, JSON_HEADERS
        if wants_html(request):
            return PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}
        return DESCRIPTION, 200, JSON_HEADERS
    if request.method == "OPTIONS":
        return "", 204, PREFLIGHT_HEADERS
    return reply(
        {"error": f"method {request.method} is not allowed; POST predicts, GET describes the model", "field": None},
        405, {**JSON_HEADERS, "Allow": ALLOWED_METHODS},
    )


def log_request(request, status, started, body):
    """One JSON line per request, in the form Cloud Logging reads. Never the request body.
    (Headers are read from the WSGI environ: werkzeug's parsed views cost more than the model.)"""
    environ = request.environ
    LOG.write_request(
        environ["REQUEST_METHOD"], request.path, status, time.perf_counter() - started,
        environ.get("CONTENT_LENGTH") or "0", len(body), environ.get("HTTP_USER_AGENT", ""),
        THIS_REQUEST.rows_predicted,
    )


def report_model_check(failure):
    if failure is None:
        LOG.write({"severity": "INFO", "message": f"model checked: {MODEL.pickle_path.name} gives the scorer's answers"})
    else:
        LOG.write({"severity": "ERROR", "message": f"cannot serve: {failure}"}, now=True)


@functions_framework.http
def predict(request):
    started = time.perf_counter()
    THIS_REQUEST.rows_predicted = 0
    try:
        MODEL.check_in_background(report_model_check)
        body, status, headers = handle(request)
    except Exception:
        # Not the caller's fault. The answer gives a short reference and no details; the
        # log line with the same reference holds the traceback.
        reference = secrets.token_hex(4)
        LOG.write({"severity": "ERROR", "message": f"internal error {reference}: {traceback.format_exc()}"}, now=True)
        body, status, headers = reply({"error": f"internal error (reference {reference})", "field": None}, 500)
    log_request(request, status, started, body)
    return body, status, {**headers, **cors_headers(request.environ.get("HTTP_ORIGIN"))}


# gunicorn forks its worker from the process that imported this file. What exists by now lives
# as long as the instance; frozen, the worker's garbage collections leave it alone, so its
# memory stays shared with that process instead of being copied (4-5 MiB here).
gc.freeze()
