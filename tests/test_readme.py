"""Every block of the README, docs/design.md and bench/README.md that a reader would run is run
here, exactly as printed, against a server started with the README's own `make serve`; only the
host and port change. A block followed by an output block must print that output (numbers to the
digits shown). A block that can't run here is marked `<!-- not run: why -->`, and `checked by:
COMMAND` names the command whose output must contain it instead (the deploy command's dry run).
The blocks run in a copy of the project, in order; a block that is exactly `make serve` restarts
the server there, as a reader does to serve a model just trained.
"""

import os
import re
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from conftest import FIT_RTOL, ROOT, copy_project, free_port

DOCUMENTS = [ROOT / "README.md", *(ROOT / "docs" / name for name in ("formats.md", "bigquery.md", "tiers.md", "design.md")),
             ROOT / "bench" / "README.md"]

README_ADDRESS = "127.0.0.1:8080"  # the README's make serve; a test serves on a free port instead
RUNNABLE = {"bash", "python"}
OUTPUTS = {"text", "json"}
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
# A model the README trains (penguins, the notebook's) gives numbers that differ in their last digits
# on another CPU, whose BLAS sums in another order: FIT_RTOL, and no more, is allowed beyond the digits shown.
SLACK = Decimal(str(FIT_RTOL))
NOT_RUN = re.compile(r"<!-- not run: (.+?)(?:; checked by: (.+?))? -->")


def readme_blocks(document):
    """(language, code, marker, output) for each runnable or marked block of a document."""
    text = document.read_text()
    fences = list(re.finditer(r"^```(\w*)\n(.*?)^```\n", text, re.M | re.S))
    blocks = []
    for i, fence in enumerate(fences):
        language, code = fence.group(1), fence.group(2)
        if language in OUTPUTS:
            continue
        before = text[:fence.start()].rstrip().splitlines()[-1]
        marker = NOT_RUN.fullmatch(before.strip())
        following = fences[i + 1] if i + 1 < len(fences) else None
        output = None
        if following and following.group(1) in OUTPUTS and not text[fence.end():following.start()].strip():
            output = following.group(2)
        line = text[:fence.start()].count("\n") + 1
        name = document.relative_to(ROOT)
        blocks.append(pytest.param(language, code, marker, output, id=f"{name}:{line}:{language}"))
    return blocks


class ReadmeServer:
    """The README's `make serve`, on a free port, in a copy of the project: the README trains
    other models as a reader would, replacing model.pkl and model.json, and the project's own must
    stay as they are. The copy shares the project's virtual environments."""

    def __init__(self, folder):
        self.folder, self.process = copy_project(folder), None

    def start(self):
        self.stop()
        port = free_port()
        self.process = subprocess.Popen(["make", "--no-print-directory", "serve", f"PORT={port}"], cwd=self.folder,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(self.url, timeout=1)
                return
            except requests.ConnectionError:
                assert self.process.poll() is None and time.monotonic() < deadline, "make serve did not start"
                time.sleep(0.2)

    def stop(self):
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def readme_server(tmp_path_factory):
    server = ReadmeServer(tmp_path_factory.mktemp("project"))
    server.start()
    yield server
    server.stop()


def same_with_numbers_to_the_digits_shown(expected, actual):
    """Text equal except for numbers; each number equal to the precision the README shows."""
    expected, actual = expected.strip(), actual.strip()
    if NUMBER.sub("#", expected) != NUMBER.sub("#", actual):
        return False
    for shown, got in zip(NUMBER.findall(expected), NUMBER.findall(actual)):
        shown, got = Decimal(shown), Decimal(got)
        half_unit = Decimal(1).scaleb(shown.as_tuple().exponent) / 2
        if abs(got - shown) > max(half_unit, abs(shown) * SLACK):
            return False
    return True


def run(language, code, server):
    code = code.replace(README_ADDRESS, server.url.removeprefix("http://").rstrip("/"))
    if language == "python":
        command = [sys.executable, "-c", code]
    else:  # a shell block runs as the reader's shell would, from the project's folder
        command = ["bash", "-euo", "pipefail", "-c", code]
    # A reader's shell: not inside `make test` (whose MAKELEVEL makes a nested make announce itself).
    env = {key: value for key, value in os.environ.items() if key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    env["PATH"] = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    return subprocess.run(command, cwd=server.folder, capture_output=True, text=True, timeout=900, env=env)


@pytest.mark.parametrize("language, code, marker, output", [block for doc in DOCUMENTS for block in readme_blocks(doc)])
def test_readme_block(language, code, marker, output, readme_server):
    if marker:
        reason, checked_by = marker.groups()
        assert reason
        if checked_by:
            dry_run = subprocess.run(["bash", "-c", checked_by], cwd=readme_server.folder, capture_output=True,
                                     text=True, check=True)
            assert " ".join(code.split()) in " ".join(dry_run.stdout.split())
        return
    assert language in RUNNABLE, f"a {language or 'plain'} block must be marked not run, or be bash or python"
    if code.strip() == "make serve":  # the reader stops make serve and starts it again, on the new model
        readme_server.start()
        return
    result = run(language, code, readme_server)
    assert result.returncode == 0, result.stdout + result.stderr
    if output is not None:
        assert same_with_numbers_to_the_digits_shown(output, result.stdout), (
            f"README shows:\n{output}\nbut it printed:\n{result.stdout}"
        )


def test_the_readme_has_runnable_blocks_and_outputs():
    blocks = readme_blocks(DOCUMENTS[0])
    assert sum(1 for block in blocks if not block.values[2]) >= 8
    assert sum(1 for block in blocks if block.values[3] is not None) >= 5


def test_comparison_catches_a_changed_answer():
    shown = '{"predicted_class": 0, "probabilities": {"setosa": 0.9847}}'
    assert same_with_numbers_to_the_digits_shown(shown, '{"predicted_class": 0, "probabilities": {"setosa": 0.98471234}}')
    assert not same_with_numbers_to_the_digits_shown(shown, '{"predicted_class": 1, "probabilities": {"setosa": 0.9847}}')
    assert not same_with_numbers_to_the_digits_shown(shown, '{"predicted_class": 0, "probabilities": {"setosa": 0.9848}}')
    assert not same_with_numbers_to_the_digits_shown(shown, '{"predicted_class": 0, "proba": {"setosa": 0.9847}}')
