"""HTTP behaviour: methods, CORS, limits, internal failures and the request log."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import TUTORIAL_ROW


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_get_405_with_allow(client, method):
    response = client.open("/", method=method, json=TUTORIAL_ROW)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD, POST, OPTIONS"
    assert response.get_json()["error"].startswith(f"method {method} is not allowed")


def test_head_answers_like_get_without_a_body(client):
    response = client.head("/")
    assert response.status_code == 200
    assert response.content_type == "application/json"
    assert response.get_data() == b""


def test_answers_allow_any_origin_by_default(client):
    response = client.post("/", json=TUTORIAL_ROW, headers={"Origin": "https://example.com"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_preflight(client):
    response = client.options("/", headers={
        "Origin": "https://example.com", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    })
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert response.headers["Access-Control-Max-Age"] == "3600"


@pytest.fixture
def only_shop_origin(monkeypatch):
    import main

    monkeypatch.setattr(main, "ALLOWED_ORIGINS", ["https://shop.example.com", "http://localhost:3000"])


def test_allowed_origin_is_echoed(client, only_shop_origin):
    for method in (client.post, client.options):
        response = method("/", json=TUTORIAL_ROW, headers={"Origin": "http://localhost:3000"})
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert response.headers["Vary"] == "Origin"


def test_other_origin_gets_no_allow_header(client, only_shop_origin):
    for method in (client.post, client.options):
        response = method("/", json=TUTORIAL_ROW, headers={"Origin": "https://evil.example.com"})
        assert "Access-Control-Allow-Origin" not in response.headers
    # The answer itself is unchanged: CORS is the browser's rule, not an access control.
    assert response.status_code in (200, 204)


def test_body_over_the_limit_is_413(client, monkeypatch):
    import main

    monkeypatch.setattr(main, "MAX_BODY_BYTES", 100)
    response = client.post("/", json={"instances": [TUTORIAL_ROW] * 3})
    assert response.status_code == 413
    assert response.get_json()["error"].endswith("the limit is 100")
    assert client.post("/", json=TUTORIAL_ROW).status_code == 200


@pytest.fixture
def written_log_lines(capsys):
    """A function that returns the log lines written since the test began, or since its last call."""
    capsys.readouterr()
    return lambda: capsys.readouterr().out.splitlines()


def test_unexpected_failure_is_a_500_with_a_reference_in_the_log(client, monkeypatch, written_log_lines):
    import main

    def broken(rows, where):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(main.MODEL, "predict", broken)
    response = client.post("/", json=TUTORIAL_ROW)
    assert response.status_code == 500
    body = response.get_json()
    assert "disk on fire" not in json.dumps(body)
    reference = body["error"].removeprefix("internal error (reference ").removesuffix(")")
    assert len(reference) == 8
    entries = [json.loads(line) for line in written_log_lines()]
    [failure] = [entry for entry in entries if entry["message"].startswith("internal error")]
    assert failure["severity"] == "ERROR"
    assert reference in failure["message"]
    assert "Traceback" in failure["message"] and "disk on fire" in failure["message"]


def test_one_structured_log_line_per_request_without_the_body(client, written_log_lines):
    client.post("/", json={"instances": [[5.123456, 3.5, 1.4, 0.2]] * 3}, headers={"User-Agent": "tests"})
    client.post("/", json={**TUTORIAL_ROW, "petal_width": "wide"})
    lines = written_log_lines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["severity"] == "INFO"
    assert first["rows"] == 3
    assert first["httpRequest"]["status"] == 200
    assert first["httpRequest"]["requestMethod"] == "POST"
    assert first["httpRequest"]["userAgent"] == "tests"
    assert first["httpRequest"]["latency"].endswith("s")
    assert float(first["httpRequest"]["latency"][:-1]) > 0
    assert second["severity"] == "WARNING"
    assert second["httpRequest"]["status"] == 400
    assert second["rows"] == 0  # not the previous request's count
    assert "5.123456" not in lines[0] and "wide" not in lines[1]


def test_oversized_bodies_over_http_are_refused_and_the_server_goes_on(server):
    big = b'{"instances": [' + b"[5.1, 3.5, 1.4, 0.2], " * 100_000 + b"[5.1, 3.5, 1.4, 0.2]]}"

    def chunked():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]

    for body, error in (
        (big, f"body is {len(big)} bytes; the limit is 1048576"),
        (chunked(), "body is over the limit of 1048576 bytes"),
    ):
        response = requests.post(server.url, data=body)
        assert response.status_code == 413
        assert response.json() == {"error": error, "field": None}
    assert requests.post(server.url, json=TUTORIAL_ROW).json()["predicted_class"] == 0


def test_the_served_function_writes_its_log_lines(server):
    requests.post(server.url, json=TUTORIAL_ROW, headers={"User-Agent": "log-check"})
    lines = server.log_lines(lambda line: line.get("httpRequest", {}).get("userAgent") == "log-check", timeout=5)
    assert [(line["httpRequest"]["status"], line["rows"]) for line in lines] == [(200, 1)]


def test_log_lines_of_requests_served_at_once_never_mix(server):
    """Each line is written as its request ends, in one write: from many threads at once, every
    line is still whole."""
    agent = "concurrent-log-check"

    def send(i):
        body = TUTORIAL_ROW if i % 3 else {"instances": [TUTORIAL_ROW] * 40}
        return requests.post(server.url, json=body, headers={"User-Agent": agent}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send, range(240))) == {200}
    lines = server.log_lines(lambda line: line.get("httpRequest", {}).get("userAgent") == agent)
    assert len(lines) == 240  # log_lines parses every JSON line the server wrote: none is torn
    assert sorted(line["rows"] for line in lines) == [1] * 160 + [40] * 80


@pytest.mark.parametrize("request_args", [
    {"method": "GET", "headers": {"Accept": "text/html"}},  # the page holds non-ASCII text
    {"method": "GET"},
    {"method": "POST", "json": TUTORIAL_ROW},
    {"method": "POST", "json": {**TUTORIAL_ROW, "blüte ✿": 1}},  # an error quoting a non-ASCII key
])
def test_logged_response_size_is_the_bytes_sent(client, written_log_lines, request_args):
    response = client.open("/", **request_args)
    [line] = [json.loads(line) for line in written_log_lines()]
    assert line["httpRequest"]["responseSize"] == str(len(response.get_data()))


@pytest.mark.parametrize("path, shape", [
    ("/invocations", {"error_code": "BAD_REQUEST", "message": "method DELETE is not allowed here; this route takes POST, OPTIONS"}),
    ("/v2/models/iris/infer", {"error": "method DELETE is not allowed here; this route takes POST, OPTIONS"}),
    ("/v2/health/live", {"error": "method DELETE is not allowed here; this route takes GET, HEAD, OPTIONS"}),
    ("/", {"error": "method DELETE is not allowed here; this route takes GET, HEAD, POST, OPTIONS", "field": None}),
], ids=["MLflow's", "the Open Inference Protocol's", "a /v2 GET route", "the function's own"])
def test_a_method_refused_is_told_in_the_error_shape_of_its_route(client, path, shape):
    response = client.delete(path)
    assert (response.status_code, response.get_json()) == (405, shape)
    assert response.headers["Allow"] == shape.get("error", shape.get("message")).split("takes ")[1]


@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_what_browsers_and_crawlers_ask_for_is_not_found_in_the_function_s_own_words(client, path):
    response = client.get(path)
    assert (response.status_code, response.get_json()) == (404, {"error": "no such route; see /openapi.json", "field": None})
