"""model.pkl and model.json: what train.py makes, and every bundle the function refuses to serve."""

import hashlib
import importlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from importlib.metadata import version

import joblib
import numpy as np
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from bundling import fields as bundle_fields
from serving.bundle import ModelError, load_model

from conftest import FUNCTIONS_FRAMEWORK, ROOT, TUTORIAL_ROW, Server, assert_equivalent_models, columns, field_names, rewrite


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrained")
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--out", str(out)], check=True, capture_output=True)
    return out


def test_committed_model_is_what_train_py_makes_today(retrained, iris):
    # Spread well beyond the training data, where a model that differs shows it.
    probe = np.random.default_rng(0).normal(iris.data.mean(axis=0), 3 * iris.data.std(axis=0), size=(1000, 4))
    assert_equivalent_models(retrained, ROOT, np.vstack([iris.data, probe]))


def test_two_trainings_predict_the_same(retrained, tmp_path, iris):
    subprocess.run([sys.executable, str(ROOT / "train.py"), "--out", str(tmp_path)], check=True, capture_output=True)
    first, second = joblib.load(retrained / "model.pkl"), joblib.load(tmp_path / "model.pkl")
    assert np.array_equal(first.predict_proba(iris.data), second.predict_proba(iris.data))


def test_metadata_says_what_serving_needs(metadata, iris):
    assert field_names(metadata) == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert columns(metadata) == iris.feature_names
    assert metadata["classes"] == [0, 1, 2]
    assert metadata["class_names"] == ["setosa", "versicolor", "virginica"]
    assert metadata["example"] == TUTORIAL_ROW
    assert 0.9 < metadata["metrics"]["training_accuracy"] <= 1
    assert metadata["model_sha256"] == hashlib.sha256((ROOT / "model.pkl").read_bytes()).hexdigest()
    assert metadata["served_as"] == "data"
    assert set(metadata["versions"]) == {"python", "scikit-learn", "numpy", "scipy", "joblib"}


def pins(name):
    return dict(line.split("==") for line in (ROOT / name).read_text().splitlines()
                if line and not line.startswith(("#", "-r")))


def test_requirements_pin_what_serves_the_model_and_the_tools_what_made_it(metadata):
    """The committed model is served as data: the function needs numpy, and no scikit-learn, scipy,
    joblib or pandas; the tools that made it and proved its numpy form pin those, as model.json says."""
    runtime, tools = pins("requirements.txt"), pins("requirements-tools.txt")
    assert set(runtime) == {"functions-framework", "orjson", "numpy"}
    assert runtime["numpy"] == metadata["versions"]["numpy"] == version("numpy")
    for package in ("scikit-learn", "scipy", "joblib"):
        assert tools[package] == metadata["versions"][package] == version(package), package


def test_field_names_come_from_column_names():
    assert bundle_fields.field_name("sepal length (cm)") == "sepal_length"
    assert bundle_fields.field_name("Alcohol %") == "alcohol"
    assert bundle_fields.field_name("OD280/OD315 of diluted wines") == "od280_od315_of_diluted_wines"
    with pytest.raises(bundle_fields.DataError, match="both become field 'a_b'"):
        bundle_fields.field_names(["a b", "A-B"])


# The loader refuses any bundle that doesn't hold together, with one line naming the file and
# the cause, before the first answer.

def one_line(caught):
    message = str(caught.value)
    assert "\n" not in message
    return message


def refusal(bundle, **kwargs):
    with pytest.raises(ModelError) as caught:
        load_model(bundle, **kwargs)
    return one_line(caught)


