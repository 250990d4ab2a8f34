"""archive.zip: exactly what Cloud Functions needs, at the zip's root, and it serves."""

import subprocess
import zipfile

import pytest
import requests

from conftest import ROOT, TUTORIAL_ROW, Server

EXPECTED = {
    "main.py", "model_loader.py", "validation.py", "openapi.py", "page.html", "model.pkl", "model.json", "requirements.txt",
}


@pytest.fixture(scope="module")
def archive():
    subprocess.run(["make", "--always-make", "archive"], cwd=ROOT, check=True, capture_output=True)
    return ROOT / "archive.zip"


def test_archive_holds_exactly_the_bundle(archive):
    with zipfile.ZipFile(archive) as zipped:
        assert set(zipped.namelist()) == EXPECTED
        for name in EXPECTED:
            assert zipped.read(name) == (ROOT / name).read_bytes(), name


def test_unzipped_archive_serves(archive, tmp_path):
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path)
    server = Server(tmp_path / "main.py").wait_ready()
    try:
        answer = requests.post(server.url, json=TUTORIAL_ROW).json()
    finally:
        server.stop()
    assert answer["predicted_class"] == 0
    assert answer["class_name"] == "setosa"
