"""Loading the model once, safely, and scoring rows with it.

Importing scikit-learn and unpickling model.pkl take a second or more, which every new
instance would spend before its first answer. A fitted StandardScaler + LogisticRegression is
`softmax(x @ weights + bias)`, so train.py writes those numbers into model.json as its
`scorer`, once it has checked there that they give the pipeline's own answers. Then:

- `load_model(folder)` reads model.json, checks model.pkl's SHA-256 and the installed versions
  (milliseconds: no scikit-learn import) and returns a LoadedModel that can answer at once from
  the scorer. Anything wrong stops it with one line naming the file and the cause: a missing
  file, a checksum that doesn't match model.json (checked before unpickling, because unpickling
  runs code), a scikit-learn or numpy version other than the one that made the pickle, or a
  model.json that doesn't hold together.
- `LoadedModel.check()` unpickles model.pkl (the very bytes whose checksum was checked) and
  checks the scorer against the pipeline again. The function runs it in the background, once
  per process; if it fails, the model refuses to answer from then on.
- A pipeline without a scorer (train.py writes none for pipelines of other shapes) is
  unpickled and checked by `load_model` itself, and answers through its own predict_proba.
"""

import hashlib
import io
import json
import math
import os
import threading
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

METADATA_FILE = "model.json"
REQUIRED_METADATA = ("model_file", "model_sha256", "features", "class_names", "versions")


class ModelError(Exception):
    """The model can't be served; the message is one line naming the file and the cause."""


