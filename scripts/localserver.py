"""Serving a function locally, as Cloud Functions serves it: the one home of the helpers that the
tests, the bench and the deploy rehearsal share. Standard library only: scripts/verify.py runs
under any Python, outside the project's virtual environment.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from shipped import shipped_files

# The call the original tutorial made, and the answer it expects: {"predicted_class": 0}.
TUTORIAL_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

PORTS_GIVEN = set()


def copy_function_code(root, folder):
    """The function's code (what ships, but the model's files) copied from `root` into `folder`:
    a folder that serves the bundle already there as the function would."""
    for name in shipped_files(root):
        if name not in ("model.pkl", "model.json", "requirements.txt"):
            (Path(folder) / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(root) / name, Path(folder) / name)


def free_port():
    """A loopback port that is free now, and never one given before in this process: servers may
    run side by side, and the kernel may offer a port again before its server has bound it."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in PORTS_GIVEN:
            PORTS_GIVEN.add(port)
            return port


def call(url, body=None, method=None, headers=None, timeout=10):
    """One HTTP request: (status, headers, body bytes), for error statuses too. `body` is bytes,
    or any other value to send as JSON."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class LocalServer:
    """functions-framework serving `source` on a free loopback port, as `make serve` does:
    gunicorn with its defaults. Its output goes to a file (a pipe nobody reads would fill and
    stall it), which `output()` and `log_lines()` read."""

    def __init__(self, source, functions_framework="functions-framework", env=None, log_path=None,
                 preexec_fn=None):
        self.source = Path(source)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        command = [str(functions_framework), "--target", "predict", "--source", str(self.source),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        self.temporary_log = log_path is None
        if self.temporary_log:
            handle, log_path = tempfile.mkstemp(prefix="server-", suffix=".log")
            os.close(handle)
        # Appended to, and read through a file of its own: a shared file offset would let a read
        # move where the server writes.
        self.log_path = Path(log_path)
        self.log = open(self.log_path, "a")
        self.log_start = self.log.tell()  # a kept log's earlier lines are not this run's
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            command, cwd=self.source.parent, env={**os.environ, **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=preexec_fn,
        )

    def wait_ready(self, timeout=60):
        """Wait until the server answers any request; returns self."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.source} exited ({self.process.returncode}): {self.output()[-3000:]}")
            try:
                call(self.url, timeout=2)
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.source} did not answer within {timeout} s")

    def output(self):
        """What the server printed (stdout and stderr) in this run."""
        with open(self.log_path, errors="replace") as log:
            log.seek(self.log_start)
            return log.read()

    def log_lines(self, where=lambda line: True, timeout=10):
        """The JSON log lines written so far for which `where(line)` holds, waiting up to
        `timeout` seconds for the first."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]
            found = [line for line in lines if where(line)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def workers(self):
        """The pids of gunicorn's workers: the master's children."""
        return Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()

    def stop(self):
        """Stop the server; returns what it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        output = self.output()
        self.log.close()
        if self.temporary_log:
            self.log_path.unlink()
        return output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
