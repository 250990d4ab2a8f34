"""Requests meant to hurt, sent to the real server: each answered with a 4xx naming what is wrong,
none held in memory whole, none of their bytes in the log, and the server answers on after them."""

import json
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from conftest import TUTORIAL_ROW

MIB = 1024 * 1024


def worker_rss_mib(server):
    status = Path(f"/proc/{server.workers()[0]}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def raw_request(server, head, body_chunks=(), shut=False):
    """Send `head` (the request line and headers) and then the body's chunks over a plain socket;
    return the status code and the answer's body. A server that answers before reading the whole
    body is fine: what could not be sent is dropped."""
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1"))
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if shut:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < content_length(received):
            data = sock.recv(65536)
            if not data:
                break
            received += data
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def content_length(received):
    for line in received.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def zeros(total, piece=MIB):
    for _ in range(total // piece):
        yield b"0" * piece


def chunked(pieces):
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"


@pytest.mark.parametrize("method", ["GET", "OPTIONS", "PUT", "POST"])
def test_a_300_mb_body_is_refused_on_every_method_without_being_held(server, method):
    before = worker_rss_mib(server)
    size = 300 * MIB
    status, body = raw_request(server, f"{method} / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n", zeros(size))
    assert status == 413
    assert json.loads(body) == {"error": f"body is {size} bytes; the limit is 1048576", "field": None}
    status, body = raw_request(
        server, f"{method} / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(zeros(size)),
    )
    assert status == 413
    assert json.loads(body) == {"error": "body is over the limit of 1048576 bytes", "field": None}
    assert worker_rss_mib(server) - before < 20
    assert requests.post(server.url, json=TUTORIAL_ROW).json()["predicted_class"] == 0


@pytest.mark.parametrize("chunks, shut", [
    ([b"zz-not-a-size\r\nsecret-bytes\r\n0\r\n\r\n"], False),  # a size line that is not hex
    ([b"64\r\nsecret-bytes"], True),  # a chunk of 100 bytes that ends after 12
])
def test_a_malformed_chunked_body_is_a_400_and_no_byte_of_it_is_logged(server, chunks, shut):
    agent = f"chunk-check-{shut}"
    status, body = raw_request(
        server, f"POST / HTTP/1.1\r\nHost: x\r\nUser-Agent: {agent}\r\nTransfer-Encoding: chunked\r\n\r\n", chunks, shut,
    )
    assert status == 400
    assert json.loads(body) == {
        "error": "the body could not be read: malformed chunked encoding, or it ended early", "field": None,
    }
    [line] = server.log_lines(lambda line: line.get("httpRequest", {}).get("userAgent") == agent)
    assert line["httpRequest"]["status"] == 400
    assert "secret-bytes" not in server.output() and "zz-not-a-size" not in server.output()


def test_a_return_nested_980_deep_is_a_400_naming_it(server):
    nested = "[" * 980 + "]" * 980
    body = '{"calls": [[5.1, 3.5, 1.4, 0.2]], "userDefinedContext": {"return": %s}}' % nested
    response = requests.post(server.url, data=body)
    assert (response.status_code, response.json()) == (400, {
        "errorMessage": "userDefinedContext.return must be one of "
                        "class_name, predicted_class, json, not an array",
    })
    deeper = requests.post(server.url, data="[" * 100_000 + "]" * 100_000)
    assert (deeper.status_code, deeper.json()) == (400, {"error": "malformed JSON: nested too deeply", "field": None})


def test_an_integer_of_more_than_4300_digits_is_a_400_naming_its_field(server):
    digits = "9" * 4301
    row = '{"sepal_length": %s, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}' % digits
    response = requests.post(server.url, data=row)
    assert (response.status_code, response.json()) == (
        400, {"error": "sepal_length must be a finite number", "field": "sepal_length"},
    )
    call = '{"calls": [[5.1, -%s, 1.4, 0.2]]}' % digits
    response = requests.post(server.url, data=call)
    assert (response.status_code, response.json()) == (
        400, {"errorMessage": "calls[0][1]: sepal_width must be a finite number"},
    )


def test_a_long_path_is_a_414_and_log_lines_stay_short(server):
    for length, status in ((8193, 414), (4 * MIB, 414), (8000, 200)):
        agent = f"path-check-{length}-" + "u" * 8000
        response = requests.get(server.url + "p" * length, headers={"User-Agent": agent})
        assert response.status_code == status
        if status == 414:
            assert response.json() == {
                "error": f"the path is {length + 1} characters; the limit is 8192", "field": None,
            }
        [line] = server.log_lines(lambda line, agent=agent: line.get("httpRequest", {}).get("userAgent", "")
                                  .startswith(agent[:300]))
        assert len(json.dumps(line)) < 1500
        assert line["httpRequest"]["userAgent"] == agent[:300] + f"... ({len(agent)} characters)"
        assert line["httpRequest"]["requestUrl"].endswith(f"... ({length + 1} characters)")
    assert requests.post(server.url, json=TUTORIAL_ROW).status_code == 200


def test_an_inference_header_length_of_5000_digits_is_a_400_naming_it(server):
    body = json.dumps({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
    refusal = {"error": f"Inference-Header-Content-Length must be a whole number of bytes, at most the body's {len(body)}: "
                        "the length of the JSON that opens the body"}
    for length in ("9" * 5000, str(len(body) + 1), "-1", "0x10"):
        response = requests.post(server.url + "v2/models/iris/infer", data=body, headers={"Inference-Header-Content-Length": length})
        assert (response.status_code, response.json()) == (400, refusal), length
    exact = requests.post(server.url + "v2/models/iris/infer", data=body,
                          headers={"Inference-Header-Content-Length": "0" * 5000 + str(len(body))})
    assert exact.json()["outputs"][0]["data"] == [0]
