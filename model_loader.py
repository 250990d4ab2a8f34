"""Loading the model once, and only a model that holds together.

A bundle is model.pkl (the fitted pipeline, as joblib.dump writes it) and model.json (what
serving needs to know about it). `load_model(folder)` checks, before the first answer:

- model.json as a whole: its own SHA-256 (`metadata_sha256`, over the rest of the file, so an
  edit by hand is found), every key's type, unique field and class names, an example that covers
  the fields, and a scorer that fits them;
- model.pkl's SHA-256: the one model.json records, and the one MODEL_SHA256 requires, if set;
- the scikit-learn and numpy versions installed: those that made the pickle;
- the pipeline in model.pkl: its classes, its number of features, and that it answers.

Anything wrong raises ModelError, one line naming the file (or setting) and the cause.

A fitted StandardScaler + LogisticRegression is `softmax(x @ weights + bias)`: train.py writes
those numbers into model.json as its `scorer`, with the SHA-256 of the very pickle they were
computed from. With a scorer, the model answers from it, and scikit-learn is never imported
(a second of a small instance's CPU, and 100 MiB): model.pkl is read with stand-ins for those two
classes, and its numbers must give the scorer's very floats. Without one, model.pkl is
unpickled, and answers through its own predict and predict_proba. Unpickling goes through
safe_pickle, which runs no one's code.
"""

import hashlib
import importlib.util
import json
import math
import re
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

import safe_pickle
from validation import InputError, Schema, path, writable

# A pipeline fitted on a pandas DataFrame warns each time it is given an array of the same columns
# (as serving gives it where make package found the answers the same): the warning would fill the log.
warnings.filterwarnings("ignore", message="X does not have valid feature names")

METADATA_FILE = "model.json"
SCORER_COMPUTES = "softmax(x @ weights + bias)"
FIELD_TYPES = ("number", "integer", "string", "boolean")
SHA256 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")


class ModelError(Exception):
    """The model can't be served; the message is one line naming the file and the cause."""


def metadata_digest(metadata):
    """The SHA-256 model.json records of itself: over every key but this one, written canonically."""
    rest = {key: value for key, value in metadata.items() if key != "metadata_sha256"}
    canonical = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_number(value):
    return type(value) in (int, float) and math.isfinite(value)


FIELD_VALUE_TYPES = {"number": is_number, "integer": lambda v: type(v) is int, "string": lambda v: type(v) is str,
                     "boolean": lambda v: type(v) is bool}


