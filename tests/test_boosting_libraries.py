"""XGBoost's and LightGBM's estimators in a scikit-learn pipeline, fitted on a DataFrame and dumped
with joblib as a notebook does: refused without TRUST= naming the library; packaged with it, its
installed version pinned in requirements.txt, model.json listing exactly the names the pickle
unpickles; and served, answering exactly what the pipeline itself answers."""

import io
import json
import shutil
import subprocess
import sys
from importlib.metadata import version

import joblib
import numpy as np
import palmerpenguins
import pytest
import requests
from joblib.numpy_pickle import NumpyUnpickler
from lightgbm import LGBMClassifier, LGBMRegressor
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

import package
from bundling import loading
from bundling.fields import DataError
from bundling.writer import PINS_NOTE
from serving.bundle import ModelError, load_model
from serving.safe_pickle import installed_library

from conftest import ROOT, Server, as_requests, columns, copy_function_code, copy_project

NOTHING = " (nothing written; the existing model is unchanged)"
WARNED = "loading a pickle can run any code it names (scikit-learn's documentation warns so too)"
SPECIES = ["Adelie", "Chinstrap", "Gentoo"]


def package_py(*args):
    """package.py as make package runs it."""
    return subprocess.run([sys.executable, str(ROOT / "package.py"), *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def refusal(result):
    assert result.returncode == 1, result.stdout
    [line] = result.stderr.strip().splitlines()
    return line


def unpickled_names(path):
    """Every module.name the pickle at `path` has the unpickler look up, as plain joblib loads it."""
    class Noting(NumpyUnpickler):
        def find_class(self, module, name):
            seen.add(f"{module}.{name}")
            return super().find_class(module, name)

    seen = set()
    Noting("", io.BytesIO(path.read_bytes()), ensure_native_byte_order=True).load()
    return sorted(seen)


def pinned(folder):
    """What requirements.txt pins below the bundle writer's note, in order."""
    lines = (folder / "requirements.txt").read_text().splitlines()
    return lines[lines.index(PINS_NOTE) + 1:]


def penguins_classifier(library):
    """The notebook's pipeline: the penguins' table, gaps and text as they are, into a boosting
    classifier. XGBoost's asks for classes 0..n-1, so the notebook encodes the species itself;
    LightGBM's takes the names."""
    table = palmerpenguins.load_penguins()
    X, y = table.drop(columns=["species"]), table["species"]
    prep = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]),
        ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
    ])
    if library == "xgboost":
        model, y = XGBClassifier(n_estimators=30, max_depth=3, random_state=0), LabelEncoder().fit(SPECIES).transform(y)
    else:
        model = LGBMClassifier(n_estimators=30, random_state=0, verbose=-1)
    return Pipeline([("prep", prep), ("model", model)]).fit(X, y), table


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    """{library: (folder, pipeline, sample)}: each library's pipeline dumped, and its sample: every
    other row of the table, and every row with a gap (packaging probes each row it is given)."""
    made = {}
    for library in ("xgboost", "lightgbm"):
        folder = tmp_path_factory.mktemp(library)
        pipe, table = penguins_classifier(library)
        joblib.dump(pipe, folder / "penguins.pkl")
        sample = table[(table.index % 2 == 0) | table.isna().any(axis=1)]
        sample.to_csv(folder / "penguins.csv", index=False)
        made[library] = folder, pipe, sample
    return made


@pytest.fixture(scope="module")
def bundles(penguins, tmp_path_factory):
    """{library: the folder it was packaged into, with TRUST=scikit-learn,<library>}, made once asked for."""
    made = {}

    def bundle(library):
        if library not in made:
            folder, _, _ = penguins[library]
            out = tmp_path_factory.mktemp(f"{library}-bundle")
            shutil.copy(ROOT / "requirements.txt", out / "requirements.txt")  # a project's, pinned by the writer
            names = ["--class-names", ",".join(SPECIES)] if library == "xgboost" else []
            result = package_py(folder / "penguins.pkl", "--data", folder / "penguins.csv", "--target", "species",
                                "--trust", f"scikit-learn,{library}", *names, "--out", out)
            assert result.returncode == 0, result.stderr
            made[library] = out, result.stdout
        return made[library]

    return bundle


@pytest.mark.parametrize("library, estimator", [("xgboost", "xgboost.sklearn.XGBClassifier"),
                                                ("lightgbm", "lightgbm.sklearn.LGBMClassifier")])
def test_a_boosting_pipeline_is_refused_until_trust_names_its_library(penguins, tmp_path, library, estimator):
    folder, _, _ = penguins[library]
    result = package_py(folder / "penguins.pkl", "--data", folder / "penguins.csv", "--trust", "scikit-learn", "--out", tmp_path / "bundle")
    assert refusal(result) == (
        f"package.py: {folder / 'penguins.pkl'}: it asks for {estimator}, which is not read as data, so it would be "
        f"unpickled, and {WARNED}: only if you made this file yourself, package it with TRUST=scikit-learn,{library}{NOTHING}")
    assert not (tmp_path / "bundle").exists()


def test_a_library_not_installed_here_is_named_for_trust_not_for_modules(penguins, monkeypatch):
    """The notebook had XGBoost, make package's environment hasn't: install it, and TRUST=xgboost."""
    folder, _, _ = penguins["xgboost"]
    others = {module: found for module, found in loading.distributions_of().items() if module != "xgboost"}
    monkeypatch.setattr(loading, "distributions_of", lambda: others)
    with pytest.raises(DataError) as caught:
        package.package(folder / "penguins.pkl", folder / "penguins.csv", trust=["scikit-learn"], out=folder / "bundle")
    assert str(caught.value) == (
        f"{folder / 'penguins.pkl'}: it uses xgboost.sklearn.XGBClassifier, from xgboost, a library not installed here: "
        "install the version the notebook has (.venv/bin/pip install xgboost==that version), then package with TRUST=xgboost")