def test_good_bundle_loads_without_scikit_learn(bundle):
    # Importing scikit-learn is most of a second or more: no new instance waits for it.
    script = (
        "import sys; import numpy as np; from serving.bundle import load_model; "
        f"model = load_model({str(bundle)!r}); "
        "print(model.predict([[5.1, 3.5, 1.4, 0.2]])[1][0], "
        "sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'pandas', 'joblib'}))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    probabilities, imported = result.stdout.rsplit(" ", 1)
    assert imported.strip() == "[]"
    assert json.loads(probabilities)[0] > 0.9


def test_the_function_serves_iris_without_importing_scikit_learn():
    # Importing scikit-learn costs a small instance a second of CPU and 100 MiB of memory.
    script = (
        "import sys, functions_framework; app = functions_framework.create_app('predict', 'main.py'); "
        "answer = app.test_client().post('/', json={'instances': [[5.1, 3.5, 1.4, 0.2]]}).get_json(); "
        "print(answer['predictions'][0]['predicted_class'], 'sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "0 False"  # after the request's log line


def test_a_bundle_imports_only_the_scorer_families_its_pickle_names(bundle):
    # Each family's code is loaded at every cold start: iris (a scaler and a logistic regression)
    # needs neither the trees nor the boosting.
    script = ("import sys; from serving import scorers; from serving.bundle import load_model; load_model(sys.argv[1]); "
              "print(sorted(name for name in scorers.FAMILIES if f'serving.scorers.{name}' in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script, bundle], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['compose', 'linear', 'preprocessing']"


def test_every_served_kind_is_found_through_its_module_s_family():
    from serving import scorers

    for name in scorers.FAMILIES:
        module = importlib.import_module(f"serving.scorers.{name}")
        for kind in scorers.family_kinds(module):
            assert kind in scorers.SERVED, kind
            if kind in module.STEPS:
                assert scorers.family(kind) is module, kind
    assert "sklearn.neighbors._classification.KNeighborsClassifier" not in scorers.SERVED
    assert "os.system" not in scorers.SERVED


def test_missing_files(bundle):
    (bundle / "model.pkl").unlink()
    assert refusal(bundle) == "model.pkl: not found"
    (bundle / "model.json").unlink()
    assert refusal(bundle) == "model.json: not found"


def test_unreadable_metadata(bundle):
    (bundle / "model.json").write_text("{not json")
    assert refusal(bundle).startswith("model.json: unreadable")


def test_class_names_and_the_example_may_be_edited_by_hand(bundle, served_bundle):
    rewrite(bundle, class_names=["Iris setosa", "Iris versicolor", "Iris virginica"],
            example={"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3})
    with Server(bundle / "main.py").wait_ready() as server:
        answer = requests.post(server.url, json=TUTORIAL_ROW).json()
        described = requests.get(server.url).json()
    assert answer["predicted_class"] == 0 and answer["class_name"] == "Iris setosa"
    assert described["requests"]["single"]["petal_length"] == 5.2


@pytest.mark.parametrize("changes, message", [
    ({"fields": "sepal_length"}, "fields must be a list"),
    ({"fields": []}, "fields must be a non-empty list"),
    ({"task": "clustering"}, "task must be classification or regression"),
    ({"model_file": "../model.pkl"}, "model_file must be a file name in the bundle's folder"),
    ({"class_names": "abc"}, "class_names must be 3 strings, one per class"),
    ({"class_names": ["setosa", "setosa", "virginica"]}, "class_names repeats a name"),
    ({"classes": [0, 0, 2]}, "classes repeats a label"),
    ({"classes": [0, "1", 2]}, "classes must list two or more labels, all integers, all strings or all booleans"),
    ({"example": {"sepal_length": 5.1}}, "example must hold every field, and nothing else"),
    ({"example": {**TUTORIAL_ROW, "petal_width": "0.2"}}, "example's petal_width is not a number"),
    ({"versions": {"numpy": "2.4.6"}}, "versions must name the scikit-learn that made the pickle"),
    ({"metrics": {"cv_accuracy": "high"}}, "metrics must all be numbers"),
    ({"modules": ["os"]}, "modules lists 'os', which is not a module file in the bundle"),
    ({"colour": "blue"}, "unknown keys: colour"),
    ({"example": {**TUTORIAL_ROW, "sepal_length": 1e200}}, "example's sepal_length must be between -1e+100 and 1e+100"),
    ({"data": {"source": "iris", "target": "species", "notes": json.loads("[" * 40 + "]" * 40)}}, "nested more than 32 deep"),
    ({"data": {"source": "iris", "target": "species", "rows": 10**20}}, "data.rows is an integer beyond 64 bits"),
    ({"data": {"source": "\ud800", "target": "species"}}, "data.source is text that no UTF-8 can hold (a lone surrogate)"),
    ({"data": {"source": "iris"}}, "data.target must be a string: the column the model predicts"),
])
def test_model_json_is_checked_as_a_whole(bundle, changes, message):
    rewrite(bundle, **changes)
    assert refusal(bundle) == f"model.json: {message}"


def test_fields_must_be_unique_and_well_formed(bundle, metadata):
    fields = metadata["fields"]
    repeated = [fields[0], {**fields[1], "name": "sepal_length"}, *fields[2:]]
    rewrite(bundle, fields=repeated)
    assert refusal(bundle) == "model.json: fields repeat the name 'sepal_length'"
    rewrite(bundle, fields=[{**fields[0], "type": "float"}, *fields[1:]])
    assert refusal(bundle) == "model.json: fields[0].type must be one of number, integer, string, text, boolean, date, datetime"
    rewrite(bundle, fields=[{**fields[0], "range": [5, 1]}, *fields[1:]])
    assert refusal(bundle) == "model.json: fields[0].range must be [low, high], two numbers, for a number field"
    rewrite(bundle, fields=[{**fields[0], "column": fields[1]["name"]}, *fields[1:]])
    assert refusal(bundle) == "model.json: field 'sepal_width' is also the column of field 'sepal_length'"


def test_a_pickle_served_as_data_must_fit_model_json(bundle, metadata, iris):
    rewrite(bundle, classes=[1, 2, 3])
    assert refusal(bundle) == "model.pkl: its classes are [0, 1, 2], model.json lists [1, 2, 3]"
    rewrite(bundle, classes=[0, 1, 2], fields=metadata["fields"][:3],
            example={key: TUTORIAL_ROW[key] for key in ("sepal_length", "sepal_width", "petal_length")})
    assert refusal(bundle) == "model.pkl: expects 4 features, model.json lists 3 fields"
    other = Pipeline([("scaler", MinMaxScaler()), ("model", LogisticRegression(max_iter=1000))]).fit(iris.data, iris.target)
    with_pickle(bundle, other, served_as="data")
    rewrite(bundle, fields=metadata["fields"], example=TUTORIAL_ROW, versions={**metadata["versions"], "scikit-learn": "1.8.0"})
    assert refusal(bundle) == (
        "model.pkl: made with scikit-learn 1.9.1, but model.json says it was proven against scikit-learn 1.8.0; package it again")


def test_what_is_not_read_as_data_is_refused_before_anything_is_imported(bundle, iris):
    from sklearn.neighbors import KNeighborsClassifier

    with_pickle(bundle, Pipeline([("model", KNeighborsClassifier())]).fit(iris.data, iris.target), served_as="data")
    assert refusal(bundle) == ("model.pkl: it asks for sklearn.neighbors._classification.KNeighborsClassifier, "
                               "which is not read as data")


def notebook_pickle(path):
    """The tutorial's notebook pipeline, as joblib.dump writes it: the iris DataFrame, C=0.05."""
    iris = load_iris(as_frame=True)
    pipeline = Pipeline([("scaler", StandardScaler()), ("model", LogisticRegression(C=0.05))])
    with open(path, "wb") as f:
        joblib.dump(pipeline.fit(iris.data, iris.target), f)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_notebook_pickle_copied_in_with_its_own_model_sha256_is_refused(bundle, metadata):
    new_sha256 = notebook_pickle(bundle / "model.pkl")
    assert refusal(bundle, expected_sha256=new_sha256) == (
        f"model.pkl: its SHA-256 is {new_sha256}, but model.json describes a model.pkl whose SHA-256 is "
        f"{metadata['model_sha256']}; write both again with train.py, or describe this one with make package"
    )


def test_model_sha256_pointing_elsewhere_is_refused(bundle, metadata):
    assert refusal(bundle, expected_sha256="0" * 64) == (
        f"MODEL_SHA256: model.pkl's SHA-256 is {metadata['model_sha256']}, not {'0' * 64}"
    )


def with_pickle(bundle, obj, dump=joblib.dump, served_as="pipeline"):
    """model.pkl replaced by `obj` pickled, and model.json rewritten to match it, served as said
    (unpickled, trusting scikit-learn's code, as make package TRUST=scikit-learn records it)."""
    with open(bundle / "model.pkl", "wb") as f:
        dump(obj, f)
    sha256 = hashlib.sha256((bundle / "model.pkl").read_bytes()).hexdigest()
    trust = ["scikit-learn"] if served_as == "pipeline" else []
    return rewrite(bundle, model_sha256=sha256, served_as=served_as, trust=trust)


class WritesAFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


@pytest.mark.parametrize("dump", [joblib.dump, pickle.dump], ids=["joblib", "pickle"])
def test_a_pickle_that_runs_code_on_load_is_refused_before_it_runs(bundle, tmp_path, dump):
    written = tmp_path / "written-on-load"
    with_pickle(bundle, {"pipeline": WritesAFile(written)}, dump)
    assert refusal(bundle) == f"model.pkl: it asks to load {os.system.__module__}.system, which is not allowed"
    assert not written.exists()


def test_a_pickle_of_something_else_is_refused(bundle):
    with_pickle(bundle, {"not": "a pipeline"})
    assert refusal(bundle) == "model.pkl: holds a dict, which has no predict"
    (bundle / "model.pkl").write_bytes(b"this is not a pickle")
    rewrite(bundle, model_sha256=hashlib.sha256(b"this is not a pickle").hexdigest())
    assert refusal(bundle).startswith("model.pkl: failed to load (UnpicklingError: not a pickle of protocol 2")


def test_a_pipeline_that_does_not_fit_model_json_is_refused(bundle, pipeline, metadata):
    with_pickle(bundle, pipeline)
    rewrite(bundle, classes=[1, 2, 3])
    assert refusal(bundle) == "model.pkl: its classes are [0, 1, 2], model.json lists [1, 2, 3]"


CUSTOM_MODULE = '''
from sklearn.base import BaseEstimator, TransformerMixin


class Doubler(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X * 2
'''


def test_a_custom_transformer_loads_when_model_json_lists_its_module(bundle, iris, monkeypatch):
    (bundle / "iris_steps.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(bundle))
    from iris_steps import Doubler

    fitted = Pipeline([("double", Doubler()), ("model", LogisticRegression(max_iter=500))]).fit(iris.data, iris.target)
    with_pickle(bundle, fitted)
    assert refusal(bundle) == "model.pkl: it asks to load iris_steps.Doubler, which is not allowed"
    rewrite(bundle, modules=["iris_steps"])
    assert np.array_equal(load_model(bundle).predict(iris.data.tolist())[1], fitted.predict_proba(iris.data))


def test_other_scikit_learn_version_is_refused(bundle, metadata):
    rewrite(bundle, versions={**metadata["versions"], "scikit-learn": "1.2.2"}, served_as="pipeline")
    assert refusal(bundle) == (
        f"model.pkl: made with scikit-learn 1.2.2, but scikit-learn {metadata['versions']['scikit-learn']} "
        "is installed; install the version it was made with, or retrain"
    )


def test_other_numpy_major_version_is_refused(bundle, metadata):
    rewrite(bundle, versions={**metadata["versions"], "numpy": "1.26.4"})
    assert refusal(bundle).startswith("model.pkl: made with numpy 1.26.4, but numpy")


def start(folder, env=None):
    """functions-framework started on a bundle's folder, left to run for up to a minute."""
    return subprocess.run(
        [str(FUNCTIONS_FRAMEWORK), "--target", "predict", "--source", str(folder / "main.py"), "--port", "0"],
        capture_output=True, text=True, timeout=60, cwd=folder, env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("env, line", [
    ({"MAX_BODY_BYTES": "abc"}, "cannot serve: MAX_BODY_BYTES: 'abc' is not a whole number of 1 or more"),
    ({"MAX_BODY_BYTES": "-1"}, "cannot serve: MAX_BODY_BYTES: '-1' is not a whole number of 1 or more"),
    ({"MAX_INSTANCES": "0"}, "cannot serve: MAX_INSTANCES: '0' is not a whole number of 1 or more"),
    ({"ALLOWED_ORIGINS": "shop.example.com"},
     "cannot serve: ALLOWED_ORIGINS: 'shop.example.com' is not an origin a browser sends: it is not scheme://host[:port]"),
    ({"MAX_BODY_BYTES": str(10**30)}, "cannot serve: MAX_BODY_BYTES: '1000000000000000000000000000000' is more than "
                                      "33554432 (32 MiB), the most Cloud Run functions take in a request"),
    ({"MAX_INSTANCES": "9" * 5000},
     "cannot serve: MAX_INSTANCES: a number of 5000 digits is more than 8388608 rows, the most a request of 32 MiB can hold"),
    ({"ALLOWED_ORIGINS": "https://shop.example.com:99999"},
     "cannot serve: ALLOWED_ORIGINS: 'https://shop.example.com:99999' is not an origin a browser sends: "
     "its port must be a whole number from 1 to 65535"),
    ({"ALLOWED_ORIGINS": "https://shop\x07.example.com"},
     "cannot serve: ALLOWED_ORIGINS: 'https://shop\\x07.example.com' is not an origin a browser sends: "
     "it holds a space, a control character or a letter beyond ASCII (a browser sends a host in punycode)"),
    ({"MODEL_SHA256": "abc"}, "cannot serve: MODEL_SHA256: 'abc' is not a SHA-256 (64 hex digits)"),
])
def test_a_bad_setting_stops_the_instance_with_one_line(served_bundle, env, line):
    result = start(served_bundle, env)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [line]


@pytest.mark.parametrize("origins, refusal", [
    ("https://shop.example.com:443", "443 is https's default port, which a browser leaves out: write https://shop.example.com"),
    ("http://shop.example.com:0", "its port must be a whole number from 1 to 65535"),
    ("https://Shop.Example.com", "a browser writes it in lower case: https://shop.example.com"),
    ("ftp://shop.example.com", "its scheme must be http or https"),
    ("https://shop.example.com/", "it has a path, a query, a fragment or a user; an origin is scheme://host[:port] alone"),
    ("https://user@shop.example.com", "it has a path, a query, a fragment or a user; an origin is scheme://host[:port] alone"),
    ("https://shop example.com", "it holds a space, a control character or a letter beyond ASCII (a browser sends a host in punycode)"),
    ("https://café.example", "it holds a space, a control character or a letter beyond ASCII (a browser sends a host in punycode)"),
    ("https://shop.example.com.", "its host 'shop.example.com.' is not a DNS name: labels of letters, digits and hyphens "
                                  "(not first or last), 1 to 63 characters, between single dots"),
    ("https://shop_1.example.com", "its host 'shop_1.example.com' is not a DNS name: labels of letters, digits and hyphens "
                                   "(not first or last), 1 to 63 characters, between single dots"),
    ("http://300.1.1.1:8080", "its host 300.1.1.1 is not an IPv4 address"),
    ("http://[::1", "its host opens a [ that no ] closes"),
    ("http://[0:0::1]:8080", "a browser writes this address as [::1]"),
    ("http://[fe80::1%eth0]", "a browser sends no IPv6 zone (%...) in an origin"),
])
def test_allowed_origins_are_origins_as_a_browser_sends_them(origins, refusal):
    from serving.settings import SettingError, read_settings

    with pytest.raises(SettingError) as caught:
        read_settings({"ALLOWED_ORIGINS": f"https://shop.example.com, {origins}"})
    assert str(caught.value) == f"ALLOWED_ORIGINS: {origins!r} is not an origin a browser sends: {refusal}"


def test_allowed_origins_a_browser_sends_are_taken_and_star_stands_alone():
    from serving.settings import SettingError, read_settings

    listed = "https://shop.example.com, http://localhost:3000, http://127.0.0.1:8080, http://[::1]:8443, https://xn--caf-dma.example"
    assert read_settings({"ALLOWED_ORIGINS": listed}).allowed_origins == [origin.strip() for origin in listed.split(",")]
    with pytest.raises(SettingError, match=r"^ALLOWED_ORIGINS: \* allows every origin, so it stands alone; give \* or a list of origins$"):
        read_settings({"ALLOWED_ORIGINS": "*, https://shop.example.com"})


def test_a_bad_bundle_stops_the_instance_with_one_line(served_bundle):
    (served_bundle / "serving" / "page.html").unlink()
    result = start(served_bundle)
    assert result.returncode != 0 and result.stderr.strip().splitlines() == ["cannot serve: page.html: not found"]
    shutil.copy(ROOT / "serving" / "page.html", served_bundle / "serving")
    rewrite(served_bundle, class_names=["a", "a", "c"])
    result = start(served_bundle)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == ["cannot serve: model.json: class_names repeats a name"]


def test_a_value_the_pipeline_itself_refuses_is_a_400_naming_the_field(served_bundle, iris):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    fitted = make_pipeline(FunctionTransformer(np.log), LogisticRegression(max_iter=500)).fit(iris.data, iris.target)
    with_pickle(served_bundle, fitted)
    with Server(served_bundle / "main.py").wait_ready() as server:
        single = requests.post(server.url, json={**TUTORIAL_ROW, "petal_width": -1.0})
        batch = requests.post(server.url, json={"instances": [TUTORIAL_ROW, {**TUTORIAL_ROW, "sepal_width": -2.0}]})
        fine = requests.post(server.url, json=TUTORIAL_ROW)
    assert single.status_code == 400 and single.json()["field"] == "petal_width"
    assert single.json()["error"].startswith("petal_width: the model can't score this value (Input X contains NaN")
    assert batch.status_code == 400 and batch.json()["field"] == "instances[1].sepal_width"
    assert fine.json()["predicted_class"] == fitted.predict(np.array([list(TUTORIAL_ROW.values())]))[0]


def test_a_malformed_record_stops_the_instance_with_one_line(served_bundle, pipeline):
    """A pickle served as data is checked record by record before the first answer: here a
    coefficient matrix of the wrong shape, which scikit-learn would only trip over when asked."""
    import copy

    broken = copy.deepcopy(pipeline)
    broken.steps[1][1].coef_ = broken.steps[1][1].coef_[:, :3]
    with_pickle(served_bundle, broken, served_as="data")
    result = start(served_bundle)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("cannot serve: model.pkl: LogisticRegression: coef_ is (3, 3)"), line


def test_a_model_json_or_a_pipeline_that_fails_at_start_stops_the_instance_with_one_line(served_bundle, pipeline):
    """Each failure at start is one line, and no traceback: a model.json nested past Python's own
    recursion, an example no request could send, a pipeline that fails on its own example."""
    import copy

    (served_bundle / "model.json").write_text("[" * 100_000 + "]" * 100_000)
    lines = [start(served_bundle).stderr.strip().splitlines()]
    shutil.copy(ROOT / "model.json", served_bundle)
    rewrite(served_bundle, example={**TUTORIAL_ROW, "petal_width": 1e200})
    lines.append(start(served_bundle).stderr.strip().splitlines())
    shutil.copy(ROOT / "model.json", served_bundle)
    broken = copy.deepcopy(pipeline)
    del broken.steps[1][1].coef_  # which LogisticRegression's predict reads
    with_pickle(served_bundle, broken)
    rewrite(served_bundle, trust=["scikit-learn"])  # unpickled, as its maker said it may be
    result = start(served_bundle)
    assert result.returncode != 0
    assert lines + [result.stderr.strip().splitlines()] == [
        ["cannot serve: model.json: nested more than 32 deep"],
        ["cannot serve: model.json: example's petal_width must be between -1e+100 and 1e+100"],
        ["cannot serve: model.pkl: it fails on model.json's example "
         "(AttributeError: 'LogisticRegression' object has no attribute 'coef_')"],
    ]


def test_a_pipeline_that_fails_on_its_example_is_refused(bundle, pipeline):
    import copy

    broken = copy.deepcopy(pipeline)
    broken.steps[1][1].coef_ = np.full_like(broken.steps[1][1].coef_, np.nan)  # which scikit-learn answers with
    with_pickle(bundle, broken)
    rewrite(bundle, trust=["scikit-learn"])  # unpickled, as its maker said it may be
    assert refusal(bundle) == "model.pkl: it fails on model.json's example (ValueError: the model's probabilities are not finite numbers)"