def check_fields(fields, problem):
    if not isinstance(fields, list) or not fields:
        raise problem("fields must be a non-empty list")
    for i, field in enumerate(fields):
        where = f"fields[{i}]"
        if not isinstance(field, dict):
            raise problem(f"{where} must be an object")
        unknown = set(field) - {"name", "column", "type", "nullable", "range", "categories", "unknown_categories"}
        if unknown:
            raise problem(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for key, kind in (("name", str), ("column", str), ("type", str), ("nullable", bool)):
            if type(field.get(key)) is not kind or field.get(key) == "":
                raise problem(f"{where}.{key} must be {'a boolean' if kind is bool else 'a non-empty string'}")
        if field["type"] not in FIELD_TYPES:
            raise problem(f"{where}.type must be one of {', '.join(FIELD_TYPES)}")
        if "range" in field:
            low_high = field["range"]
            if (field["type"] not in ("number", "integer") or not isinstance(low_high, list) or len(low_high) != 2
                    or not all(map(is_number, low_high)) or low_high[0] > low_high[1]):
                raise problem(f"{where}.range must be [low, high], two numbers, for a number field")
        if "categories" in field:
            categories = field["categories"]
            fits = FIELD_VALUE_TYPES[field["type"]]
            if not isinstance(categories, list) or not categories or not all(map(fits, categories)):
                raise problem(f"{where}.categories must be a non-empty list of {field['type']} values")
            if len(set(map(repr, categories))) != len(categories):
                raise problem(f"{where}.categories repeats a value")
            if field.get("unknown_categories") not in ("ignore", "error"):
                raise problem(f"{where}.unknown_categories must be ignore or error")
        elif "unknown_categories" in field:
            raise problem(f"{where}.unknown_categories needs categories")
    for key in ("name", "column"):
        values = [field[key] for field in fields]
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise problem(f"fields repeat the {key} {', '.join(map(repr, repeated))}")
    # A request may name a field by its column too: no column may be another field's name.
    for field in fields:
        other = next((f for f in fields if f["name"] == field["column"] and f is not field), None)
        if other is not None:
            raise problem(f"field {other['name']!r} is also the column of field {field['name']!r}")


# Each key model.json holds, with how to check it; `None` for a key that may be absent.
def check_metadata(metadata, folder):
    """model.json's content as a whole; ModelError naming the first problem."""

    def problem(cause):
        return ModelError(f"{METADATA_FILE}: {cause}")

    if not isinstance(metadata, dict):
        raise problem("not a JSON object")
    if metadata.get("metadata_sha256") != metadata_digest(metadata):
        raise problem("its content does not match its metadata_sha256 (edited by hand?); "
                      "write it again with train.py or make package")
    known = {"name", "task", "model_file", "model_sha256", "trained_at", "data", "fields", "input", "classes",
             "class_names", "pipeline", "metrics", "example", "versions", "modules", "scorer", "metadata_sha256"}
    unknown = set(metadata) - known
    if unknown:
        raise problem(f"unknown keys: {', '.join(sorted(unknown))}")
    required = {"name": str, "task": str, "model_file": str, "model_sha256": str, "trained_at": str, "data": dict,
                "fields": list, "input": str, "pipeline": list, "metrics": dict, "example": dict, "versions": dict,
                "modules": list}
    for key, kind in required.items():
        if type(metadata.get(key)) is not kind:
            raise problem(f"{key} must be {'an object' if kind is dict else 'a list' if kind is list else 'a string'}")
    if not NAME.fullmatch(metadata["name"]):
        raise problem("name must be lower-case letters, digits and hyphens, starting with a letter")
    if metadata["task"] not in ("classification", "regression"):
        raise problem("task must be classification or regression")
    if metadata["input"] not in ("array", "dataframe"):
        raise problem("input must be array or dataframe")
    model_file = metadata["model_file"]
    if Path(model_file).name != model_file or model_file.startswith("."):
        raise problem("model_file must be a file name in the bundle's folder")
    if not SHA256.fullmatch(metadata["model_sha256"]):
        raise problem("model_sha256 must be 64 lower-case hex digits")
    for key in ("scikit-learn", "numpy"):
        if type(metadata["versions"].get(key)) is not str:
            raise problem(f"versions must name the {key} that made the pickle")
    if not all(is_number(value) for value in metadata["metrics"].values()):
        raise problem("metrics must all be numbers")
    check_fields(metadata["fields"], problem)
    for module in metadata["modules"]:
        if type(module) is not str or not module.isidentifier() or not (Path(folder) / f"{module}.py").is_file():
            raise problem(f"modules lists {module!r}, which is not a module file in the bundle")
    if metadata["task"] == "classification":
        classes, names = metadata.get("classes"), metadata.get("class_names")
        if not isinstance(classes, list) or len(classes) < 2 or len({type(c) for c in classes}) != 1 \
                or type(classes[0]) not in (int, str, bool):
            raise problem("classes must list two or more labels, all integers, all strings or all booleans")
        if len(set(classes)) != len(classes):
            raise problem("classes repeats a label")
        if not isinstance(names, list) or len(names) != len(classes) or not all(type(n) is str for n in names):
            raise problem(f"class_names must be {len(classes)} strings, one per class")
        if len(set(names)) != len(names):
            raise problem("class_names repeats a name")
    elif "classes" in metadata or "class_names" in metadata or "scorer" in metadata:
        raise problem("a regression has no classes, class_names or scorer")
    example = metadata["example"]
    names = [field["name"] for field in metadata["fields"]]
    if sorted(example) != sorted(names):
        raise problem("example must hold every field, and nothing else")
    for field in metadata["fields"]:
        value = example[field["name"]]
        if not (FIELD_VALUE_TYPES[field["type"]](value) or (value is None and field["nullable"])):
            raise problem(f"example's {field['name']} is not a {field['type']}")


def read_metadata(folder):
    path = Path(folder) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{METADATA_FILE}: not found") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{METADATA_FILE}: unreadable ({err})") from None
    check_metadata(metadata, folder)
    return metadata


def installed_version(package):
    try:
        return version(package)  # from the package's metadata: importing scikit-learn takes a second
    except PackageNotFoundError:
        return None


