"""A served function under measurement: its first answer, its memory and CPU from /proc, and load from wrk."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from localserver import TUTORIAL_ROW, LocalServer, call  # noqa: E402 (after the path it is found on)

SERVE_VENV = ROOT / ".venv-serve"  # requirements.txt alone, as Cloud Functions builds it
DEV_VENV = ROOT / ".venv"
RESULTS = ROOT / "bench" / "results"
SINGLE = json.dumps(TUTORIAL_ROW).encode()


class PortTaken(Exception):
    """gunicorn could not bind the port it was given: something else took it first."""


class BenchServer(LocalServer):
    """functions-framework from `venv`, without --debug (gunicorn, its defaults), on 127.0.0.1,
    its output appended to bench/results/server-<name>.log."""

    def __init__(self, source, venv=SERVE_VENV, env=None, preexec_fn=None):
        RESULTS.mkdir(parents=True, exist_ok=True)
        source = Path(source)
        super().__init__(source, Path(venv) / "bin" / "functions-framework", env=env,
                         log_path=RESULTS / f"server-{source.stem}.log", preexec_fn=preexec_fn)

    def first_answer(self, probe_body, timeout=60):
        """Seconds from the process's start to its first good answer to `probe_body`."""
        deadline = self.started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                if "Address already in use" in self.output():
                    raise PortTaken(self.port)
                raise RuntimeError(f"{self.source.name} exited; see {self.log_path}")
            try:
                status, _, _ = call(self.url, probe_body, timeout=5)
                # Only this server's own worker makes it an answer from this server: gunicorn
                # starts its worker once it has bound the port.
                if status == 200 and self.workers():
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.source.name} did not answer within {timeout} s")

    def wait_for_line(self, text, timeout=60):
        """Wait until the server has written a line holding `text` in this run."""
        deadline = time.perf_counter() + timeout
        while text not in self.output():
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.source.name} wrote no line holding {text!r} within {timeout} s")
            time.sleep(0.1)

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


def start(source, probe_body=SINGLE, venv=SERVE_VENV, env=None, preexec_fn=None, timeout=60):
    """A BenchServer that has answered `probe_body`, and the seconds that took from its start.
    If something else took its port before gunicorn could bind it, it starts again on another."""
    for _ in range(3):
        server = BenchServer(source, venv, env, preexec_fn)
        try:
            return server, server.first_answer(probe_body, timeout)
        except PortTaken:
            server.stop()
        except BaseException:
            server.stop()
            raise
    raise RuntimeError(f"{Path(source).name}: three ports in a row were taken; see {server.log_path}")


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
