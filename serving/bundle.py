"""Reading the bundle once, and only a bundle that holds together.

A bundle is model.pkl (the fitted pipeline, as joblib.dump writes it) and model.json (what
serving needs to know about it). `load_model(folder)` checks, before the first answer:

- model.json as a whole: every key's type, unique field and class names, an example that covers
  the fields (class names and the example may be edited by hand; they are checked, not sealed);
- model.pkl's SHA-256: the one model.json records, and the one MODEL_SHA256 requires, if set;
- the versions: numpy of the major version that made the pickle; for a pipeline unpickled, the
  scikit-learn installed is the one that made it, and so is each other library it trusts (XGBoost,
  say); for one read as data, every record was made by the scikit-learn it was proven against;
- the pipeline in model.pkl: its classes, its number of features, and that it answers.

Anything wrong raises ModelError, one line naming the file (or setting) and the cause.

A bundle whose model.json says `served_as: data` is read as data: model.pkl's records (each
object's class and state, nothing run) are checked and built into steps computed with numpy
(serving/records.py, serving/scorers/), and scikit-learn is never imported (seconds of a small
instance's CPU, and 100 MiB). The bundle writer proved, with scikit-learn, that these steps give
the pipeline's answers before it wrote `data` there. Any other bundle is unpickled through
safe_pickle, and answers through its own predict, but only if model.json records whose code it
trusts (`trust`, and its own `modules`): loading a pickle can run any code it names.
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

from serving import records, scorers
from serving.fields import DATE_PARTS, MOMENT_TYPES, InputError, Schema, moment_of
from serving.model import Model

METADATA_FILE = "model.json"
SERVED_AS = ("data", "pipeline")
FIELD_TYPES = ("number", "integer", "string", "text", "boolean", *MOMENT_TYPES)
# What the pipeline is given: a numpy array of the fields, a pandas DataFrame of their columns, or
# for a pipeline fitted on one column of text (a Series), the documents: a 1-D array of one text field.
INPUTS = ("array", "dataframe", "documents")
SHA256 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")


class ModelError(Exception):
    """The model can't be served; the message is one line naming the file and the cause."""


def is_number(value):
    return type(value) is int or (type(value) is float and math.isfinite(value))  # an int is finite, however long


def is_text(value):
    return type(value) is str


FIELD_VALUE_TYPES = {"number": is_number, "integer": lambda v: type(v) is int, "boolean": lambda v: type(v) is bool,
                     "string": is_text, "text": is_text, "date": is_text, "datetime": is_text}


