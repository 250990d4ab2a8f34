"""model.pkl and model.json: what train.py makes, and what the loader refuses."""

import hashlib
import json
import shutil
import subprocess
import sys
from importlib.metadata import version

import joblib
import numpy as np
import pytest

import train
from conftest import ROOT, SERVED_FILES, TUTORIAL_ROW
from model_loader import ModelError, load_model


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrained")
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--out", str(out)], check=True, capture_output=True)
    return out


def without_time(metadata):
    return {key: value for key, value in metadata.items() if key != "trained_at"}


def test_committed_model_is_what_train_py_makes_today(retrained, metadata):
    fresh = json.loads((retrained / "model.json").read_text())
    assert without_time(fresh) == without_time(metadata)
    assert (retrained / "model.pkl").read_bytes() == (ROOT / "model.pkl").read_bytes()


def test_two_trainings_predict_the_same(retrained, tmp_path, iris):
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    first, second = joblib.load(retrained / "model.pkl"), joblib.load(tmp_path / "model.pkl")
    assert np.array_equal(first.predict_proba(iris.data), second.predict_proba(iris.data))


def test_metadata_says_what_serving_needs(metadata, iris):
    assert metadata["features"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert metadata["training_columns"] == iris.feature_names
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert metadata["example"] == TUTORIAL_ROW
    assert 0.9 < metadata["training_accuracy"] <= 1
    assert metadata["model_sha256"] == hashlib.sha256((ROOT / "model.pkl").read_bytes()).hexdigest()
    assert set(metadata["versions"]) == {"python", "scikit-learn", "numpy", "scipy", "joblib"}


def test_requirements_pin_the_versions_that_made_the_model(metadata):
    pins = dict(
        line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for package in ("scikit-learn", "numpy", "scipy", "joblib"):
        assert pins[package] == metadata["versions"][package], package
        assert version(package) == metadata["versions"][package], f"installed {package}"
    assert "functions-framework" in pins
    assert "pandas" not in pins


def test_field_names_come_from_column_names():
    assert train.field_name("sepal length (cm)") == "sepal_length"
    assert train.field_name("Alcohol %") == "alcohol"
    assert train.field_name("OD280/OD315 of diluted wines") == "od280_od315_of_diluted_wines"
    with pytest.raises(train.DataError, match="both become field 'a_b'"):
        train.field_names(["a b", "A-B"])


# The loader refuses any model it can't trust, with one line naming the file and the cause.

@pytest.fixture
def bundle(tmp_path):
    for name in ("model.pkl", "model.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit_metadata(bundle, **changes):
    metadata = json.loads((bundle / "model.json").read_text())
    metadata.update(changes)
    (bundle / "model.json").write_text(json.dumps(metadata))
    return metadata


def refusal(bundle, **kwargs):
    with pytest.raises(ModelError) as caught:
        load_model(bundle, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_bundle_loads(bundle):
    assert load_model(bundle).class_names == ["setosa", "versicolor", "virginica"]


def test_missing_model_file(bundle):
    (bundle / "model.pkl").unlink()
    assert refusal(bundle) == f"{bundle / 'model.pkl'}: not found"


def test_missing_metadata(bundle):
    (bundle / "model.json").unlink()
    assert refusal(bundle) == f"{bundle / 'model.json'}: not found"


def test_unreadable_metadata(bundle):
    (bundle / "model.json").write_text("{not json")
    assert refusal(bundle).startswith(f"{bundle / 'model.json'}: unreadable")


def test_checksum_mismatch_refuses_before_unpickling(bundle, monkeypatch):
    monkeypatch.setattr(joblib, "load", lambda *a: pytest.fail("unpickled a file with a wrong checksum"))
    with open(bundle / "model.pkl", "ab") as f:
        f.write(b"tampered")
    message = refusal(bundle)
    assert message.startswith(f"{bundle / 'model.pkl'}: SHA-256 is ")
    assert "refusing to unpickle it" in message


def test_environment_checksum_overrides_metadata(bundle):
    message = refusal(bundle, expected_sha256="0" * 64)
    assert f"expected {'0' * 64}" in message


def test_pickle_that_fails_to_load(bundle):
    garbage = b"this is not a pickle"
    (bundle / "model.pkl").write_bytes(garbage)
    edit_metadata(bundle, model_sha256=hashlib.sha256(garbage).hexdigest())
    assert refusal(bundle).startswith(f"{bundle / 'model.pkl'}: failed to load")


def test_other_scikit_learn_version_is_refused(bundle, metadata):
    edit_metadata(bundle, versions={**metadata["versions"], "scikit-learn": "1.2.2"})
    message = refusal(bundle)
    assert "made with scikit-learn 1.2.2" in message
    assert f"scikit-learn {metadata['versions']['scikit-learn']} is installed" in message


def test_other_numpy_major_version_is_refused(bundle, metadata):
    edit_metadata(bundle, versions={**metadata["versions"], "numpy": "1.26.4"})
    assert "made with numpy 1.26.4" in refusal(bundle)


def test_metadata_that_does_not_fit_the_pickle(bundle):
    edit_metadata(bundle, features=["a", "b", "c"])
    assert "expects 4 features, model.json lists 3" in refusal(bundle)


def test_function_refuses_to_start_on_a_bad_model(bundle):
    for name in SERVED_FILES:
        shutil.copy(ROOT / name, bundle)
    (bundle / "model.pkl").write_bytes(b"tampered")
    result = subprocess.run(
        [sys.executable, "-m", "functions_framework", "--target", "predict", "--source", str(bundle / "main.py"),
         "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=bundle,
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith(f"cannot serve: {bundle / 'model.pkl'}: SHA-256 is ")
