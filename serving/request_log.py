"""One JSON line per request on standard output, the form Cloud Logging reads. Never the body."""

import sys
import time

import orjson

LOGGED_TEXT = 300  # characters of a path or user agent that a log line keeps


def log(entry):
    """One JSON line on standard output, the form Cloud Logging reads; written in one call, so
    that lines from requests served at once never mix. Its message may quote a traceback or a file
    name, which can hold text no UTF-8 can (the rest is the request's method, path, headers and
    numbers, as werkzeug decodes them: always UTF-8)."""
    entry["message"] = entry["message"].encode("utf-8", "backslashreplace").decode("utf-8")
    sys.stdout.write(orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE).decode())
    sys.stdout.flush()


def cut(text):
    """At most LOGGED_TEXT characters of a path or header, for a log line that stays small."""
    return text if len(text) <= LOGGED_TEXT else text[:LOGGED_TEXT] + f"... ({len(text)} characters)"


def log_request(request, answer, started):
    """A request's log line. Never the body."""
    status, method, path, headers = answer.status, cut(request.method), cut(request.path), request.headers
    log({
        "severity": "INFO" if status < 400 else "WARNING" if status < 500 else "ERROR",
        "message": f"{method} {path} {status}",
        "httpRequest": {
            "requestMethod": method,
            "requestUrl": path,
            "status": status,
            "latency": f"{time.perf_counter() - started:.6f}s",
            "requestSize": cut(headers.get("Content-Length", "0")),
            "responseSize": str(len(answer.body)),
            "userAgent": cut(headers.get("User-Agent", "")),
        },
        "rows": answer.rows,
    })