def read_metadata(folder):
    path = Path(folder) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: not found") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path}: unreadable ({err})") from None
    if not isinstance(metadata, dict):
        raise ModelError(f"{path}: not a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ModelError(f"{path}: missing {', '.join(missing)}")
    return metadata


def installed_version(package):
    try:
        return version(package)  # from the package's metadata: importing scikit-learn takes a second
    except PackageNotFoundError:
        return None


def check_versions(metadata, path):
    trained = metadata["versions"]
    sklearn_version = installed_version("scikit-learn")
    if trained.get("scikit-learn") != sklearn_version:
        raise ModelError(
            f"{path}: made with scikit-learn {trained.get('scikit-learn')}, but "
            f"scikit-learn {sklearn_version} is installed; install the version in "
            "requirements.txt or retrain"
        )
    trained_numpy_major = str(trained.get("numpy", "")).split(".")[0]
    if trained_numpy_major != np.__version__.split(".")[0]:
        raise ModelError(
            f"{path}: made with numpy {trained.get('numpy')}, but numpy {np.__version__} "
            "is installed; install the version in requirements.txt or retrain"
        )


def read_pickle(metadata, folder, expected_sha256=None):
    """model.pkl's path and bytes, once its SHA-256 is the expected one."""
    path = Path(folder) / metadata["model_file"]
    expected = (expected_sha256 or metadata["model_sha256"]).lower()
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: not found") from None
    except OSError as err:
        raise ModelError(f"{path}: unreadable ({err})") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != expected:
        raise ModelError(f"{path}: SHA-256 is {actual}, expected {expected}; refusing to unpickle it")
    return path, content


def unpickle(path, content, metadata):
    """The pipeline in `content` (model.pkl's checked bytes), if it fits model.json."""
    import joblib
    from sklearn.exceptions import InconsistentVersionWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            pipeline = joblib.load(io.BytesIO(content))
    except InconsistentVersionWarning as warning:
        raise ModelError(f"{path}: {warning}".replace("\n", " ")) from None
    except Exception as err:  # a pickle can fail in many ways; all mean "can't serve"
        raise ModelError(f"{path}: failed to load ({type(err).__name__}: {err})") from None
    if not hasattr(pipeline, "predict_proba"):
        raise ModelError(f"{path}: holds a {type(pipeline).__name__}, which has no predict_proba")
    n_features = getattr(pipeline, "n_features_in_", None)
    if n_features != len(metadata["features"]):
        raise ModelError(
            f"{path}: expects {n_features} features, {METADATA_FILE} lists {len(metadata['features'])}"
        )
    n_classes = len(getattr(pipeline, "classes_", []))
    if n_classes != len(metadata["class_names"]):
        raise ModelError(
            f"{path}: has {n_classes} classes, {METADATA_FILE} lists {len(metadata['class_names'])}"
        )
    return pipeline


def affine_softmax(pipeline):
    """The pipeline as an AffineSoftmax if it is StandardScaler + LogisticRegression, else None."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        return None
    scaler, classifier = (step for _, step in pipeline.steps)
    if type(scaler) is not StandardScaler or type(classifier) is not LogisticRegression:
        return None
    mean, scale = scaler_mean_and_scale(scaler)
    weights = (classifier.coef_ / scale).T
    bias = classifier.intercept_ - (mean / scale) @ classifier.coef_.T
    if weights.shape[1] == 1:  # binary: one decision function, probability by the logistic
        weights = np.hstack([-weights / 2, weights / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2])
    return AffineSoftmax(weights, bias)


class AffineSoftmax:
    """A fitted StandardScaler + LogisticRegression is `softmax(x @ weights + bias)`.

    scikit-learn's predict_proba spends most of a call checking its input, and importing it takes
    a second. This computes the same numbers, and gives a row the same floats, bit for bit, alone
    or in a batch of any size: `x @ weights` as products summed feature by feature (a matrix
    product's rounding depends on how many rows it is given), and exponentials from math.exp
    (numpy's own exp may round differently in its vectorised loop than for the last elements).
    """

    def __init__(self, weights, bias):
        self.weights, self.bias = weights, bias  # (features, classes), (classes,)

    def as_json(self):
        """What train.py writes into model.json as `scorer`; JSON keeps every float exactly."""
        return {"computes": "softmax(x @ weights + bias)", "weights": self.weights.tolist(), "bias": self.bias.tolist()}

    @classmethod
    def from_metadata(cls, metadata, path):
        """model.json's `scorer`, if it has one, checked for shape: (features, classes)."""
        if "scorer" not in metadata:
            return None
        n_features, n_classes = len(metadata["features"]), len(metadata["class_names"])
        try:
            weights = np.array(metadata["scorer"]["weights"], dtype=np.float64)
            bias = np.array(metadata["scorer"]["bias"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{path}: scorer is malformed ({type(err).__name__}: {err})") from None
        if weights.shape != (n_features, n_classes) or bias.shape != (n_classes,):
            raise ModelError(
                f"{path}: scorer has weights {weights.shape} and bias {bias.shape}, but "
                f"there are {n_features} features and {n_classes} classes"
            )
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ModelError(f"{path}: scorer holds a number that is not finite")
        return cls(weights, bias)

    def rows(self, rows):
        """Class probabilities for a (rows, features) array, as an array."""
        scores = np.empty((len(rows), self.bias.size))
        block = max(1, 2**20 // self.weights.size)  # rows whose products take at most 8 MiB
        for start in range(0, len(rows), block):
            scores[start:start + block] = (rows[start:start + block, :, np.newaxis] * self.weights).sum(axis=1)
        scores += self.bias
        scores -= scores.max(axis=1, keepdims=True)
        exps = np.fromiter(map(math.exp, scores.ravel().tolist()), np.float64, scores.size).reshape(scores.shape)
        return exps / exps.sum(axis=1, keepdims=True)


def scaler_mean_and_scale(scaler):
    # StandardScaler(with_mean=False) or (with_std=False) stores None for that part.
    n_features = scaler.n_features_in_
    mean = scaler.mean_ if scaler.mean_ is not None else np.zeros(n_features)
    scale = scaler.scale_ if scaler.scale_ is not None else np.ones(n_features)
    return mean, scale


def probe_rows(pipeline, count=512, seed=0):
    """Points spread well beyond the training data, to check a scorer against the pipeline."""
    mean, scale = scaler_mean_and_scale(pipeline.steps[0][1])
    rng = np.random.default_rng(seed)
    return mean + scale * rng.normal(scale=3.0, size=(count, mean.shape[0]))


class LoadedModel:
    """model.json, and what scores rows: its scorer, or else the pipeline itself."""

    def __init__(self, metadata, scorer, pickle_path, pickle_bytes):
        self.metadata = metadata
        self.features = list(metadata["features"])
        self.class_names = list(metadata["class_names"])
        self.scorer = scorer  # an AffineSoftmax, or None
        self.pickle_path, self.pickle_bytes = pickle_path, pickle_bytes
        self.pipeline = None  # unpickled by check()
        self.failure = None  # the ModelError a background check() raised, if it did
        self.checked_in_process = None
        self.check_lock = threading.Lock()

    def check(self):
        """Unpickle model.pkl and check that the scorer gives the pipeline's answers."""
        pipeline = unpickle(self.pickle_path, self.pickle_bytes, self.metadata)
        if self.scorer is not None and not agrees(self.scorer, pipeline):
            raise ModelError(
                f"{self.pickle_path}: its answers differ from the scorer in {METADATA_FILE}; "
                "write both again with train.py"
            )
        self.pipeline = pipeline

    def check_in_background(self, report):
        """check() in a thread, once per process; then report(the ModelError, or None). Once
        per process: gunicorn forks its worker after main.py is imported, and threads don't
        survive a fork. Until the check ends, the scorer answers; if it fails, nothing does.
        Returns the thread it started, if it started one."""
        if self.pipeline is not None or self.checked_in_process == os.getpid():
            return None
        with self.check_lock:
            if self.checked_in_process == os.getpid():
                return None
            checking = threading.Thread(target=self.check_and_report, args=(report,), daemon=True)
            checking.start()  # if this fails, the next request tries again
            self.checked_in_process = os.getpid()
        return checking

    def check_and_report(self, report):
        try:
            self.check()
        except ModelError as err:
            self.failure = err
        except Exception as err:  # whatever went wrong, the scorer is not checked
            self.failure = ModelError(f"{self.pickle_path}: check failed ({type(err).__name__}: {err})")
        report(self.failure)

    def predict_proba(self, rows):
        """Class probabilities for rows of checked values (lists, or an array), as an array."""
        if self.failure is not None:
            raise self.failure
        if not len(rows):  # a BigQuery call whose every row holds a NULL
            return np.empty((0, len(self.class_names)))
        rows = np.asarray(rows, dtype=np.float64)
        if self.scorer is not None:
            return self.scorer.rows(rows)
        return self.pipeline.predict_proba(rows)


def agrees(scorer, pipeline):
    """Whether the scorer gives the pipeline's classes and probabilities (within 1e-9) on
    probe points spread well beyond the training data."""
    probe = probe_rows(pipeline)
    fast, exact = scorer.rows(probe), pipeline.predict_proba(probe)
    return (
        np.allclose(fast, exact, rtol=0, atol=1e-9)
        and np.array_equal(pipeline.classes_[fast.argmax(axis=1)], pipeline.predict(probe))
    )


def load_model(folder, expected_sha256=None):
    """Read model.json and model.pkl, and check all that can be checked without scikit-learn.
    `expected_sha256` overrides model.json's checksum of model.pkl."""
    metadata = read_metadata(folder)
    path, content = read_pickle(metadata, folder, expected_sha256)
    check_versions(metadata, path)
    scorer = AffineSoftmax.from_metadata(metadata, Path(folder) / METADATA_FILE)
    model = LoadedModel(metadata, scorer, path, content)
    if model.scorer is None:
        model.check()  # nothing can answer until the pipeline is unpickled
    return model
