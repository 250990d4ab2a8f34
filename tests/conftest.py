import json
import shutil
import subprocess
import sys
from pathlib import Path

import functions_framework
import numpy as np
import orjson
import pytest
from sklearn.datasets import load_iris

from serving import records
from serving.scorers import build, kinds

from localserver import TUTORIAL_ROW, LocalServer, copy_function_code, free_port  # noqa: F401 (shared with the tests)
from shipped import shipped_files

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_FRAMEWORK = Path(sys.executable).parent / "functions-framework"
# What archive.zip holds, from the one list of it (.gcloudignore).
ARCHIVE_FILES = shipped_files(ROOT)


def is_compact_json(text):
    """Whether the text is JSON as the function writes it: no spaces between items, keys in
    the order written, and a newline at the end (what orjson writes of what json reads in it)."""
    return text == orjson.dumps(json.loads(text)).decode() + "\n"


def field_names(metadata):
    return [field["name"] for field in metadata["fields"]]


def columns(metadata):
    return [field["column"] for field in metadata["fields"]]


def as_requests(table, metadata, by="name"):
    """The rows as JSON objects, keyed by field name (or by training column), gaps as null."""
    features = table[columns(metadata)].astype(object)
    records = features.where(features.notna(), None).to_dict("records")
    keys = dict(zip(columns(metadata), field_names(metadata) if by == "name" else columns(metadata)))
    return [{keys[column]: (value.item() if hasattr(value, "item") else value) for column, value in row.items()}
            for row in records]


def close(answers, expected):
    """The same answers; floats to 1e-12, since a batch and a row alone may round differently in
    the pipeline's own arithmetic."""
    assert len(answers) == len(expected)
    for got, want in zip(answers, expected):
        assert got.keys() == want.keys()
        for key in want:
            if isinstance(want[key], dict):
                assert list(got[key]) == list(want[key])
                assert np.allclose(list(got[key].values()), list(want[key].values()), rtol=0, atol=1e-12)
            elif isinstance(want[key], float):
                assert got[key] == pytest.approx(want[key], rel=1e-12)
            else:
                assert got[key] == want[key]
    return True


# Numbers that come out of fitting (weights, probabilities, scores) differ in their last digits from
# one CPU to another: each BLAS kernel sums in its own order. A model trained again is compared
# within this relative tolerance; labels, classes and contracts exactly.
FIT_RTOL = 1e-9


def assert_equivalent_models(fresh_folder, committed_folder, rows):
    """That the bundle in `fresh_folder` is the one in `committed_folder` as any machine makes it
    again: model.json the same but for when, where and the checksum, and the pipelines giving the
    same labels, and probabilities within FIT_RTOL, on `rows`."""
    import joblib

    fresh, committed = (json.loads((Path(folder) / "model.json").read_text()) for folder in (fresh_folder, committed_folder))
    varies = ("trained_at", "model_sha256", "versions")
    assert {k: v for k, v in fresh.items() if k not in varies} == {k: v for k, v in committed.items() if k not in varies}
    assert {k: v for k, v in fresh["versions"].items() if k != "python"} == \
        {k: v for k, v in committed["versions"].items() if k != "python"}
    assert fresh.keys() == committed.keys()
    new, old = (joblib.load(Path(folder) / "model.pkl") for folder in (fresh_folder, committed_folder))
    assert np.array_equal(new.predict(rows), old.predict(rows))
    if hasattr(old, "predict_proba"):
        assert np.array_equal(new.classes_, old.classes_)
        assert np.allclose(new.predict_proba(rows), old.predict_proba(rows), rtol=FIT_RTOL, atol=0)


def run_train(*args):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], capture_output=True, text=True)


def copy_project(folder):
    """The project's tracked files copied into `folder`, a git repository of its own as a clone is,
    sharing the project's virtual environments: a place to run make as a user would, training other
    models, leaving the project's own alone."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in tracked.splitlines():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)  # the times kept: make sees nothing to reinstall
    for venv in (".venv", ".venv-serve"):
        if (ROOT / venv).exists():
            (folder / venv).symlink_to(ROOT / venv)
    git = ["git", "-c", "user.name=copy", "-c", "user.email=copy@localhost"]
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the project as it is"]):
        subprocess.run(git + command, cwd=folder, check=True, capture_output=True)
    return folder


def Server(source, env=None):
    """functions-framework from this virtual environment, serving `source` as `make serve` does."""
    return LocalServer(source, FUNCTIONS_FRAMEWORK, env=env)


@pytest.fixture(scope="session")
def app():
    app = functions_framework.create_app("predict", str(ROOT / "main.py"))
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def metadata():
    return json.loads((ROOT / "model.json").read_text())


@pytest.fixture(scope="session")
def iris():
    return load_iris()


@pytest.fixture(scope="session")
def pipeline():
    import joblib

    return joblib.load(ROOT / "model.pkl")


@pytest.fixture(scope="session")
def server():
    with Server(ROOT / "main.py").wait_ready() as running:
        yield running


# A bundle of one's own, to break: model.pkl and model.json copied into a folder of the test's.

@pytest.fixture
def bundle(tmp_path):
    for name in ("model.pkl", "model.json"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def read(bundle):
    return json.loads((bundle / "model.json").read_text())


def rewrite(bundle, **changes):
    """model.json changed, as a person with an editor, or a careless tool, would (None removes a key):
    what the function then finds, it finds in the content itself."""
    metadata = {key: value for key, value in {**read(bundle), **changes}.items() if value is not None}
    (bundle / "model.json").write_text(json.dumps(metadata))
    return metadata


@pytest.fixture
def served_bundle(bundle):
    copy_function_code(ROOT, bundle)
    return bundle


# The numpy steps of serving/scorers, built from a fitted estimator as model.pkl holds it.

def dumped(estimator, **kwargs):
    """joblib.dump's bytes of a fitted estimator."""
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump(estimator, buffer, **kwargs)
    return buffer.getvalue()


def as_record(estimator):
    """The fitted estimator as model.pkl holds it: joblib.dump's bytes, read back as data."""
    return records.read(dumped(estimator), kinds())


def served(estimator):
    """The numpy step serving builds from the estimator's record."""
    return build(as_record(estimator))


def refuses_too(estimator, step, X, methods):
    """Whether scikit-learn refuses X (NaN for GradientBoosting, say): then the scorer must too."""
    try:
        estimator.predict(X)
    except ValueError:
        for method in methods:
            with pytest.raises(ValueError):
                getattr(step, method)(X)
        return True
    return False


def assert_scores_alike(estimator, step, X, theirs_X=None, single_rows_as_scikit_learn=True, single_rows=6):
    """predict and predict_proba equal to scikit-learn's (given theirs_X, a DataFrame say, where it
    differs), and a few rows alone equal to their rows of the batch, and to scikit-learn's alone."""
    theirs_X = X if theirs_X is None else theirs_X
    methods = ["predict", "predict_proba"] if hasattr(estimator, "predict_proba") else ["predict"]
    if refuses_too(estimator, step, X, methods):
        return
    for method in methods:
        ours, theirs = getattr(step, method)(X), getattr(estimator, method)(theirs_X)
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs), method
        for row in np.linspace(0, X.shape[0] - 1, single_rows).astype(int):
            alone = getattr(step, method)(X[row:row + 1])
            assert np.array_equal(alone, ours[row:row + 1]), (method, row)
            if single_rows_as_scikit_learn:
                theirs_alone = getattr(estimator, method)(theirs_X[row:row + 1])
                assert np.array_equal(alone, theirs_alone), (method, row)
    if hasattr(step, "predict_with_proba"):  # what serving calls for a batch: both answers from one pass
        labels, probabilities = step.predict_with_proba(X)
        assert np.array_equal(labels, estimator.predict(theirs_X)) and labels.dtype == estimator.predict(theirs_X).dtype
        assert np.array_equal(probabilities, estimator.predict_proba(theirs_X))
    assert step.n_features_in == estimator.n_features_in_
    if hasattr(estimator, "classes_"):
        assert np.array_equal(step.classes, estimator.classes_)
