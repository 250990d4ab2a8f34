"""make package: a pipeline made elsewhere, as the tutorial's notebook makes one, packaged,
served, and answering exactly what the pickle itself answers; and what can't be served, refused
at packaging with what to do about it."""

import json
import subprocess
import sys
import zipfile

import joblib
import numpy as np
import palmerpenguins
import pandas as pd
import pytest
import requests
import sklearn.base
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from conftest import ROOT, TUTORIAL_ROW, Server, as_requests, close, columns, copy_function_code, copy_project

NOTEBOOK_STEP = '''
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X.clip(-1e6, 1e6)
'''


def make_package(*args, cwd=ROOT):
    return subprocess.run(["make", "--no-print-directory", "package", *args], cwd=cwd, capture_output=True, text=True)


def dump(pipeline, path):
    with open(path, "wb") as f:  # as the tutorial's notebook writes it
        joblib.dump(pipeline, f)
    return path


def packaged(folder, *args):
    """`make package` into `folder`, then the function served from it."""
    result = make_package(*args, f"OUT={folder}")
    assert result.returncode == 0, result.stderr
    copy_function_code(ROOT, folder)
    return result.stdout, json.loads((folder / "model.json").read_text()), Server(folder / "main.py").wait_ready()


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The tutorial's notebook: the iris DataFrame with its own column names, C=0.05 so that it
    differs from train.py's model, dumped with joblib; and a sample CSV of the same frame."""
    folder = tmp_path_factory.mktemp("notebook")
    data = load_iris()
    X = pd.DataFrame(data.data, columns=data.feature_names)
    y = pd.Series(data.target, name="class")
    pipe = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(C=0.05))]).fit(X, y)
    dump(pipe, folder / "model.pkl")
    pd.concat([X, y], axis=1).to_csv(folder / "sample.csv", index=False)
    return folder, pipe, X


def test_the_tutorials_notebook_pipeline_answers_as_its_pickle(notebook, tmp_path):
    folder, pipe, X = notebook
    printed, metadata, server = packaged(tmp_path, f"MODEL={folder / 'model.pkl'}", f"DATA={folder / 'sample.csv'}",
                                         "TARGET=class", "CLASS_NAMES=setosa,versicolor,virginica")
    with server:
        by_name = requests.post(server.url, json=TUTORIAL_ROW).json()
        by_column = requests.post(server.url, json=dict(zip(X.columns, TUTORIAL_ROW.values()))).json()
        batch = requests.post(server.url, json={"instances": X.to_dict("records")}).json()["predictions"]
    row = pd.DataFrame([list(TUTORIAL_ROW.values())], columns=X.columns)
    expected = {"predicted_class": 0, "class_name": "setosa",
                "probabilities": dict(zip(["setosa", "versicolor", "virginica"], pipe.predict_proba(row)[0].tolist()))}
    assert close([by_name, by_column], [expected, expected])
    assert by_name["probabilities"]["setosa"] != pytest.approx(0.9847, abs=1e-3)  # not train.py's model
    assert [answer["predicted_class"] for answer in batch] == pipe.predict(X).tolist()
    assert np.allclose([list(a["probabilities"].values()) for a in batch], pipe.predict_proba(X), rtol=0, atol=1e-12)
    assert metadata["served_as"] == "data" and metadata["input"] == "array"  # read as data, and no pandas to serve it
    assert metadata["metrics"]["sample_accuracy"] == round(float(pipe.score(X, load_iris().target)), 4)
    assert "StandardScaler + LogisticRegression, a classification" in printed


def penguins_pipeline(estimator):
    table = palmerpenguins.load_penguins()
    X, y = table.drop(columns=["species"]), table["species"]
    prep = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]),
        ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
    ])
    return Pipeline([("prep", prep), ("model", estimator)]).fit(X, y), table


@pytest.mark.parametrize("estimator", [RandomForestClassifier(n_estimators=40, random_state=0),
                                       HistGradientBoostingClassifier(max_iter=40, random_state=0)],
                         ids=["random forest", "histogram gradient boosting"])
def test_a_penguins_pipeline_of_ones_own_is_served_with_strings_and_nulls(tmp_path, estimator):
    pipe, table = penguins_pipeline(estimator)
    dump(pipe, tmp_path / "penguins.pkl")
    table.to_csv(tmp_path / "penguins.csv", index=False)
    out = tmp_path / "bundle"
    printed, metadata, server = packaged(out, f"MODEL={tmp_path / 'penguins.pkl'}", f"DATA={tmp_path / 'penguins.csv'}",
                                         "TARGET=species")
    X = table[columns(metadata)]
    with server:
        batch = requests.post(server.url, json={"instances": as_requests(table, metadata)})
        nulls = requests.post(server.url, json={**as_requests(table, metadata)[0], "sex": None, "body_mass_g": None})
    assert metadata["input"] == "dataframe" and metadata["served_as"] == "data" and "served as data" in printed
    assert {f["name"]: f["type"] for f in metadata["fields"]}["island"] == "string"
    assert all(f["nullable"] for f in metadata["fields"])
    names = metadata["class_names"]
    expected = [{"predicted_class": label, "class_name": label, "probabilities": dict(zip(names, p))}
                for label, p in zip(pipe.predict(X).tolist(), pipe.predict_proba(X).tolist())]
    assert close([{k: v for k, v in a.items() if k != "warnings"} for a in batch.json()["predictions"]], expected)
    row = X.iloc[[0]].copy()
    row[["sex", "body_mass_g"]] = np.nan
    assert nulls.json()["predicted_class"] == pipe.predict(row)[0]


def test_a_regressor_is_packaged_and_an_unknown_category_it_refuses_is_named(tmp_path):
    table = palmerpenguins.load_penguins().dropna(subset=["body_mass_g"])
    X, y = table[["island", "bill_length_mm", "flipper_length_mm"]], table["body_mass_g"]
    prep = ColumnTransformer([("numbers", "passthrough", ["bill_length_mm", "flipper_length_mm"]),
                              ("island", OneHotEncoder(handle_unknown="error"), ["island"])])
    pipe = Pipeline([("prep", prep), ("model", HistGradientBoostingRegressor(max_iter=40))]).fit(X, y)
    dump(pipe, tmp_path / "mass.pkl")
    table.to_csv(tmp_path / "penguins.csv", index=False)
    printed, metadata, server = packaged(tmp_path / "bundle", f"MODEL={tmp_path / 'mass.pkl'}",
                                         f"DATA={tmp_path / 'penguins.csv'}", "TARGET=body_mass_g")
    with server:
        rows = as_requests(table, metadata)
        answers = requests.post(server.url, json={"instances": rows}).json()["predictions"]
        unknown = requests.post(server.url, json={**rows[0], "island": "Atlantis"})
    assert metadata["task"] == "regression" and metadata["metrics"]["sample_r2"] > 0.7
    assert close(answers, [{"predicted_value": v} for v in pipe.predict(X[columns(metadata)]).tolist()])
    assert (unknown.status_code, unknown.json()) == (400, {
        "error": "island must be one of Biscoe, Dream, Torgersen, not 'Atlantis'", "field": "island"})


def test_a_diabetes_regressor_fitted_on_arrays_needs_no_pandas(tmp_path):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), HistGradientBoostingRegressor(max_iter=30)).fit(X.to_numpy(), y)
    dump(pipe, tmp_path / "model.pkl")
    X.assign(progression=y).to_csv(tmp_path / "diabetes.csv", index=False)
    printed, metadata, server = packaged(tmp_path / "bundle", f"MODEL={tmp_path / 'model.pkl'}",
                                         f"DATA={tmp_path / 'diabetes.csv'}", "TARGET=progression")
    with server:
        answers = requests.post(server.url, json={"instances": X.to_numpy().tolist()}).json()["predictions"]
    assert metadata["input"] == "array" and metadata["name"] == "diabetes"
    assert close(answers, [{"predicted_value": v} for v in pipe.predict(X.to_numpy()).tolist()])


