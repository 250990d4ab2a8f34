"""Rehearse a deploy: archive.zip, unzipped into a fresh folder and a fresh virtual
environment, installed from its own requirements.txt only (as Cloud Functions builds it),
served with functions-framework and called over HTTP with the README's requests.

    python scripts/verify.py archive.zip [--python /path/to/python3.12]

Prints each step and PASS, or what failed (exit 1).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from localserver import TUTORIAL_ROW, LocalServer, call

VIRGINICA = [6.7, 3.0, 5.2, 2.3]


class Failed(Exception):
    pass


def step(message):
    print(f"-- {message}", flush=True)


def expect(condition, what):
    if not condition:
        raise Failed(what)
    print(f"   ok: {what}")


def check_answers(url, metadata):
    status, headers, body = call(url, TUTORIAL_ROW)
    answer = json.loads(body)
    expect(status == 200 and headers["Content-Type"] == "application/json", "the tutorial's call: 200 JSON")
    expect(answer["predicted_class"] == 0 and answer["class_name"] == "setosa", "... predicted_class 0, setosa")
    expect(abs(sum(answer["probabilities"].values()) - 1) < 1e-9, "... probabilities add up to 1")

    # As `curl -d` sends it: form-encoded Content-Type, JSON body.
    status, _, body = call(url, json.dumps(dict(zip((field["name"] for field in metadata["fields"]), VIRGINICA))).encode())
    expect(status == 200 and json.loads(body)["class_name"] == "virginica", "curl -d style body: virginica")

    status, _, body = call(url, {"instances": [TUTORIAL_ROW, VIRGINICA]})
    predictions = json.loads(body)["predictions"]
    expect(status == 200 and [p["class_name"] for p in predictions] == ["setosa", "virginica"], "batch: 2 predictions")

    bigquery = {"requestId": "1", "caller": "//bigquery", "sessionUser": "someone@example.com",
                "userDefinedContext": {"return": "class_name"}, "calls": [list(TUTORIAL_ROW.values()), VIRGINICA, [None] * 4]}
    status, _, body = call(url, bigquery)
    expect(status == 200 and json.loads(body) == {"replies": ["setosa", "virginica", None]}, "BigQuery: replies")

    status, _, body = call(url, {**TUTORIAL_ROW, "petal_width": "wide"})
    expect(status == 400 and json.loads(body)["field"] == "petal_width", "bad input: 400 naming the field")

    status, _, body = call(url)
    expect(status == 200 and json.loads(body)["model"]["model_sha256"] == metadata["model_sha256"],
           "GET describes the model, with its SHA-256")
    status, _, body = call(url + "openapi.json")
    expect(status == 200 and json.loads(body)["openapi"] == "3.1.0", "GET /openapi.json")
    status, headers, body = call(url, headers={"Accept": "text/html"})
    expect(status == 200 and b"<form" in body, "a browser gets the try-it page")


def verify(archive, base_python):
    with tempfile.TemporaryDirectory(prefix="deploy-rehearsal-") as work:
        work = Path(work)
        source, env = work / "source", work / "venv"
        step(f"unzip {archive} into {source}")
        with zipfile.ZipFile(archive) as zipped:
            names = sorted(zipped.namelist())
            zipped.extractall(source)
        print(f"   {', '.join(names)}")
        metadata = json.loads((source / "model.json").read_text())

        version = subprocess.run([base_python, "-c", "import platform; print(platform.python_version())"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        step(f"fresh Python {version} virtual environment in {env}; pip install -r requirements.txt (from the archive only)")
        subprocess.run([base_python, "-m", "venv", env], check=True)
        python = env / "bin" / "python"
        started = time.monotonic()
        install = subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                  "-r", source / "requirements.txt"], capture_output=True, text=True)
        if install.returncode:
            raise Failed(f"pip install failed:\n{install.stderr[-3000:]}")
        print(f"   installed in {time.monotonic() - started:.0f} s")
        check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True)
        expect(check.returncode == 0, "pip check: every installed package has what it requires")

        step(f"functions-framework --target predict, from {source}")
        started = time.monotonic()
        with LocalServer(source / "main.py", env / "bin" / "functions-framework") as server:
            try:
                server.wait_ready()
            except RuntimeError as failure:
                raise Failed(f"the function did not start: {failure}") from None
            print(f"   answering on {server.url} {time.monotonic() - started:.1f} s after start")
            step("the README's calls")
            check_answers(server.url, metadata)
        step("stopped the server; removing the folder and the environment")


def main():
    parser = argparse.ArgumentParser(description="Rehearse a deploy of archive.zip locally.")
    parser.add_argument("archive", nargs="?", default="archive.zip")
    parser.add_argument("--python", default=sys.executable, help="the Python to build the environment with")
    args = parser.parse_args()
    try:
        verify(Path(args.archive).resolve(), args.python)
    except Failed as failure:
        print(f"FAIL: {failure}")
        return 1
    print("PASS: archive.zip installs from its own requirements.txt and serves the README's calls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
