"""What a deploy uploads, and the command that does it."""

import hashlib
import json
import os
import re
import subprocess

import joblib
import pytest
import sklearn.base

from serving.bundle import ModelError, load_model

from conftest import ARCHIVE_FILES, ROOT, rewrite


def make_deploy(**env):
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy"], cwd=ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "DRY_RUN": "1", **env},
    )
    return result.stdout


def test_deploy_dry_run_prints_the_command(tmp_path):
    output = make_deploy()
    # make may first rebuild archive.zip, and say so; the command is the line that starts with gcloud.
    [command] = [line for line in output.splitlines() if line.startswith("gcloud ")]
    assert command.startswith("gcloud functions deploy iris-function --gen2 ")
    assert "--entry-point=predict" in command
    assert "--runtime=python312" in command
    assert "--trigger-http" in command
    assert "--no-allow-unauthenticated" in command
    assert "--memory=256Mi" in command
    source = ROOT / re.search(r"--source=(\S+)", command).group(1)
    assert sorted(str(path.relative_to(source)) for path in source.rglob("*") if path.is_file()) == sorted(ARCHIVE_FILES)
    assert "not deployed" in output


def test_public_only_when_asked():
    assert "--allow-unauthenticated" in make_deploy(PUBLIC="1").split()
    assert "--runtime=python313" in make_deploy(RUNTIME="python313")


def test_the_one_list_of_what_ships_is_gcloud_s_own():
    """.gcloudignore, as gcloud reads it: everything ignored, then the function's files let through,
    serving/ whole but for its caches."""
    shipped = set(ARCHIVE_FILES)
    assert {"main.py", "serving/__init__.py", "serving/page.html", "model.pkl", "model.json", "requirements.txt"} <= shipped
    assert not any(name.startswith(("bundling/", "scripts/", "tests/")) or "__pycache__" in name for name in shipped)
    assert not {"train.py", "package.py", "requirements-tools.txt", "requirements-test.txt"} & shipped
    assert shipped == {str(path.relative_to(ROOT)) for path in ROOT.glob("serving/**/*") if path.is_file()
                       and "__pycache__" not in path.parts} | {"main.py", "model.pkl", "model.json", "requirements.txt"}


def test_pickle_from_another_scikit_learn_is_refused(tmp_path, pipeline, metadata, monkeypatch):
    """model.json can be wrong too: scikit-learn's own InconsistentVersionWarning is an error."""
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.2.2")  # recorded in the pickle as its maker
        joblib.dump(pipeline, tmp_path / "model.pkl")
    content = (tmp_path / "model.pkl").read_bytes()
    changed = {**metadata, "model_sha256": hashlib.sha256(content).hexdigest()}
    (tmp_path / "model.json").write_text(json.dumps(changed))
    with pytest.raises(ModelError) as caught:
        load_model(tmp_path)
    assert str(caught.value) == (f"model.pkl: made with scikit-learn 1.2.2, but model.json says it was proven against "
                                 f"scikit-learn {sklearn.__version__}; package it again")
    rewrite(tmp_path, served_as="pipeline", trust=["scikit-learn"])  # unpickled by scikit-learn, which says so too
    with pytest.raises(ModelError, match="from version 1.2.2 when using version"):
        load_model(tmp_path)