def test_a_class_defined_in_the_notebook_is_refused_saying_what_to_do(tmp_path, notebook):
    folder, _, X = notebook
    script = f"""
import joblib, pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.datasets import load_iris
{NOTEBOOK_STEP}
data = load_iris()
X = pd.DataFrame(data.data, columns=data.feature_names)
joblib.dump(Pipeline([("clip", Clip()), ("model", LogisticRegression())]).fit(X, data.target), {str(tmp_path / 'model.pkl')!r})
"""
    subprocess.run([sys.executable, "-c", script], check=True)
    result = make_package(f"MODEL={tmp_path / 'model.pkl'}", f"DATA={folder / 'sample.csv'}", f"OUT={tmp_path / 'bundle'}")
    assert result.returncode != 0
    assert (f"package.py: {tmp_path / 'model.pkl'}: it uses Clip, a class defined in the notebook itself (__main__), "
            "which a function can't import: move Clip into a module of its own") in result.stderr
    assert "nothing written" in result.stderr and not (tmp_path / "bundle" / "model.json").exists()


def test_a_class_from_a_module_of_ones_own_is_packaged_with_that_module(tmp_path, notebook):
    folder, _, X = notebook
    steps = tmp_path / "steps"
    steps.mkdir()
    (steps / "notebook_steps.py").write_text(NOTEBOOK_STEP)
    sys.path.insert(0, str(steps))
    try:
        from notebook_steps import Clip

        pipe = Pipeline([("clip", Clip()), ("model", LogisticRegression(max_iter=500))]).fit(X, load_iris().target)
    finally:
        sys.path.remove(str(steps))
    dump(pipe, tmp_path / "model.pkl")
    without = make_package(f"MODEL={tmp_path / 'model.pkl'}", f"DATA={folder / 'sample.csv'}", f"OUT={tmp_path / 'b1'}")
    assert without.returncode != 0
    assert ("it uses notebook_steps.Clip, from the module notebook_steps, which the bundle doesn't hold: "
            "add it with MODULES=") in without.stderr
    project = copy_project(tmp_path / "project")
    given = (f"MODEL={tmp_path / 'model.pkl'}", f"DATA={folder / 'sample.csv'}", "TARGET=class", f"MODULES={steps / 'notebook_steps.py'}")
    untrusted = make_package(*given, cwd=project)  # MODULES= trusts the module; scikit-learn's classes, unchecked, need TRUST=
    assert untrusted.returncode != 0 and untrusted.stderr.strip().splitlines()[:1] == [
        f"package.py: {tmp_path / 'model.pkl'}: it asks for notebook_steps.Clip, which is not read as data, so it would be "
        "unpickled, and loading a pickle can run any code it names (scikit-learn's documentation warns so too): only if you "
        "made this file yourself, package it with TRUST=scikit-learn (nothing written; the existing model is unchanged)"]
    assert not (project / "notebook_steps.py").exists()
    result = make_package(*given, "TRUST=scikit-learn", cwd=project)
    assert result.returncode == 0, result.stderr
    metadata = json.loads((project / "model.json").read_text())
    assert (metadata["modules"], metadata["trust"]) == (["notebook_steps"], ["scikit-learn"])
    subprocess.run(["make", "--no-print-directory", "archive"], cwd=project, capture_output=True, check=True)
    with zipfile.ZipFile(project / "archive.zip") as archive:
        assert "notebook_steps.py" in archive.namelist()
    assert "!notebook_steps.py" in (project / ".gcloudignore").read_text().split()
    with Server(project / "main.py").wait_ready() as server:
        answer = requests.post(server.url, json=TUTORIAL_ROW).json()
    assert answer["predicted_class"] == pipe.predict(pd.DataFrame([list(TUTORIAL_ROW.values())], columns=X.columns))[0]


def test_a_pickle_from_another_scikit_learn_is_refused_with_both_versions(tmp_path, notebook, monkeypatch):
    folder, pipe, _ = notebook
    monkeypatch.setattr(sklearn.base, "__version__", "1.2.2")  # recorded in the pickle as its maker
    dump(pipe, tmp_path / "old.pkl")
    monkeypatch.undo()
    result = make_package(f"MODEL={tmp_path / 'old.pkl'}", f"DATA={folder / 'sample.csv'}", f"OUT={tmp_path / 'bundle'}")
    assert result.returncode != 0
    assert (f"made with scikit-learn 1.2.2, but requirements.txt pins scikit-learn {sklearn.__version__}" in result.stderr)
    assert "Either retrain it with scikit-learn" in result.stderr and "or pin the versions it was made with" in result.stderr