def check_fields(fields, problem):
    if not isinstance(fields, list) or not fields:
        raise problem("fields must be a non-empty list")
    for i, field in enumerate(fields):
        where = f"fields[{i}]"
        if not isinstance(field, dict):
            raise problem(f"{where} must be an object")
        unknown = set(field) - {"name", "column", "type", "nullable", "range", "categories", "unknown_categories", "parts"}
        if unknown:
            raise problem(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        for key, kind in (("name", str), ("column", str), ("type", str), ("nullable", bool)):
            if type(field.get(key)) is not kind or field.get(key) == "":
                raise problem(f"{where}.{key} must be {'a boolean' if kind is bool else 'a non-empty string'}")
        if field["type"] not in FIELD_TYPES:
            raise problem(f"{where}.type must be one of {', '.join(FIELD_TYPES)}")
        if field["type"] in MOMENT_TYPES:
            check_date_field(field, where, problem)
        elif field["type"] == "text" and {"categories", "unknown_categories"} & set(field):
            raise problem(f"{where} is a text field, which has no categories: any text is taken")
        elif "parts" in field:
            raise problem(f"{where}.parts is for a date field")
        elif "range" in field:
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


def check_date_field(field, where, problem):
    """A date field's range ([first, last], ISO 8601 text of its type) and parts (DATE_PARTS'
    names); it has no categories."""
    if "categories" in field or "unknown_categories" in field:
        raise problem(f"{where} is a {field['type']} field, which has no categories: its range says what training saw")
    if "range" in field:
        moments = iso_moments(field["range"], field["type"])
        if moments is None or len(moments) != 2 or moments[0] > moments[1]:
            raise problem(f"{where}.range must be [first, last], two ISO 8601 {field['type']}s in order")
    if "parts" in field:
        parts = field["parts"]
        if not isinstance(parts, list) or not parts or not all(type(part) is str and part in DATE_PARTS for part in parts) \
                or len(set(parts)) != len(parts):
            raise problem(f"{where}.parts must list some of {', '.join(DATE_PARTS)}, each once")


def iso_moments(values, kind):
    """A list of ISO 8601 texts of a date field's `kind` as datetimes, or None if it isn't one."""
    try:
        moments = [moment_of(value, kind) if type(value) is str else None for value in values] if isinstance(values, list) else [None]
    except (ValueError, OverflowError):  # a day no calendar has
        return None
    return None if None in moments else moments


def check_metadata(metadata, folder):
    """model.json's content as a whole; ModelError naming the first problem."""

    def problem(cause):
        return ModelError(f"{METADATA_FILE}: {cause}")

    if not isinstance(metadata, dict):
        raise problem("not a JSON object")
    check_writable(metadata, problem)
    known = {"name", "task", "model_file", "model_sha256", "trained_at", "data", "fields", "input", "classes",
             "class_names", "pipeline", "metrics", "example", "versions", "modules", "served_as", "proof", "trust",
             "unpickles"}
    unknown = set(metadata) - known
    if unknown:
        raise problem(f"unknown keys: {', '.join(sorted(unknown))}")
    required = {"name": str, "task": str, "model_file": str, "model_sha256": str, "trained_at": str, "data": dict,
                "fields": list, "input": str, "pipeline": list, "metrics": dict, "example": dict, "versions": dict,
                "modules": list, "served_as": str}
    for key, kind in required.items():
        if type(metadata.get(key)) is not kind:
            raise problem(f"{key} must be {'an object' if kind is dict else 'a list' if kind is list else 'a string'}")
    if type(metadata["data"].get("target")) is not str:  # what the OpenAPI document says the model predicts
        raise problem("data.target must be a string: the column the model predicts")
    if not NAME.fullmatch(metadata["name"]):
        raise problem("name must be lower-case letters, digits and hyphens, starting with a letter")
    if metadata["task"] not in ("classification", "regression"):
        raise problem("task must be classification or regression")
    if metadata["served_as"] not in SERVED_AS:
        raise problem(f"served_as must be {' or '.join(SERVED_AS)}")
    if metadata["input"] not in INPUTS:
        raise problem(f"input must be {', '.join(INPUTS[:-1])} or {INPUTS[-1]}")
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
    if metadata["input"] == "documents" and [field["type"] for field in metadata["fields"]] != ["text"]:
        raise problem("input documents is for a pipeline of one text field, and only one")
    for module in metadata["modules"]:
        if type(module) is not str or not module.isidentifier() or not (Path(folder) / f"{module}.py").is_file():
            raise problem(f"modules lists {module!r}, which is not a module file in the bundle")
    if not isinstance(metadata.get("proof", {}), dict):
        raise problem("proof must be an object")
    check_classes_and_example(metadata, problem)


# model.json's own nesting is 4 deep (fields[0].range); no bundle needs 32, and the answers that
# quote it are written by orjson, which refuses more than 255.
MAX_DEPTH = 32


def check_writable(metadata, problem):
    """That model.json is what the answers quoting it (GET's description, /openapi.json) can write:
    nested at most MAX_DEPTH deep, integers within 64 bits, text that UTF-8 can hold. Walked with a
    stack: recursing as deep as the file is nested is what this guards against."""
    stack = [("", metadata, 1)]
    while stack:
        where, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise problem(f"nested more than {MAX_DEPTH} deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((json_path(where, key), item, depth + 1) for key, item in items)
        if isinstance(value, dict) and not all(map(is_utf8, value)):
            raise problem(f"{where or 'the top level'} has a key that no UTF-8 text can hold (a lone surrogate)")
        if type(value) is int and not -2**63 <= value < 2**64:
            raise problem(f"{where} is an integer beyond 64 bits")
        if type(value) is str and not is_utf8(value):
            raise problem(f"{where} is text that no UTF-8 can hold (a lone surrogate)")


def is_utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, which JSON may spell
        return False
    return True


def json_path(where, key):
    if isinstance(key, int):
        return f"{where}[{key}]"
    key = key.encode("utf-8", "backslashreplace").decode("utf-8")  # a key no UTF-8 can hold, as JSON spells it
    return f"{where}.{key}" if where else key


def check_classes_and_example(metadata, problem):
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
    elif "classes" in metadata or "class_names" in metadata:
        raise problem("a regression has no classes or class_names")
    example = metadata["example"]
    names = [field["name"] for field in metadata["fields"]]
    if sorted(example) != sorted(names):
        raise problem("example must hold every field, and nothing else")
    for field in metadata["fields"]:
        value = example[field["name"]]
        if not (FIELD_VALUE_TYPES[field["type"]](value) or (value is None and field["nullable"])):
            raise problem(f"example's {field['name']} is not a {field['type']}")
    try:  # as a request's row is checked: within fields.MAX_MAGNITUDE, one of its categories
        Schema(metadata["fields"]).row(example)
    except InputError as err:
        raise problem(f"example's {err.message}") from None


def read_metadata(folder):
    path = Path(folder) / METADATA_FILE
    try:
        metadata = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{METADATA_FILE}: not found") from None
    except RecursionError:  # Python's JSON reader recurses as deep as the file is nested
        raise ModelError(f"{METADATA_FILE}: nested more than {MAX_DEPTH} deep") from None
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
    """numpy of the major version that made the pickle; and, for a pipeline unpickled, the very
    scikit-learn that made it (one served as data was proven against it, which is not installed)."""
    made_with, name = metadata["versions"], metadata["model_file"]
    sklearn_version = installed_version("scikit-learn")
    if metadata["served_as"] == "pipeline" and made_with["scikit-learn"] != sklearn_version:
        raise version_refusal(name, "scikit-learn", made_with["scikit-learn"], sklearn_version or "none")
    if made_with["numpy"].split(".")[0] != np.__version__.split(".")[0]:
        raise version_refusal(name, "numpy", made_with["numpy"], np.__version__)


def read_pickle(metadata, folder, expected_sha256=None):
    """The pickle in model.pkl, once the file's SHA-256 is model.json's, and MODEL_SHA256's if that is
    set: its bytes, decompressed if joblib.dump compressed them (make package writes them uncompressed)."""
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
    try:
        return records.uncompressed(content)
    except records.RecordError as err:
        raise ModelError(f"{name}: {err}") from None


def as_list(values):
    """An array's values as JSON's: numpy's integers and strings as Python's."""
    return [value.item() if hasattr(value, "item") else value for value in values]


def version_refusal(name, package, made_with, installed):
    return ModelError(f"{name}: made with {package} {made_with}, but {package} {installed} is installed; "
                      "install the version it was made with, or retrain")


def check_width(name, n_features, metadata):
    """That the pipeline takes as many columns as model.json's fields give it (a date with parts, one a part)."""
    width, count = Schema(metadata["fields"]).width, len(metadata["fields"])
    if n_features != width:
        parts = f", which give it {width} columns (a date's parts each one)" if width != count else ""
        raise ModelError(f"{name}: expects {n_features} features, {METADATA_FILE} lists {count} fields{parts}")


def check_classes(name, classes, metadata):
    if metadata["task"] == "classification" and classes != metadata["classes"]:
        raise ModelError(f"{name}: its classes are {classes}, {METADATA_FILE} lists {metadata['classes']}")
    if metadata["task"] == "regression" and classes:
        raise ModelError(f"{name}: holds a classifier (classes {classes}), {METADATA_FILE} describes a regression")


def read_as_data(content, metadata):
    """The pipeline in model.pkl's checked bytes, read as data and built into numpy steps, each of
    its records checked (serving/scorers); no method of any library runs on the pickle's state."""
    name = metadata["model_file"]
    try:
        record = records.read(content, scorers.SERVED)
        predictor = scorers.build(record)
    except records.RecordError as err:
        raise ModelError(f"{name}: {err}") from None
    proven = metadata["versions"]["scikit-learn"]
    made_with = sklearn_versions(record) - {proven}
    if made_with:  # the numpy steps were proven against `proven`'s scikit-learn, and compute what it computes
        raise ModelError(f"{name}: made with scikit-learn {' and '.join(sorted(made_with))}, but {METADATA_FILE} says it "
                         f"was proven against scikit-learn {proven}; package it again")
    check_width(name, predictor.n_features_in, metadata)
    check_classes(name, as_list(getattr(predictor, "classes", [])), metadata)
    return predictor


def sklearn_versions(record):
    """The scikit-learn versions that pickled each estimator in a record and those nested in it."""
    return {str(each.state["_sklearn_version"]) for each in records.walk(record)
            if isinstance(each.state, dict) and "_sklearn_version" in each.state}


def check_trust(metadata):
    """A bundle unpickled at start must record whose code it trusts: the libraries (make package
    TRUST=) and its own modules (MODULES=) whose code model.pkl may run as it loads and answers; and
    of each library whose version model.json records, that version installed."""
    trust, names = metadata.get("trust"), metadata.get("unpickles")
    if trust is not None and not (isinstance(trust, list) and all(type(library) is str and library for library in trust)):
        raise ModelError(f"{METADATA_FILE}: trust must be a list of library names")
    if names is not None and not (isinstance(names, list) and all(type(name) is str for name in names)):
        raise ModelError(f"{METADATA_FILE}: unpickles must be a list of module.name strings")
    if metadata["served_as"] == "pipeline" and not (trust or metadata["modules"]):
        raise ModelError(f"{METADATA_FILE}: {metadata['model_file']} is served as a pipeline, unpickled here, and loading "
                         "a pickle can run any code it names, but trust records no library whose code it may run; "
                         "package it again with make package TRUST=..., and only if you made it")
    for library in trust or []:  # xgboost's, say, recorded beside scikit-learn's: answers the same only as that version
        made_with, installed = metadata["versions"].get(library), installed_version(library)
        if made_with is not None and installed is not None and installed != made_with:
            raise version_refusal(metadata["model_file"], library, made_with, installed)


def trust_line(metadata):
    """What model.json says this instance trusts of model.pkl, for the line printed at start."""
    name = metadata["model_file"]
    if metadata["served_as"] == "data":
        return f"{name} is read as data: no code in it runs (trust: none)"
    trusted = metadata.get("trust", []) + [f"{module}.py" for module in metadata["modules"]]
    return f"{name} is unpickled, trusting the code of {', '.join(trusted)} (model.json's trust), which it may run"


def unpickle(content, metadata, folder):
    """The pipeline in model.pkl's checked bytes, if it fits model.json: each name it gives checked
    against what model.json trusts, before anything is imported."""
    from sklearn.exceptions import InconsistentVersionWarning

    from serving import safe_pickle  # joblib's unpickler, which a bundle served as data never needs

    name = metadata["model_file"]
    try:
        trust = safe_pickle.Trust(metadata["trust"], {module: Path(folder) / f"{module}.py" for module in metadata["modules"]},
                                  only=metadata.get("unpickles"))
    except safe_pickle.UnknownLibrary as err:
        raise ModelError(f"{METADATA_FILE}: trust names {err}, which is not installed; pin it in requirements.txt") from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            pipeline = safe_pickle.load(content, trust)
    except safe_pickle.RefusedGlobal as err:
        raise ModelError(f"{name}: {err}") from None
    except InconsistentVersionWarning as warning:
        raise ModelError(f"{name}: {warning}".replace("\n", " ")) from None
    except Exception as err:  # a pickle can fail in many ways; all mean "can't serve"
        raise ModelError(f"{name}: failed to load ({type(err).__name__}: {err})") from None
    if not hasattr(pipeline, "predict"):
        raise ModelError(f"{name}: holds a {type(pipeline).__name__}, which has no predict")
    n_features = getattr(pipeline, "n_features_in_", None)  # a pipeline of one's own steps may not say
    if n_features is not None:
        check_width(name, n_features, metadata)
    check_classes(name, as_list(getattr(pipeline, "classes_", [])), metadata)
    return pipeline


def load_model(folder, expected_sha256=None) -> Model:
    """model.json and model.pkl, read and found to hold together, or ModelError. A bundle served as
    data imports none of scikit-learn, scipy, pandas or joblib. `expected_sha256` (MODEL_SHA256) is
    the SHA-256 model.pkl must have as well as model.json's."""
    metadata = read_metadata(folder)
    content = read_pickle(metadata, folder, expected_sha256)
    check_versions(metadata)
    check_trust(metadata)
    if metadata["served_as"] == "data":
        model = Model(metadata, read_as_data(content, metadata), "array")
    else:
        if metadata["input"] == "dataframe" and importlib.util.find_spec("pandas") is None:
            raise ModelError(f"{METADATA_FILE}: this pipeline takes a pandas DataFrame, and pandas is not installed; "
                             "pin it in requirements.txt (make package does)")
        model = Model(metadata, unpickle(content, metadata, folder), metadata["input"])
    try:  # it must answer its own example (a row model.json's check found good)
        model.answers([model.schema.row(metadata["example"])[0]])
    except Exception as err:  # a pipeline can fail in any way; each means it can't serve
        reason = " ".join(str(err).split())[:300]
        raise ModelError(f"{metadata['model_file']}: it fails on {METADATA_FILE}'s example ({type(err).__name__}: {reason})") from None
    return model
