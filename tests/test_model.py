"""model.pkl and model.json: what train.py makes, and what the loader refuses."""

import hashlib
import json
import math
import shutil
import subprocess
import sys
from importlib.metadata import version

import joblib
import numpy as np
import pytest
import requests

import train
from conftest import ROOT, SERVED_FILES, TUTORIAL_ROW, Server
from model_loader import ModelError, affine_softmax, load_model


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


# The loader refuses any model it can't trust, with one line naming the file and the cause:
# at once what it can check without scikit-learn, the rest when check() unpickles model.pkl.

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


def without_scorer(bundle):
    metadata = json.loads((bundle / "model.json").read_text())
    del metadata["scorer"]
    (bundle / "model.json").write_text(json.dumps(metadata))


def one_line(caught):
    message = str(caught.value)
    assert "\n" not in message
    return message


def refusal(bundle, **kwargs):
    with pytest.raises(ModelError) as caught:
        load_model(bundle, **kwargs)
    return one_line(caught)


def check_refusal(bundle):
    model = load_model(bundle)  # answers from the scorer...
    assert model.scorer is not None
    with pytest.raises(ModelError) as caught:
        model.check()  # ...until the check the function runs in the background refuses it
    return one_line(caught)


def test_good_bundle_loads_without_scikit_learn(bundle):
    # Importing scikit-learn is most of a second or more: no new instance waits for it.
    script = (
        "import sys; import numpy as np; from model_loader import load_model; "
        f"model = load_model({str(bundle)!r}); "
        "print(model.predict_proba(np.array([[5.1, 3.5, 1.4, 0.2]]))[0].tolist(), 'sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    probabilities, sklearn_imported = result.stdout.rsplit(" ", 1)
    assert sklearn_imported.strip() == "False"
    assert json.loads(probabilities)[0] > 0.9


def test_check_passes_and_keeps_the_pipeline(bundle, pipeline, iris):
    model = load_model(bundle)
    model.check()
    assert np.array_equal(model.pipeline.predict_proba(iris.data), pipeline.predict_proba(iris.data))


def test_check_unpickles_the_bytes_whose_checksum_was_checked(bundle):
    model = load_model(bundle)
    (bundle / "model.pkl").write_bytes(b"replaced after the checksum was checked")
    model.check()
    assert model.pipeline is not None


def test_scorer_is_what_train_py_computed_from_the_pipeline(bundle, pipeline):
    scorer = load_model(bundle).scorer
    computed = affine_softmax(pipeline)
    assert scorer.weights.tolist() == computed.weights.tolist()  # bit for bit: JSON keeps floats exactly
    assert scorer.bias.tolist() == computed.bias.tolist()


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
    assert check_refusal(bundle).startswith(f"{bundle / 'model.pkl'}: failed to load")
    without_scorer(bundle)
    assert refusal(bundle).startswith(f"{bundle / 'model.pkl'}: failed to load")


def test_other_scikit_learn_version_is_refused(bundle, metadata):
    edit_metadata(bundle, versions={**metadata["versions"], "scikit-learn": "1.2.2"})
    message = refusal(bundle)
    assert "made with scikit-learn 1.2.2" in message
    assert f"scikit-learn {metadata['versions']['scikit-learn']} is installed" in message


def test_other_numpy_major_version_is_refused(bundle, metadata):
    edit_metadata(bundle, versions={**metadata["versions"], "numpy": "1.26.4"})
    assert "made with numpy 1.26.4" in refusal(bundle)


def test_scorer_that_does_not_fit_the_metadata(bundle):
    edit_metadata(bundle, features=["a", "b", "c"])
    assert "scorer has weights (4, 3) and bias (3,), but there are 3 features and 3 classes" in refusal(bundle)


def test_malformed_scorer(bundle, metadata):
    edit_metadata(bundle, scorer={**metadata["scorer"], "weights": "four rows"})
    assert refusal(bundle).startswith(f"{bundle / 'model.json'}: scorer is malformed")
    edit_metadata(bundle, scorer={"bias": metadata["scorer"]["bias"]})
    assert refusal(bundle).startswith(f"{bundle / 'model.json'}: scorer is malformed")
    weights = [row[:] for row in metadata["scorer"]["weights"]]
    weights[1][2] = math.inf
    edit_metadata(bundle, scorer={**metadata["scorer"], "weights": weights})
    assert refusal(bundle) == f"{bundle / 'model.json'}: scorer holds a number that is not finite"


def nudge_scorer(bundle, metadata):
    """One of model.json's scorer weights moved by 1e-6: enough to move probabilities by more
    than 1e-9, so that the scorer no longer gives model.pkl's answers."""
    weights = [row[:] for row in metadata["scorer"]["weights"]]
    weights[3][2] += 1e-6
    edit_metadata(bundle, scorer={**metadata["scorer"], "weights": weights})


def test_scorer_that_differs_from_the_pickle(bundle, metadata):
    nudge_scorer(bundle, metadata)
    assert check_refusal(bundle) == (
        f"{bundle / 'model.pkl'}: its answers differ from the scorer in model.json; write both again with train.py"
    )


def test_pickle_that_does_not_fit_the_metadata(bundle):
    without_scorer(bundle)
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


def test_served_function_checks_its_model_in_the_background(server):
    requests.post(server.url, json=TUTORIAL_ROW)
    lines = server.log_lines(lambda line: line["message"].startswith("model checked"))
    assert lines == [{"severity": "INFO", "message": "model checked: model.pkl gives the scorer's answers"}]
    assert requests.post(server.url, json=TUTORIAL_ROW).json()["predicted_class"] == 0


def test_function_that_fails_its_check_stops_answering(bundle, metadata):
    for name in SERVED_FILES:
        shutil.copy(ROOT / name, bundle)
    nudge_scorer(bundle, metadata)
    server = Server(bundle / "main.py").wait_ready()  # its GET starts the check
    try:
        [line] = server.log_lines(lambda line: line["message"].startswith("cannot serve"))
        assert line["severity"] == "ERROR"
        assert line["message"].endswith("its answers differ from the scorer in model.json; write both again with train.py")
        single = requests.post(server.url, json=TUTORIAL_ROW)
        assert single.status_code == 503
        assert single.json() == {"error": "the model failed its check when this instance started", "field": None}
        batch = requests.post(server.url, json={"instances": [TUTORIAL_ROW]})
        assert batch.status_code == 503
        bigquery = requests.post(server.url, json={"calls": [list(TUTORIAL_ROW.values())]})
        assert (bigquery.status_code, bigquery.json()) == (
            503, {"errorMessage": "the model failed its check when this instance started"}
        )
        assert requests.get(server.url).status_code == 200  # it still says what it is
    finally:
        server.stop()