def test_a_pipeline_that_fails_on_the_sample_is_refused_naming_the_line(tmp_path, notebook):
    folder, _, X = notebook
    logged = make_pipeline(FunctionTransformer(np.log), LogisticRegression(max_iter=500)).fit(X, load_iris().target)
    dump(logged, tmp_path / "model.pkl")
    sample = pd.read_csv(folder / "sample.csv")
    sample.loc[3, "petal width (cm)"] = -1.0
    sample.to_csv(tmp_path / "sample.csv", index=False)
    result = make_package(f"MODEL={tmp_path / 'model.pkl'}", f"DATA={tmp_path / 'sample.csv'}", f"OUT={tmp_path / 'bundle'}")
    assert result.returncode != 0
    assert "package.py: the pipeline fails on line 5 of sample.csv: ValueError: Input X contains NaN" in result.stderr


def test_without_a_sample_it_does_what_it_can_and_says_what_it_assumed(tmp_path):
    pipe, table = penguins_pipeline(RandomForestClassifier(n_estimators=10, random_state=0))
    dump(pipe, tmp_path / "penguins.pkl")
    printed, metadata, server = packaged(tmp_path / "bundle", f"MODEL={tmp_path / 'penguins.pkl'}")
    with server:
        answer = requests.post(server.url, json=metadata["example"])
    assert "note: no sample: every column the pipeline doesn't one-hot encode or read as text is taken to be a number" in printed
    fields = {f["name"]: f for f in metadata["fields"]}
    assert fields["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"] and fields["year"]["type"] == "number"
    assert answer.status_code == 200 and answer.json()["predicted_class"] in metadata["classes"]


def test_something_that_is_not_a_model_is_refused(tmp_path):
    joblib.dump({"weights": [1, 2, 3]}, tmp_path / "model.pkl")
    result = make_package(f"MODEL={tmp_path / 'model.pkl'}", f"OUT={tmp_path / 'bundle'}")
    assert result.returncode != 0
    assert "holds a dict, which has no predict; pickle the fitted pipeline itself" in result.stderr


def pins(project):
    return {line.split("==")[0] for line in (project / "requirements.txt").read_text().split() if "==" in line}


