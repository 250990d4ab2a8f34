import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import functions_framework
import orjson
import pytest
import requests
from sklearn.datasets import load_iris

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_FRAMEWORK = Path(sys.executable).parent / "functions-framework"
# What archive.zip holds, as the Makefile says: the one list of the bundle's files.
ARCHIVE_FILES = re.search(r"^ARCHIVE_FILES := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
SERVED_FILES = [name for name in ARCHIVE_FILES if name not in ("model.pkl", "model.json", "requirements.txt")]
TUTORIAL_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def is_compact_json(text):
    """Whether the text is JSON as the function writes it: no spaces between items, keys in
    the order written, and a newline at the end (what orjson writes of what json reads in it)."""
    return text == orjson.dumps(json.loads(text)).decode() + "\n"


@pytest.fixture(scope="session")
def app():
    app = functions_framework.create_app("predict", str(ROOT / "main.py"))
    import main

    # In this process the log lines are flushed by the `client` fixture, into each test's own
    # captured output, rather than by the background writer at whatever moment it wakes.
    main.LOG.writer_pid = os.getpid()
    # The check main.py starts at the first request, run to its end now, so that no test
    # races it (some replace parts of the scorer for a while).
    main.MODEL.check_in_background(main.report_model_check).join()
    assert main.MODEL.failure is None and main.MODEL.pipeline is not None
    return app


@pytest.fixture
def client(app):
    yield app.test_client()
    import main

    main.LOG.flush()  # the request log lines, into this test's captured output


@pytest.fixture(scope="session")
def metadata():
    return json.loads((ROOT / "model.json").read_text())


@pytest.fixture(scope="session")
def iris():
    return load_iris()


@pytest.fixture(scope="session")
def pipeline():
    import joblib

    return joblib.load(ROOT / "model.pkl")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """functions-framework serving `source`, as `make serve` does, on a free loopback port."""

    def __init__(self, source, env=None, python_bin=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        command = [
            str(Path(python_bin or Path(sys.executable).parent) / "functions-framework"),
            "--target", "predict", "--source", str(source),
            "--host", "127.0.0.1", "--port", str(self.port),
        ]
        # Its output goes to files, not pipes: a pipe nobody reads would fill and stall it.
        self.stdout = tempfile.TemporaryFile("w+")
        self.stderr = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            command, cwd=Path(source).parent, env=env, stdout=self.stdout, stderr=self.stderr, text=True
        )

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[1]}")
            try:
                requests.get(self.url, timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def output(self):
        """What the server printed so far: (stdout, stderr)."""
        for stream in (self.stdout, self.stderr):
            stream.flush()
            stream.seek(0)
        return self.stdout.read(), self.stderr.read()

    def log_lines(self, where, timeout=60):
        """The JSON log lines written so far for which `where(line)` holds, waiting up to
        `timeout` seconds for the first (lines are written by a background thread)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [json.loads(line) for line in self.output()[0].splitlines() if line.startswith("{")]
            found = [line for line in lines if where(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return self.output()


@pytest.fixture(scope="session")
def server():
    running = Server(ROOT / "main.py").wait_ready()
    yield running
    running.stop()
