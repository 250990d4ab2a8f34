import json
import re
import sys
from pathlib import Path

import functions_framework
import orjson
import pytest
from sklearn.datasets import load_iris

from localserver import TUTORIAL_ROW, LocalServer, free_port  # noqa: F401 (shared with the tests)

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_FRAMEWORK = Path(sys.executable).parent / "functions-framework"
# What archive.zip holds, as the Makefile says: the one list of the bundle's files.
ARCHIVE_FILES = re.search(r"^ARCHIVE_FILES := (.+)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
SERVED_FILES = [name for name in ARCHIVE_FILES if name not in ("model.pkl", "model.json", "requirements.txt")]


def is_compact_json(text):
    """Whether the text is JSON as the function writes it: no spaces between items, keys in
    the order written, and a newline at the end (what orjson writes of what json reads in it)."""
    return text == orjson.dumps(json.loads(text)).decode() + "\n"


def Server(source, env=None):
    """functions-framework from this virtual environment, serving `source` as `make serve` does."""
    return LocalServer(source, FUNCTIONS_FRAMEWORK, env=env)


@pytest.fixture(scope="session")
def app():
    app = functions_framework.create_app("predict", str(ROOT / "main.py"))
    import main

    # The check main.py starts at the first request, run to its end now, so that no test
    # races it (some replace parts of the scorer for a while).
    main.MODEL.check_in_background(main.report_model_check).join()
    assert main.MODEL.failure is None and main.MODEL.pipeline is not None
    return app


@pytest.fixture
def client(app):
    return app.test_client()


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


@pytest.fixture(scope="session")
def server():
    with Server(ROOT / "main.py").wait_ready() as running:
        yield running
