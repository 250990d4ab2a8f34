"""What functions-framework itself does that main.py works around. If one of these fails, the
framework changed: read the comment in main.predict on streamed answers, and change it to match."""

import io

import functions_framework

PROBE = '''
import functions_framework


@functions_framework.http
def predict(request):
    if request.args.get("stream"):
        return iter([b"streamed"]), 200
    return "plain", 200
'''


def test_the_framework_reads_the_body_after_a_plain_answer_but_not_after_a_stream(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    client = functions_framework.create_app("predict", str(tmp_path / "probe.py")).test_client()
    for query, read in (("", 10_000), ("?stream=1", 0)):
        body = io.BytesIO(b"x" * 10_000)
        response = client.post("/" + query, input_stream=body, headers={"Content-Length": "10000"})
        assert response.status_code == 200
        assert body.tell() == read, query  # how far the body was read
