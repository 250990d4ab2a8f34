"""train.py on any CSV, and a function that follows whatever model it made."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_iris, load_wine

import train
from conftest import ROOT, SERVED_FILES, Server, columns, field_names, is_compact_json



def run_train(*args):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def committed_model():
    """The iris model in the repo, as it was before these tests: they must leave it alone."""
    before = {name: (ROOT / name).read_bytes() for name in ("model.pkl", "model.json")}
    yield
    assert {name: (ROOT / name).read_bytes() for name in before} == before


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    wine = load_wine(as_frame=True)
    table = wine.data.copy()
    table["cultivar"] = [f"cultivar {wine.target_names[i][-1]}" for i in wine.target]
    path = tmp_path_factory.mktemp("data") / "wine.csv"
    table.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def wine_bundle(wine_csv, tmp_path_factory, committed_model):
    folder = tmp_path_factory.mktemp("wine-bundle")
    result = subprocess.run(
        ["make", "--no-print-directory", "train", f"DATA={wine_csv}", "TARGET=cultivar", f"OUT={folder}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    for name in SERVED_FILES:
        shutil.copy(ROOT / name, folder)
    return folder, result.stdout


def test_summary_is_printed(wine_bundle):
    _, output = wine_bundle
    assert "trained on wine.csv: 178 rows, 13 features" in output
    assert "3 classes (cultivar 0, cultivar 1, cultivar 2)" in output
    assert "5-fold cross-validated accuracy 0.9" in output


def test_metadata_follows_the_csv(wine_bundle, wine_csv):
    folder, _ = wine_bundle
    metadata = json.loads((folder / "model.json").read_text())
    assert columns(metadata) == list(pd.read_csv(wine_csv).columns[:-1])
    assert field_names(metadata)[:2] == ["alcohol", "malic_acid"]
    assert "od280_od315_of_diluted_wines" in field_names(metadata)
    assert metadata["class_names"] == ["cultivar 0", "cultivar 1", "cultivar 2"]
    assert 0.9 < metadata["metrics"]["cv_accuracy"] <= 1
    assert metadata["model_sha256"] == hashlib.sha256((folder / "model.pkl").read_bytes()).hexdigest()


def test_served_wine_model_matches_a_pipeline_fitted_directly(wine_bundle, wine_csv):
    folder, _ = wine_bundle
    metadata = json.loads((folder / "model.json").read_text())
    table = pd.read_csv(wine_csv)
    X = table.drop(columns=["cultivar"]).to_numpy()
    y = np.unique(table["cultivar"], return_inverse=True)[1]
    direct = train.make_pipeline().fit(X, y)

    server = Server(folder / "main.py").wait_ready()
    try:
        description = requests.get(server.url).json()
        single = requests.post(server.url, json=dict(zip(field_names(metadata), X[0].tolist()))).json()
        batch = requests.post(server.url, json={"instances": X.tolist()}).json()["predictions"]
        bigquery = requests.post(server.url, json={"calls": X[:5].tolist()}).json()
        missing = requests.post(server.url, json={"alcohol": 13.2}).json()
        page = requests.get(server.url, headers={"Accept": "text/html"})
        openapi = requests.get(server.url + "openapi.json").json()
    finally:
        server.stop()
    assert description["model"]["features"] == field_names(metadata)
    assert single["class_name"] == "cultivar 0"
    assert [p["predicted_class"] for p in batch] == direct.predict(X).tolist()
    assert np.allclose([list(p["probabilities"].values()) for p in batch], direct.predict_proba(X), rtol=0, atol=1e-12)
    assert bigquery == {"replies": [metadata["class_names"][c] for c in direct.predict(X[:5])]}
    assert missing == {"error": "malic_acid is missing", "field": "malic_acid"}
    assert page.status_code == 200 and "<form" in page.text
    assert list(openapi["components"]["schemas"]["Row"]["properties"]) == field_names(metadata)


def test_class_names_that_need_escaping_in_json(tmp_path, committed_model):
    iris = load_iris(as_frame=True)
    table = iris.data.copy()
    names = ['say "setosa"', "100% versicolor", "virginica \\ blüte ✿"]
    table["label"] = [names[i] for i in iris.target]
    table.to_csv(tmp_path / "iris.csv", index=False)
    folder = tmp_path / "bundle"
    folder.mkdir()
    assert run_train("--data", tmp_path / "iris.csv", "--target", "label", "--out", folder).returncode == 0
    for name in SERVED_FILES:
        shutil.copy(ROOT / name, folder)
    server = Server(folder / "main.py").wait_ready()
    rows = iris.data.to_numpy()[[0, 60, 120]].tolist()
    try:
        answers = [
            requests.post(server.url, json=dict(zip(("sepal_length", "sepal_width", "petal_length", "petal_width"), rows[0]))),
            requests.post(server.url, json={"instances": rows}),
            requests.post(server.url, json={"calls": rows, "userDefinedContext": {"return": "json"}}),
            requests.post(server.url, json={"calls": rows}),
        ]
    finally:
        server.stop()
    for answer in answers:
        assert answer.status_code == 200
        assert is_compact_json(answer.text)
    assert sorted(json.loads((folder / "model.json").read_text())["class_names"]) == sorted(names)
    assert answers[0].json()["class_name"] == names[0]
    assert [p["class_name"] for p in answers[1].json()["predictions"]] == names
    assert list(answers[1].json()["predictions"][0]["probabilities"]) == sorted(names)
    assert answers[3].json() == {"replies": names}


@pytest.fixture
def out_dir(tmp_path):
    """An output folder already holding a model, which a failed run must leave untouched."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("model.pkl", "model.json"):
        shutil.copy(ROOT / name, out / name)
    return out


def write_csv(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def rows(n_per_class, classes=("a", "b")):
    return "".join(f"{i}.5,{i % 7},{label}\n" for label in classes for i in range(n_per_class))


@pytest.mark.parametrize("text, target, message", [
    (None, "y", "file not found"),
    ("x1,x2,label\n" + rows(6), "species", "no column 'species'; the columns are: x1, x2, label"),
    ("x1,colour,label\n" + "".join(f"1.0,red,{c}\n" for c in "ab" * 6), "label", "non-numeric feature columns: colour"),
    ("x1,x2,label\n1.0,,a\n" + rows(6) + "2.0,3.0,\n", "label", "2 missing or non-finite values; first on lines 2, 15"),
    ("x1,x2,label\n" + rows(6, classes=("a",)), "label", "has a single class"),
    ("x1,x2,label\n" + rows(6) + "1.0,2.0,c\n", "label", "classes with fewer than 5 rows (needed for 5-fold cross-validation): c"),
    ("a b,A-B,label\n" + rows(6), "label", "columns 'a b' and 'A-B' both become field 'a_b'"),
])
def test_bad_data_stops_with_a_clear_message_and_keeps_the_model(tmp_path, out_dir, text, target, message):
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    data = tmp_path / "absent.csv" if text is None else write_csv(tmp_path, text)
    result = run_train("--data", data, "--target", target, "--out", out_dir)
    assert result.returncode == 1
    assert message in result.stderr
    assert "the existing model is unchanged" in result.stderr
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


def test_no_arguments_trains_iris_as_before(tmp_path, committed_model):
    result = run_train("--out", tmp_path)
    assert result.returncode == 0
    assert (tmp_path / "model.pkl").read_bytes() == (ROOT / "model.pkl").read_bytes()
