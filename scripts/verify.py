"""Rehearse a deploy: archive.zip, unzipped into a fresh folder and a fresh virtual
environment, installed from its own requirements.txt only (as Cloud Functions builds it),
served with functions-framework and called over HTTP with the README's kinds of request, made
from model.json's own example.

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

from localserver import LocalServer, call


class Failed(Exception):
    pass


def step(message):
    print(f"-- {message}", flush=True)


def expect(condition, what):
    if not condition:
        raise Failed(what)
    print(f"   ok: {what}")


def check_answers(url, metadata):
    """The README's kinds of call, made with model.json's own example, so that any model is checked."""
    fields, example = metadata["fields"], metadata["example"]
    as_list = [example[field["name"]] for field in fields]
    status, headers, body = call(url, example)
    single = json.loads(body)
    expect(status == 200 and headers["Content-Type"] == "application/json", "model.json's example: 200 JSON")
    if metadata["task"] == "classification":
        expect(single["predicted_class"] in metadata["classes"], f"... predicted_class {single['predicted_class']!r}, "
               f"class_name {single['class_name']!r}")
        if "probabilities" in single:
            # To float32's precision: XGBoost's classifiers compute their probabilities in float32.
            expect(abs(sum(single["probabilities"].values()) - 1) < 1e-6, "... probabilities add up to 1")
        reply = single["class_name"]
    else:
        expect(isinstance(single["predicted_value"], float), f"... predicted_value {single['predicted_value']!r}")
        reply = single["predicted_value"]

    # As `curl -d` sends it: form-encoded Content-Type, JSON body.
    status, _, body = call(url, json.dumps(example).encode())
    expect(status == 200 and json.loads(body) == single, "curl -d style body: the same answer")

    status, _, body = call(url, {"instances": [example, as_list]})
    expect(status == 200 and json.loads(body) == {"predictions": [single, single]}, "batch: 2 predictions, each the same")

    bigquery = {"requestId": "1", "caller": "//bigquery", "sessionUser": "someone@example.com", "calls": [as_list]}
    status, _, body = call(url, bigquery)
    expect(status == 200 and json.loads(body) == {"replies": [reply]}, "BigQuery: replies")

    first = fields[0]
    wrong = 3 if first["type"] in ("string", "text") else "wrong"
    status, _, body = call(url, {**example, first["name"]: wrong})
    expect(status == 400 and json.loads(body)["field"] == first["name"], "bad input: 400 naming the field")

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