@pytest.mark.parametrize("library", ["xgboost", "lightgbm"])
def test_a_boosting_pipeline_is_packaged_pinned_and_served_answering_as_itself(penguins, bundles, library):
    folder, pipe, sample = penguins[library]
    out, printed = bundles(library)
    installed = installed_library(library)  # xgboost-cpu, say, which TRUST=xgboost finds
    metadata = json.loads((out / "model.json").read_text())
    assert (metadata["served_as"], metadata["trust"]) == ("pipeline", ["scikit-learn", installed])
    assert metadata["unpickles"] == unpickled_names(folder / "penguins.pkl")
    assert metadata["versions"][installed] == version(installed)
    assert pinned(out) == [f"{name}=={version(name)}" for name in ("scikit-learn", "scipy", "joblib", "pandas", installed)]
    assert metadata["class_names"] == SPECIES and metadata["metrics"]["sample_accuracy"] > 0.95  # scored on the names
    assert f"served through scikit-learn and {installed}" in printed
    copy_function_code(ROOT, out)
    X = sample[columns(metadata)]
    with Server(out / "main.py").wait_ready() as server:
        batch = requests.post(server.url, json={"instances": as_requests(sample, metadata)}).json()["predictions"]
        [started] = server.log_lines(lambda line: line["message"].startswith("serving "))
    assert [answer["predicted_class"] for answer in batch] == pipe.predict(X).tolist()
    # XGBoost's probabilities are float32: served as the float64 each is exactly, through JSON and back unchanged.
    assert np.array_equal([list(answer["probabilities"].values()) for answer in batch], pipe.predict_proba(X))
    named = dict(zip(metadata["classes"], SPECIES))  # 0, 1, 2 for XGBoost's; the species themselves for LightGBM's
    assert [answer["class_name"] for answer in batch] == [named[label] for label in pipe.predict(X).tolist()]
    assert started["message"].endswith(f"model.pkl is unpickled, trusting the code of scikit-learn, {installed} "
                                       "(model.json's trust), which it may run")


def test_a_bundle_whose_library_is_another_version_stops_in_one_line(bundles):
    out, _ = bundles("xgboost")
    installed = installed_library("xgboost")
    metadata = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**metadata, "versions": {**metadata["versions"], installed: "1.7.6"}}))
    try:
        with pytest.raises(ModelError) as caught:
            load_model(out)
    finally:
        (out / "model.json").write_text(json.dumps(metadata))
    assert str(caught.value) == (f"model.pkl: made with {installed} 1.7.6, but {installed} {version(installed)} is "
                                 "installed; install the version it was made with, or retrain")


@pytest.mark.parametrize("estimator", [XGBRegressor(n_estimators=40, max_depth=3, random_state=0),
                                       LGBMRegressor(n_estimators=40, random_state=0, verbose=-1)], ids=["xgboost", "lightgbm"])
def test_a_boosting_regressor_on_diabetes_answers_as_itself(tmp_path, estimator):
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    pipe = make_pipeline(StandardScaler(), estimator).fit(X, y)
    joblib.dump(pipe, tmp_path / "diabetes.pkl")
    X.assign(progression=y).to_csv(tmp_path / "diabetes.csv", index=False)
    out = tmp_path / "bundle"
    metadata, notes = package.package(tmp_path / "diabetes.pkl", tmp_path / "diabetes.csv", "progression", out=out,
                                      trust=["scikit-learn", "xgboost", "lightgbm"])
    library = type(estimator).__module__.split(".")[0]
    unused = "lightgbm" if library == "xgboost" else "xgboost"
    assert f"TRUST={unused} not needed: it names nothing of theirs" in notes
    assert metadata["trust"] == ["scikit-learn", installed_library(library)] and metadata["task"] == "regression"
    copy_function_code(ROOT, out)
    with Server(out / "main.py").wait_ready() as server:
        batch = requests.post(server.url, json={"instances": as_requests(X, metadata)}).json()["predictions"]
    assert np.array_equal([answer["predicted_value"] for answer in batch], pipe.predict(X))  # XGBoost's float32 too: exactly


def test_an_xgboost_bundle_deploys_from_its_own_requirements(bundles, tmp_path):
    """Deployed as Cloud Functions builds it (make verify's rehearsal): archive.zip unzipped into a
    fresh environment that installs the bundle's requirements.txt alone, XGBoost's pin among them,
    serving the README's calls; and that pin has a wheel for Cloud Functions' Python 3.12."""
    out, _ = bundles("xgboost")
    project = copy_project(tmp_path / "project")
    for name in ("model.pkl", "model.json", "requirements.txt"):  # what make package writes into the project
        shutil.copy(out / name, project / name)
    subprocess.run(["make", "--no-print-directory", "archive"], cwd=project, capture_output=True, check=True)
    rehearsal = subprocess.run([sys.executable, "scripts/verify.py", "archive.zip"], cwd=project, capture_output=True, text=True)
    assert rehearsal.returncode == 0, rehearsal.stdout[-3000:] + rehearsal.stderr[-2000:]
    assert "PASS" in rehearsal.stdout
    installed = installed_library("xgboost")
    wheel = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--python-version", "3.12",
                            "--platform", "manylinux_2_28_x86_64", "--no-deps", "--dest", tmp_path / "wheels",
                            f"{installed}=={version(installed)}"], capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    assert [path.name.split("-")[:2] for path in (tmp_path / "wheels").iterdir()] == [[installed.replace("-", "_"), version(installed)]]
