"""Start functions-framework the way production does, load it with wrk, read its memory."""

import json
import os
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVE_VENV = ROOT / ".venv-serve"  # requirements.txt alone, as Cloud Functions builds it
DEV_VENV = ROOT / ".venv"
RESULTS = ROOT / "bench" / "results"
TUTORIAL_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


PORTS_GIVEN = set()


def free_port():
    """A port free now, and never one given before: servers run side by side, and the kernel
    may offer a port again once the server it was given to has not yet bound it."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in PORTS_GIVEN:
            PORTS_GIVEN.add(port)
            return port


def post(url, body, timeout=5):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


# main.py's log line once its background check of model.pkl has passed.
MAIN_CHECKED = '"message": "model checked'


class PortTaken(Exception):
    """gunicorn could not bind the port it was given: something else took it first."""


class Server:
    """functions-framework without --debug: gunicorn with its defaults, on 127.0.0.1."""

    def __init__(self, source, venv=SERVE_VENV, env=None):
        self.source, self.venv, self.env = Path(source), Path(venv), env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        RESULTS.mkdir(parents=True, exist_ok=True)
        self.log = open(RESULTS / f"server-{self.source.stem}.log", "a")
        self.log_start = self.log.tell()  # the log is kept across runs: this run's lines start here

    def start(self, probe_body):
        """Start, and return the seconds from process start to the first good answer. If
        something else took the port before gunicorn could bind it, start again on another."""
        for _ in range(3):
            try:
                return self.start_on_port(probe_body)
            except PortTaken:
                self.port = free_port()
                self.url = f"http://127.0.0.1:{self.port}/"
        raise RuntimeError(f"{self.source.name}: three ports in a row were taken; see {self.log.name}")

    def start_on_port(self, probe_body):
        log_start = os.path.getsize(self.log.name)
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [self.venv / "bin" / "functions-framework", "--target", "predict", "--source", self.source,
             "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.source.parent, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
        )
        deadline = started + 60
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.log_text(since=log_start):
                    raise PortTaken(self.port)
                raise RuntimeError(f"{self.source.name} exited; see {self.log.name}")
            try:
                status, _ = post(self.url, probe_body, timeout=2)
                # Only this server's own worker makes it an answer from this server: gunicorn
                # starts its worker once it has bound the port.
                if status == 200 and self.workers():
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.source.name} did not answer within 60 s")

    def wait_for_line(self, text, timeout=60):
        """Wait until the server has written a line holding `text` in this run."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if text in self.log_text(since=self.log_start):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.source.name} wrote no line holding {text!r} within {timeout} s")

    def log_text(self, since):
        """What the server has written to its log from offset `since` on."""
        self.log.flush()
        with open(self.log.name) as log:
            log.seek(since)
            return log.read()

    def workers(self):
        """The pids of gunicorn's workers: the master's children."""
        return Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()

    def instance_pss_mib(self):
        """Memory of the whole instance: gunicorn's master and its worker, each page shared
        between them counted once (the sum of their proportional set sizes)."""
        return sum(proc_mib(pid, "smaps_rollup", "Pss") for pid in [self.process.pid, *self.workers()])

    def worker_rss_mib(self):
        """Resident memory of the gunicorn worker, the process that serves requests."""
        return proc_mib((self.workers() or [self.process.pid])[0], "status", "VmRSS")

    def worker_cpu_seconds(self):
        """CPU time (user + system) the gunicorn worker has used so far, all its threads."""
        fields = Path(f"/proc/{self.workers()[0]}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def wait_idle(self, quiet=0.05, timeout=5):
        """Wait until the worker has used no CPU for `quiet` seconds. wrk stops with requests
        still in flight, which the server finishes after it: the tutorial's 8 at once cost it
        some 40 ms, which would run into whatever is measured next."""
        deadline = time.perf_counter() + timeout
        cpu, since = self.worker_cpu_seconds(), time.perf_counter()
        while time.perf_counter() < deadline:
            time.sleep(0.01)
            now = self.worker_cpu_seconds()
            if now != cpu:
                cpu, since = now, time.perf_counter()
            elif time.perf_counter() - since >= quiet:
                return

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if hasattr(self, "process"):
            self.stop()


def proc_mib(pid, file, field):
    """A memory figure (kB in /proc) of process `pid`, in MiB: proc_mib(pid, "status", "VmRSS")."""
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/{file}")


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def wrk(url, body, connections, seconds):
    """POST `body` for `seconds` over `connections` connections; requests/s, p50 and p99 in ms."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                     f"wrk.body = {json.dumps(body.decode())}\n")
    try:
        output = subprocess.run(
            ["wrk", "--latency", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{seconds}s",
             "--timeout", "10s", "-s", script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script.name)

    def latency(percent):
        value, unit = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M).groups()
        return float(value) * UNITS[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "p50_ms": latency(50),
        "p99_ms": latency(99),
        "errors": (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }
