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
    result = make_package(f"MODEL={tmp_path / 'model.pkl'}", f"DATA={folder / 'sample.csv'}", "TARGET=class",
                          f"MODULES={steps / 'notebook_steps.py'}", cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads((project / "model.json").read_text())["modules"] == ["notebook_steps"]
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
    assert "note: no sample: every column the pipeline doesn't one-hot encode is taken to be a number" in printed
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


@pytest.mark.parametrize("estimator, served_as, pinned", [
    (RandomForestClassifier(n_estimators=20, random_state=0), "data", set()),
    (KNeighborsClassifier(), "pipeline", {"scikit-learn", "scipy", "joblib", "pandas"}),
], ids=["a forest, served as data", "nearest neighbours, through scikit-learn"])
def test_make_verify_passes_for_a_packaged_dataframe_pipeline(tmp_path, estimator, served_as, pinned):
    """Deployed as Cloud Functions builds it, from requirements.txt alone: a pipeline served as data
    with numpy only (no scikit-learn to import), one that is not with what unpickling it needs."""
    project = copy_project(tmp_path / "project")
    pipe, table = penguins_pipeline(estimator)
    dump(pipe, tmp_path / "penguins.pkl")
    table.to_csv(tmp_path / "penguins.csv", index=False)
    result = make_package(f"MODEL={tmp_path / 'penguins.pkl'}", f"DATA={tmp_path / 'penguins.csv'}", cwd=project)
    assert result.returncode == 0, result.stderr
    assert json.loads((project / "model.json").read_text())["served_as"] == served_as
    assert pins(project) == {"functions-framework", "orjson", "numpy"} | pinned
    verify = subprocess.run(["make", "--no-print-directory", "verify", f"VERIFY_PYTHONS={sys.executable}"],
                            cwd=project, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout[-3000:]
    assert "PASS" in verify.stdout
