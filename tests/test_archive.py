"""archive.zip: exactly what Cloud Functions needs, at the zip's root, and it serves."""

import subprocess
import sys
import zipfile

import pytest
import requests

from conftest import ARCHIVE_FILES, ROOT, TUTORIAL_ROW, Server, copy_project


@pytest.fixture(scope="module")
def archive():
    subprocess.run(["make", "--always-make", "archive"], cwd=ROOT, check=True, capture_output=True)
    return ROOT / "archive.zip"


def test_archive_holds_exactly_the_bundle(archive):
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == sorted(ARCHIVE_FILES)
        assert set(ARCHIVE_FILES) >= {"main.py", "model.pkl", "model.json", "requirements.txt"}
        for name in ARCHIVE_FILES:
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


@pytest.mark.parametrize("target", ["species", "body_mass_g"], ids=["classification", "regression"])
def test_make_verify_passes_for_a_model_trained_on_penguins(tmp_path, target):
    import palmerpenguins

    project = copy_project(tmp_path)
    palmerpenguins.load_penguins().to_csv(project / "penguins.csv", index=False)
    subprocess.run(["make", "train", "DATA=penguins.csv", f"TARGET={target}"], cwd=project, check=True, capture_output=True)
    result = subprocess.run(["make", "--no-print-directory", "verify", f"VERIFY_PYTHONS={sys.executable}"],
                            cwd=project, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "PASS: archive.zip installs from its own requirements.txt" in result.stdout
    assert "bad input: 400 naming the field" in result.stdout