def check_versions(metadata):
    made_with, name = metadata["versions"], metadata["model_file"]
    sklearn_version = installed_version("scikit-learn")
    if made_with["scikit-learn"] != sklearn_version:
        raise version_refusal(name, "scikit-learn", made_with["scikit-learn"], sklearn_version)
    if made_with["numpy"].split(".")[0] != np.__version__.split(".")[0]:
        raise version_refusal(name, "numpy", made_with["numpy"], np.__version__)


def read_pickle(metadata, folder, expected_sha256=None):
    """model.pkl's bytes, once its SHA-256 is model.json's, and MODEL_SHA256's if that is set."""
    name = metadata["model_file"]
    try:
        content = (Path(folder) / name).read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{name}: not found") from None
    except OSError as err:
        raise ModelError(f"{name}: unreadable ({err})") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != metadata["model_sha256"]:
        raise ModelError(
            f"{name}: its SHA-256 is {actual}, but {METADATA_FILE} describes a {name} whose SHA-256 is "
            f"{metadata['model_sha256']}; write both again with train.py, or describe this one with make package"
        )
    if expected_sha256 is not None and actual != expected_sha256:
        raise ModelError(f"MODEL_SHA256: {name}'s SHA-256 is {actual}, not {expected_sha256}")
    return content


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

    def as_json(self, pickle_sha256):
        """What train.py writes into model.json as `scorer`; JSON keeps every float exactly."""
        return {"computes": SCORER_COMPUTES, "weights": self.weights.tolist(), "bias": self.bias.tolist(),
                "pickle_sha256": pickle_sha256}

    @classmethod
    def from_metadata(cls, metadata):
        """model.json's `scorer`, if it has one: made from this very pickle, and of the right shape."""
        scorer = metadata.get("scorer")
        if scorer is None:
            return None

        def problem(cause):
            return ModelError(f"{METADATA_FILE}: scorer {cause}")

        if not isinstance(scorer, dict) or scorer.get("computes") != SCORER_COMPUTES:
            raise problem(f"must be an object that computes {SCORER_COMPUTES}")
        if scorer.get("pickle_sha256") != metadata["model_sha256"]:
            raise problem(f"was made from another {metadata['model_file']}; write both again with train.py")
        n_features, n_classes = len(metadata["fields"]), len(metadata["classes"])
        try:
            weights = np.array(scorer["weights"], dtype=np.float64)
            bias = np.array(scorer["bias"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as err:
            raise problem(f"is malformed ({type(err).__name__}: {err})") from None
        if weights.shape != (n_features, n_classes) or bias.shape != (n_classes,):
            raise problem(f"has weights {weights.shape} and bias {bias.shape}, but there are {n_features} "
                          f"fields and {n_classes} classes")
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise problem("holds a number that is not finite")
        if any(field["type"] != "number" or field["nullable"] for field in metadata["fields"]):
            raise problem("needs every field to be a number that may not be null")
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


# The one pipeline that has a linear form: its classes, as a pickle names them.
PIPELINE, SCALER, CLASSIFIER = ("sklearn.pipeline.Pipeline", "sklearn.preprocessing._data.StandardScaler",
                                "sklearn.linear_model._logistic.LogisticRegression")


def class_path(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def affine_softmax(pipeline):
    """The pipeline as an AffineSoftmax if it is StandardScaler + LogisticRegression, else None.

    It takes scikit-learn's objects, or the StandIns safe_pickle reads in their place, alike. The
    numbers are computed the same way on every machine (elementwise, and each bias summed by
    math.fsum, where a matrix product's rounding depends on the CPU), so that a serving instance
    computes them again from model.pkl and finds the very floats train.py wrote into model.json.
    """
    steps = getattr(pipeline, "steps", None)
    if class_path(pipeline) != PIPELINE or not isinstance(steps, list) or len(steps) != 2:
        return None
    (_, scaler), (_, classifier) = steps
    if class_path(scaler) != SCALER or class_path(classifier) != CLASSIFIER:
        return None
    n_features, n_classes = scaler.n_features_in_, len(classifier.classes_)
    # As StandardScaler.transform does: the mean taken away only if with_mean, the scale only if with_std.
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n_features)
    scale = scaler.scale_ if scaler.with_std else np.ones(n_features)
    coef, intercept = classifier.coef_, classifier.intercept_  # one row per class; one row in all if binary
    rows = 1 if n_classes == 2 else n_classes
    shapes = [(mean, (n_features,)), (scale, (n_features,)), (coef, (rows, n_features)), (intercept, (rows,))]
    if n_classes < 2 or not all(type(a) is np.ndarray and a.dtype == np.float64 and a.shape == shape for a, shape in shapes):
        return None
    weights = coef.T / scale[:, np.newaxis]
    shift = mean / scale
    bias = np.array([math.fsum([intercept[k], *(-shift * coef[k]).tolist()]) for k in range(rows)])
    if n_classes == 2:  # one decision function, its probability the logistic: softmax of -d/2 and d/2
        weights, bias = np.hstack([-weights / 2, weights / 2]), np.array([-bias[0] / 2, bias[0] / 2])
    return AffineSoftmax(weights, bias)


def as_list(values):
    """An array's values as JSON's: numpy's integers and strings as Python's."""
    return [value.item() if hasattr(value, "item") else value for value in values]


def version_refusal(name, package, made_with, installed):
    return ModelError(f"{name}: made with {package} {made_with}, but {package} {installed} is installed; "
                      "install the version it was made with, or retrain")


def check_classes(name, classes, metadata):
    if metadata["task"] == "classification" and classes != metadata["classes"]:
        raise ModelError(f"{name}: its classes are {classes}, {METADATA_FILE} lists {metadata['classes']}")
    if metadata["task"] == "regression" and classes:
        raise ModelError(f"{name}: holds a classifier (classes {classes}), {METADATA_FILE} describes a regression")


def check_scorer(scorer, content, metadata):
    """That model.json's scorer is the linear form of model.pkl's own numbers, found without
    scikit-learn: the pickle read with StandIns (a millisecond, where importing scikit-learn to
    unpickle it takes a second and 100 MiB), its linear form computed again, and found to be the
    scorer's very floats. That this form gives the pipeline's answers, bundle_writer checked with
    scikit-learn itself, of the version installed here (check_versions, and below). Called after
    check_versions."""
    name = metadata["model_file"]
    try:
        pipeline = safe_pickle.read_parameters(content, (PIPELINE, SCALER, CLASSIFIER))
    except safe_pickle.RefusedGlobal as err:
        raise ModelError(f"{name}: {err}") from None
    except safe_pickle.NoStandIn as err:
        raise ModelError(f"{name}: {err}, but {METADATA_FILE}'s scorer is a StandardScaler + LogisticRegression "
                         "pipeline's; write both again with train.py or make package") from None
    except Exception as err:  # a pickle can fail in many ways; all mean "can't serve"
        raise ModelError(f"{name}: failed to load ({type(err).__name__}: {err})") from None
    try:
        found = affine_softmax(pipeline)
        objects = [pipeline, *(step for _, step in pipeline.steps)]
        made_with = {getattr(obj, "_sklearn_version", None) for obj in objects}
        classes = as_list(pipeline.steps[1][1].classes_)
    except Exception:  # attributes missing or of other types than scikit-learn's own
        found = None
    if found is None:
        raise ModelError(f"{name}: is not the StandardScaler + LogisticRegression pipeline {METADATA_FILE}'s "
                         "scorer describes; write both again with train.py or make package")
    installed = metadata["versions"]["scikit-learn"]  # check_versions found it to be the one installed
    if made_with != {installed}:
        raise version_refusal(name, "scikit-learn", " and ".join(sorted(map(str, made_with - {installed}))), installed)
    check_classes(name, classes, metadata)
    if not (np.array_equal(found.weights, scorer.weights) and np.array_equal(found.bias, scorer.bias)):
        raise ModelError(f"{name}: its numbers are not the scorer in {METADATA_FILE}; write both again with train.py")


def unpickle(content, metadata):
    """The pipeline in model.pkl's checked bytes, if it fits model.json."""
    from sklearn.exceptions import InconsistentVersionWarning

    name = metadata["model_file"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            pipeline = safe_pickle.load(content, own_modules=metadata["modules"])
    except safe_pickle.RefusedGlobal as err:
        raise ModelError(f"{name}: {err}") from None
    except InconsistentVersionWarning as warning:
        raise ModelError(f"{name}: {warning}".replace("\n", " ")) from None
    except Exception as err:  # a pickle can fail in many ways; all mean "can't serve"
        raise ModelError(f"{name}: failed to load ({type(err).__name__}: {err})") from None
    if not hasattr(pipeline, "predict"):
        raise ModelError(f"{name}: holds a {type(pipeline).__name__}, which has no predict")
    n_features = getattr(pipeline, "n_features_in_", None)  # a pipeline of one's own steps may not say
    if n_features is not None and n_features != len(metadata["fields"]):
        raise ModelError(f"{name}: expects {n_features} features, {METADATA_FILE} lists {len(metadata['fields'])} fields")
    check_classes(name, as_list(getattr(pipeline, "classes_", [])), metadata)
    return pipeline


class LoadedModel:
    """model.json, and what scores rows: its scorer, or else the pipeline itself."""

    def __init__(self, metadata, scorer=None, pipeline=None):
        self.metadata = metadata
        self.schema = Schema(metadata["fields"])
        self.features = self.schema.names
        self.task = metadata["task"]
        self.version = metadata["model_sha256"][:12]  # the model's version, as the Open Inference Protocol asks
        self.classes = metadata.get("classes", [])
        self.class_names = metadata.get("class_names", [])
        self.class_name = dict(zip(self.classes, self.class_names))
        self.scorer = scorer  # an AffineSoftmax, or None
        self.pipeline = pipeline  # the unpickled pipeline, where there is no scorer

    @property
    def gives_probabilities(self):
        return self.scorer is not None or (self.task == "classification" and hasattr(self.pipeline, "predict_proba"))

    def predict(self, rows, where=lambda i: ""):
        """The model's answers for checked rows: the labels its predict gives (the values, for a
        regression) and, for a classifier that gives them, the class probabilities, as lists. A row
        the pipeline itself refuses is an InputError at `where(i)`, naming the field to blame."""
        if not rows:  # a BigQuery call whose every row holds a NULL
            return [], [] if self.gives_probabilities else None
        if self.scorer is not None:
            probabilities = self.scorer.rows(np.asarray(rows, dtype=np.float64))
            return [self.classes[i] for i in probabilities.argmax(axis=1).tolist()], probabilities.tolist()
        try:
            return self.pipeline_answers(rows)
        except (ValueError, TypeError, ArithmeticError) as err:
            raise self.refusal(rows, where, err) from None

    def pipeline_answers(self, rows):
        X = self.schema.pipeline_input(rows, self.metadata["input"])
        labels = np.asarray(self.pipeline.predict(X))
        probabilities = self.pipeline.predict_proba(X) if self.gives_probabilities else None
        if self.task == "regression" and not np.isfinite(labels.astype(np.float64)).all():
            raise ValueError("the model's answer is not a finite number")
        if probabilities is not None and not np.isfinite(probabilities).all():
            raise ValueError("the model's probabilities are not finite numbers")
        return labels.tolist(), None if probabilities is None else probabilities.tolist()

    def refusal(self, rows, where, error):
        """The first row the pipeline refuses on its own, and in it the field whose value, once
        replaced by the example's, lets it be scored. Only run when a request has failed."""
        example = self.schema.row(self.metadata["example"])[0]
        for i, row in enumerate(rows):
            try:
                self.pipeline_answers([row])
                continue
            except (ValueError, TypeError, ArithmeticError) as err:
                reason = writable(" ".join(str(err).split()))[:300]
            for j, field in enumerate(self.schema.fields):
                try:
                    self.pipeline_answers([row[:j] + [example[j]] + row[j + 1:]])
                except (ValueError, TypeError, ArithmeticError):
                    continue
                return InputError(f"{field.name}: the model can't score this value ({reason})", path(where(i), field.name))
            return InputError(f"the model can't score this row ({reason})", where(i) or None)
        raise error  # every row scores alone: the failure is not the rows'


def load_model(folder, expected_sha256=None):
    """model.json and model.pkl, read and found to hold together, or ModelError. With a scorer,
    scikit-learn is not imported. `expected_sha256` (MODEL_SHA256) is the SHA-256 model.pkl must
    have as well as model.json's."""
    metadata = read_metadata(folder)
    content = read_pickle(metadata, folder, expected_sha256)
    check_versions(metadata)
    if metadata["input"] == "dataframe" and importlib.util.find_spec("pandas") is None:
        raise ModelError(f"{METADATA_FILE}: this pipeline takes a pandas DataFrame, and pandas is not installed; "
                         "pin it in requirements.txt (make package does)")
    scorer = AffineSoftmax.from_metadata(metadata)
    if scorer is not None:
        check_scorer(scorer, content, metadata)
        return LoadedModel(metadata, scorer=scorer)
    model = LoadedModel(metadata, pipeline=unpickle(content, metadata))
    model.predict([model.schema.row(metadata["example"])[0]])  # it must answer its own example
    return model