@pytest.mark.parametrize("estimator, trust, served_as, pinned", [
    (RandomForestClassifier(n_estimators=20, random_state=0), [], "data", set()),
    (KNeighborsClassifier(), ["TRUST=scikit-learn"], "pipeline", {"scikit-learn", "scipy", "joblib", "pandas"}),
], ids=["a forest, served as data", "nearest neighbours, through scikit-learn"])
def test_make_verify_passes_for_a_packaged_dataframe_pipeline(tmp_path, estimator, trust, served_as, pinned):
    """Deployed as Cloud Functions builds it, from requirements.txt alone: a pipeline served as data
    with numpy only (no scikit-learn to import), one that is not with what unpickling it needs."""
    project = copy_project(tmp_path / "project")
    pipe, table = penguins_pipeline(estimator)
    dump(pipe, tmp_path / "penguins.pkl")
    table.to_csv(tmp_path / "penguins.csv", index=False)
    result = make_package(f"MODEL={tmp_path / 'penguins.pkl'}", f"DATA={tmp_path / 'penguins.csv'}", *trust, cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads((project / "model.json").read_text())["served_as"] == served_as
    assert pins(project) == {"functions-framework", "orjson", "numpy"} | pinned
    verify = subprocess.run(["make", "--no-print-directory", "verify", f"VERIFY_PYTHONS={sys.executable}"],
                            cwd=project, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout[-3000:]
    assert "PASS" in verify.stdout


# A sample or a model path package.py can't use stops it in one line on stderr, never a traceback,
# and leaves the bundle in --out as it was; a sample it can use, however saved, is packaged.

REFUSED = " (nothing written; the existing model is unchanged)\n"
PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"


def run_package(*args):
    """package.py as `make package` runs it (called directly: make adds a line of its own to a failure)."""
    return subprocess.run([sys.executable, str(ROOT / "package.py"), *map(str, args)], capture_output=True, text=True)


def stops_in_one_line(result, line):
    assert (result.returncode, result.stderr) == (1, line + REFUSED), result.stderr
    assert "Traceback" not in result.stdout


def iris_sample(notebook, change=lambda table: table, **to_csv):
    """The notebook's sample CSV, changed."""
    return change(pd.read_csv(notebook[0] / "sample.csv")).to_csv(index=False, **to_csv).encode()


def with_cell(table, line, column, value):
    """The table with `value` in `column` on line `line` of its CSV (the header is line 1)."""
    table = table.copy()
    table.loc[line - 2, column] = value
    return table


BROKEN_SAMPLES = {
    # name: (the sample's bytes from the notebook's, the line package.py stops with, {path} standing for the sample's)
    "empty": (lambda nb: b"", "{path}: the file is empty"),
    "an image": (lambda nb: PNG_START, "{path}: not a text file: byte 0x89 on line 1 isn't UTF-8 (save it as CSV UTF-8)"),
    "a header alone": (lambda nb: iris_sample(nb).split(b"\n")[0] + b"\n", "{path}: has a header but no rows"),
    "semicolons": (lambda nb: iris_sample(nb, sep=";"),
                   "{path}: its one column is named 'sepal length (cm);sepal width (cm);petal length (cm);petal width (cm);class': "
                   "is it separated by ';' rather than ','? A sample's columns are separated by commas (to_csv's default)"),
    "a column named twice": (lambda nb: iris_sample(nb).replace(b"petal width (cm)", b"petal length (cm)", 1),
                             "{path}: columns 3 and 4 are both named 'petal length (cm)'; rename one"),
    "1e200": (lambda nb: iris_sample(nb, lambda t: with_cell(t, 5, "petal length (cm)", 1e200)),
              "{path}: column 'petal length (cm)' holds 1e+200 on line 5, beyond 1e+100, the largest magnitude the function "
              "takes; correct or remove that line"),
    "a target without values": (lambda nb: iris_sample(nb, lambda t: t.assign(**{"class": None})),
                                "{path}: the target 'class' is empty on every line; without TARGET= it is packaged unscored"),
    "the target alone": (lambda nb: iris_sample(nb, lambda t: t[["class"]]),
                         "{path}: lacks the pipeline's columns: sepal length (cm), sepal width (cm), petal length (cm), petal width (cm)"),
}


def model_files(folder):
    return {name: (folder / name).read_bytes() for name in ("model.pkl", "model.json") if (folder / name).exists()}


@pytest.mark.parametrize("name", list(BROKEN_SAMPLES))
def test_a_sample_package_cannot_use_stops_it_in_one_line(tmp_path, bundle, notebook, name):
    content, line = BROKEN_SAMPLES[name]
    before = model_files(bundle)
    sample = tmp_path / "sample.csv"
    sample.write_bytes(content(notebook))
    result = run_package(notebook[0] / "model.pkl", "--data", sample, "--target", "class", "--out", bundle)
    stops_in_one_line(result, "package.py: " + line.format(path=sample))
    assert model_files(bundle) == before and len(before) == 2


def test_a_model_or_sample_path_that_is_no_file_stops_package_in_one_line(tmp_path, bundle, notebook):
    before, out = model_files(bundle), tmp_path / "new"
    model, sample = notebook[0] / "model.pkl", notebook[0] / "sample.csv"
    cases = [
        ([tmp_path / "absent.pkl"], f"{tmp_path / 'absent.pkl'}: file not found"),
        ([notebook[0]], f"{notebook[0]}: is a folder, not a file"),
        ([model, "--data", tmp_path / "absent.csv"], f"{tmp_path / 'absent.csv'}: file not found"),
        ([model, "--data", notebook[0]], f"{notebook[0]}: is a folder, not a file"),
    ]
    for args, line in cases:
        stops_in_one_line(run_package(*args, "--out", out), f"package.py: {line}")
        stops_in_one_line(run_package(*args, "--out", bundle), f"package.py: {line}")
    assert not out.exists() and model_files(bundle) == before
    assert run_package(model, "--data", sample, "--out", out).returncode == 0  # the same, with both found


def test_a_sample_at_the_functions_limit_is_packaged_and_served(tmp_path, notebook):
    """Whatever package.py writes, the function serves: a number beyond serving's MAX_MAGNITUDE is
    refused above; one at it makes a bundle that starts, and answers its example and that number."""
    from serving.fields import MAX_MAGNITUDE

    sample, out = tmp_path / "sample.csv", tmp_path / "bundle"
    sample.write_bytes(iris_sample(notebook, lambda t: with_cell(t, 5, "petal length (cm)", MAX_MAGNITUDE)))
    result = run_package(notebook[0] / "model.pkl", "--data", sample, "--target", "class", "--out", out)
    assert result.returncode == 0, result.stderr
    metadata = json.loads((out / "model.json").read_text())
    assert next(f for f in metadata["fields"] if f["name"] == "petal_length")["range"][1] == MAX_MAGNITUDE
    copy_function_code(ROOT, out)
    with Server(out / "main.py").wait_ready() as server:
        example = requests.post(server.url, json=metadata["example"])
        at_limit = requests.post(server.url, json={**metadata["example"], "petal_length": MAX_MAGNITUDE})
    assert example.status_code == at_limit.status_code == 200
    row = {field["column"]: metadata["example"][field["name"]] for field in metadata["fields"]}
    row["petal length (cm)"] = MAX_MAGNITUDE
    assert at_limit.json()["predicted_class"] == notebook[1].predict(pd.DataFrame([row]))[0]


def test_a_bom_windows_line_endings_and_a_target_of_one_value_are_packaged(tmp_path, notebook):
    """Excel's "CSV UTF-8" (a byte order mark, CR LF line ends) is the same sample as to_csv's; and a
    sample of one class is a sample, scored on that class."""
    def one_class(table):
        return table[table["class"] == 0]

    made = {}
    for name, content in (("plain", iris_sample(notebook, one_class)),
                          ("excel", "\ufeff".encode() + iris_sample(notebook, one_class, lineterminator="\r\n"))):
        (tmp_path / f"{name}.csv").write_bytes(content)
        result = run_package(notebook[0] / "model.pkl", "--data", tmp_path / f"{name}.csv", "--target", "class",
                             "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        made[name] = json.loads((tmp_path / name / "model.json").read_text())
    assert made["excel"]["fields"] == made["plain"]["fields"] and made["excel"]["example"] == made["plain"]["example"]
    assert made["excel"]["metrics"] == made["plain"]["metrics"] == {"sample_accuracy": 1.0}
    assert made["plain"]["data"]["rows"] == 50


def test_a_regressors_sample_target_of_one_value_or_of_text(tmp_path):
    """R² divides by the target's spread: a constant target is scored by its mean absolute error
    alone; a target of text can't score a regression, and says so in one line."""
    table = palmerpenguins.load_penguins().dropna(subset=["body_mass_g"])
    X, y = table[["bill_length_mm", "flipper_length_mm"]], table["body_mass_g"]
    dump(make_pipeline(SimpleImputer(), HistGradientBoostingRegressor(max_iter=20)).fit(X, y), tmp_path / "mass.pkl")
    table.assign(body_mass_g=4000.0).to_csv(tmp_path / "constant.csv", index=False)
    constant = run_package(tmp_path / "mass.pkl", "--data", tmp_path / "constant.csv", "--target", "body_mass_g",
                           "--out", tmp_path / "bundle")
    assert constant.returncode == 0, constant.stderr
    metrics = json.loads((tmp_path / "bundle" / "model.json").read_text())["metrics"]
    assert list(metrics) == ["sample_mae"] and "on the sample: sample_mae" in constant.stdout
    text = run_package(tmp_path / "mass.pkl", "--data", tmp_path / "constant.csv", "--target", "species", "--out", tmp_path / "b2")
    stops_in_one_line(text, f"package.py: {tmp_path / 'constant.csv'}: the target 'species' holds text, but the pipeline is a regression")
    assert not (tmp_path / "b2").exists()
