"""An HTTP Google Cloud Function that serves the scikit-learn pipeline in model.pkl.

POST {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
  -> {"predicted_class": 0, "class_name": "setosa", "probabilities": {"setosa": 0.98..., ...}}
POST {"instances": [row, ...]}   -> {"predictions": [answer, ...]}   (Vertex AI, KServe, MLflow)
POST {"calls": [[...], ...]}     -> {"replies": [...]}               (BigQuery remote functions)
GET                              -> what this model is, and how to call it (a browser gets a page)
GET /openapi.json                -> the API as OpenAPI 3.1
POST /invocations                -> MLflow's scoring formats (serving/formats.py)
/v2/...                          -> the Open Inference Protocol, KServe's and Triton's (serving/open_inference.py)
OPTIONS                          -> CORS preflight

Entry point: `predict`. Run it locally with `functions-framework --target predict`.
Read top to bottom: configuration, the model loaded once, the answers, a request routed, `predict`.
"""

import gc
import os
import secrets
import sys
import time
import traceback
from pathlib import Path

import flask
import functions_framework
import orjson

from serving import open_inference
from serving.answers import JSON_TYPE, Answer, function_error, json_answer
from serving.bundle import ModelError, load_model, trust_line
from serving.fields import InputError
from serving.formats import MLflow, Single, bigquery_returns, request_format
from serving.openapi import description, openapi_document
from serving.request_body import RefusedUnread, parse_json, read_body
from serving.request_log import log, log_request
from serving.routes import OPEN_INFERENCE, PREFLIGHT_HEADERS, allowed, cors_headers, error_shape, route
from serving.settings import SettingError, read_settings

HERE = Path(__file__).resolve().parent

# The model is loaded once per instance, when Cloud Functions imports this file, and reused by
# every request. A setting, a model or a file that can't be trusted stops the instance here,
# with one line saying why. A bundle served as data (train.py's iris model) takes milliseconds, and
# scikit-learn is never imported: model.pkl's numbers are read as data and scored with numpy
# (serving/bundle.py). Any other pipeline is unpickled here, and answers itself.
try:
    MAX_BODY_BYTES, MAX_INSTANCES, ALLOWED_ORIGINS, MODEL_SHA256 = read_settings(os.environ)
    MODEL = load_model(HERE, expected_sha256=MODEL_SHA256)
    if not (HERE / "serving" / "page.html").is_file():
        raise SettingError("page.html: not found")
except (SettingError, ModelError) as err:
    sys.exit(f"cannot serve: {err}")
log({"severity": "INFO", "message": f"serving {MODEL.metadata['name']}: {trust_line(MODEL.metadata)}"})  # whose code it runs


# GET's answers never change while the instance lives: built once, here.
LIMITS = {"max_body_bytes": MAX_BODY_BYTES, "max_instances": MAX_INSTANCES}
DESCRIPTION = orjson.dumps(description(MODEL.metadata, LIMITS), option=orjson.OPT_INDENT_2)
OPENAPI = orjson.dumps(openapi_document(MODEL.metadata, bigquery_returns(MODEL), MAX_INSTANCES), option=orjson.OPT_INDENT_2)
PAGE = (HERE / "serving" / "page.html").read_bytes()
HTML_TYPE = {"Content-Type": "text/html; charset=utf-8"}


def post(data: bytes, mlflow: bool = False) -> Answer:
    """POST: rows to predict, in one of the formats in formats.py; the answer in the same format."""
    answers = MLflow if mlflow else Single  # whose errors, until the body says which format it is
    try:
        body = parse_json(data)
        answers = request_format(body, MODEL, mlflow)
        request = answers(body, MODEL, MAX_INSTANCES)  # checks every row
        labels, probabilities = MODEL.predict(request.rows, request.where)
    except InputError as err:
        return json_answer(answers.error(err.message, err.field), err.status)
    return json_answer(request.answer(labels, probabilities), rows=len(request.rows))


def get(request, endpoint: str) -> Answer:
    """GET: what the model is, as JSON, OpenAPI or a page for a browser; and MLflow's health check."""
    if endpoint == "ping":  # as MLflow's scoring server, for a load balancer's health check
        return Answer(b"\n", headers={"Content-Type": "text/plain"})
    if endpoint == "not_found":
        return json_answer(function_error("no such route; see /openapi.json"), 404)
    if endpoint == "openapi" or "openapi" in request.args:
        return Answer(OPENAPI)
    if request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html":
        return Answer(PAGE, headers=HTML_TYPE)  # the page asks for the description
    return Answer(DESCRIPTION)


def respond(request) -> Answer:
    """Route by path and method: POST predicts, GET describes, OPTIONS answers a CORS preflight."""
    data = read_body(request, MAX_BODY_BYTES)  # whatever the method (only a POST uses it); too long is refused unread
    method = request.method
    endpoint, args = route(request.path)
    methods = allowed(endpoint)
    if method == "OPTIONS":
        return Answer(b"", 204, {**PREFLIGHT_HEADERS, "Allow": methods})
    if method not in methods.split(", "):
        message = f"method {method} is not allowed here; this route takes {methods}"
        return json_answer(error_shape(endpoint)(message), 405, {**JSON_TYPE, "Allow": methods})
    if endpoint in OPEN_INFERENCE:
        return open_inference.respond(endpoint, args, data, request.headers, MODEL, MAX_INSTANCES)
    if method == "POST":
        return post(data, mlflow=endpoint == "invocations")
    return get(request, endpoint)


@functions_framework.errorhandler(404)
def unroutable(error):
    """A path functions-framework's own routing refuses (one holding a newline, say) is still a
    path of this function's, answered as any other."""
    return predict(flask.request)


@functions_framework.http
def predict(request):
    started = time.perf_counter()
    headers = {}
    try:
        answer = respond(request)
        body = answer.body
    except RefusedUnread as err:  # in the error shape of its route's clients
        answer = json_answer(error_shape(route(request.path)[0])(err.message, err.field), err.status)
        # functions-framework reads the whole body after every answer that is not a stream (its
        # `read_request`); for a body refused unread, that would hold all of it in memory, or fail
        # and turn this answer into a 500. It leaves a stream alone. (tests/test_framework.py fails
        # if it stops doing either.)
        body, headers = iter([answer.body]), {"Content-Length": str(len(answer.body))}
    except Exception:
        # Not the caller's fault. The answer gives a short reference and no details; the log
        # line with the same reference holds the traceback.
        reference = secrets.token_hex(4)
        log({"severity": "ERROR", "message": f"internal error {reference}: {traceback.format_exc()}"})
        answer = json_answer(function_error(f"internal error (reference {reference})"), 500)
        body = answer.body
    log_request(request, answer, started)
    return body, answer.status, {**answer.headers, **headers, **cors_headers(request.origin, ALLOWED_ORIGINS)}


# gunicorn forks its worker from the process that imported this file. What exists by now lives
# as long as the instance; frozen, the worker's garbage collections leave it alone, so its
# memory stays shared with that process instead of being copied (4-5 MiB).
gc.freeze()
