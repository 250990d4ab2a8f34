"""The function's routes besides the root, which is every other path, as it always was: the
OpenAPI document, MLflow's scoring server's, and the Open Inference Protocol's (open_inference.py).
Then what each route allows: its methods, and for a web page of another site, CORS."""

import functools

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule

from serving.answers import function_error, mlflow_error, open_inference_error


@functools.cache
def routes():
    """The rules, compiled on the first request off the root path (some 8 ms of CPU, 50 at a sixth
    of a core): a new instance's first answer, at the root, doesn't wait for them."""
    return Map([
        Rule("/openapi.json", endpoint="openapi"),
        Rule("/<path:prefix>/openapi.json", endpoint="openapi"),
        Rule("/invocations", endpoint="invocations"),
        Rule("/ping", endpoint="ping"),
        Rule("/health", endpoint="ping"),
        Rule("/v2", endpoint="server"),
        Rule("/v2/health/live", endpoint="live"),
        Rule("/v2/health/ready", endpoint="ready"),
        *(Rule(model + suffix, endpoint=endpoint) for model in ("/v2/models/<name>", "/v2/models/<name>/versions/<version>")
          for suffix, endpoint in (("", "model"), ("/ready", "model_ready"), ("/infer", "infer"))),
        Rule("/v2/<path:rest>", endpoint="unknown"),
        Rule("/robots.txt", endpoint="not_found"),  # what browsers and crawlers ask every site for: not a prediction
        Rule("/favicon.ico", endpoint="not_found"),
    ], strict_slashes=False, merge_slashes=False).bind("")


OPEN_INFERENCE = {"server", "live", "ready", "model", "model_ready", "infer", "unknown"}
ALLOWED = {"root": "GET, HEAD, POST, OPTIONS", "invocations": "POST, OPTIONS", "infer": "POST, OPTIONS"}


def allowed(endpoint):
    """The methods a route takes, for Allow: POST at the root and where rows are predicted, else GET."""
    return ALLOWED.get(endpoint, "GET, HEAD, OPTIONS")


def error_shape(endpoint):
    """How the clients of a route read an error: (message, field) -> the body they expect."""
    if endpoint == "invocations":
        return mlflow_error
    if endpoint in OPEN_INFERENCE:
        return open_inference_error
    return function_error


def route(path):
    """The endpoint a path is, and the arguments in it: the root for every path no rule matches."""
    if path == "/":  # where nearly every request goes, found without trying every rule
        return "root", {}
    try:
        return routes().match(path)
    except HTTPException:  # none of them: the root
        return "root", {}


# A browser asks before it sends a POST from another site's page (CORS): the answer to its OPTIONS.
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "3600",
}


def cors_headers(origin, allowed_origins):
    """Which web pages may read the answers: `allowed_origins` (the setting ALLOWED_ORIGINS; `*`,
    any, by default). `*` is safe here because the function uses no cookies or other credentials."""
    if "*" in allowed_origins:
        return {"Access-Control-Allow-Origin": "*"}
    if origin in allowed_origins:
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}  # no allow header: the browser withholds the answer
