"""Package a pipeline made elsewhere (a notebook's `joblib.dump(pipe, f)`) as this bundle's model.

    python package.py notebook/model.pkl --data sample.csv [--target column]
        [--modules my_steps.py,...] [--class-names a,b,c] [--name name] [--out folder]

It loads the pickle safely (safe_pickle: nothing in it runs), reads what the pipeline knows about
itself (its columns, classes, fitted encoders' categories, classifier or regressor,
predict_proba or not), takes the fields' types, gaps and ranges from the sample, tries what the
pipeline accepts (a null, a category it never saw, an array instead of a DataFrame), checks that
it scores every row of the sample as the function will give them to it (and how well, when the
sample holds the target), and writes model.pkl and model.json just as train.py does. Without a
sample it does what it can from the pipeline alone and says what it had to assume. What can't be
served is refused here, with what to do about it.
"""

import argparse
import pickle
import shutil
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from bundling.fields import DataError, column_type, fields_of, model_name, python_values
from bundling.probe import NEVER_SEEN, Probe, first_failure, input_kind
from bundling.writer import served_as, write_bundle
from serving import safe_pickle
from serving.bundle import as_list

HERE = Path(__file__).resolve().parent


class RecordingUnpickler(safe_pickle.SafeUnpickler):
    """safe_pickle's unpickler, noting each module the pickle names (numpy's tell its version)."""

    named = set()

    def find_class(self, module, name):
        self.named.add(module)
        return super().find_class(module, name)


def load_pipeline(path, modules):
    """The pipeline in the pickle at `path`; DataError saying what to do if it can't be served."""
    from sklearn.exceptions import InconsistentVersionWarning

    content = Path(path).read_bytes()
    for module in modules:
        sys.path.insert(0, str(Path(module).resolve().parent))
    own = [Path(module).stem for module in modules]
    RecordingUnpickler.named = set()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            pipeline = safe_pickle.load(content, own, RecordingUnpickler)
    except safe_pickle.RefusedGlobal as err:
        raise DataError(refused(path, err)) from None
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: not a pickle this can read ({err})") from None
    except Exception as err:
        raise DataError(f"{path}: failed to load ({type(err).__name__}: {err}){versions_hint()}") from None
    made_with = {w.message.original_sklearn_version for w in caught if issubclass(w.category, InconsistentVersionWarning)}
    if made_with:
        raise DataError(other_versions(path, "scikit-learn", ", ".join(sorted(made_with)), version("scikit-learn")))
    if any(module.startswith("numpy.core") for module in RecordingUnpickler.named):
        raise DataError(other_versions(path, "numpy", "1.x (it names numpy.core, which numpy 2 calls numpy._core)",
                                       version("numpy")))
    if not hasattr(pipeline, "predict"):
        raise DataError(f"{path}: holds a {type(pipeline).__name__}, which has no predict; pickle the fitted pipeline itself")
    return pipeline


def refused(path, err):
    if err.module == "__main__":
        return (f"{path}: it uses {err.name}, a class defined in the notebook itself (__main__), which a function "
                f"can't import: move {err.name} into a module of its own (my_steps.py, say), import it from there "
                f"in the notebook, fit and dump the pipeline again, and package it with MODULES=my_steps.py")
    import importlib.util
    import sysconfig

    top = err.module.split(".")[0]
    spec = importlib.util.find_spec(top)
    installed = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
    if spec is not None and (spec.origin in (None, "built-in", "frozen") or spec.origin.startswith(installed)):
        return f"{path}: {err}: a pipeline is made of scikit-learn, numpy and scipy, and of modules given with MODULES="
    where = spec.origin if spec is not None else f"path/to/{top}.py"
    return (f"{path}: it uses {err.module}.{err.name}, from the module {top}, which the bundle doesn't hold: add it "
            f"with MODULES={where} (the file is copied next to main.py, shipped in archive.zip, and allowed to load)")


def versions_hint():
    return f"; was it made with another scikit-learn than {version('scikit-learn')}? Retrain it with that version"


def other_versions(path, package, made_with, pinned):
    return (f"{path}: made with {package} {made_with}, but requirements.txt pins {package} {pinned}; a pickle is only "
            f"sure to load, and to answer the same, with the versions that made it. Either retrain it with "
            f"{package} {pinned} (in the notebook: pip install {package}=={pinned}, then fit and dump again), or pin "
            f"the versions it was made with in requirements.txt (which the tools install too), and package again")


def encoders(pipeline):
    """{column: (categories, whether an unseen value is ignored)} from the pipeline's fitted
    OneHotEncoders and OrdinalEncoders, wherever a ColumnTransformer hands them named columns."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    found = {}

    def walk(step, columns=None):
        if isinstance(step, Pipeline):
            for _, inner in step.steps:
                walk(inner, columns)
        elif isinstance(step, ColumnTransformer):
            for _, inner, selected in step.transformers_:
                if isinstance(selected, (list, tuple, np.ndarray)) and len(selected) and isinstance(selected[0], str):
                    walk(inner, list(selected))
        elif isinstance(step, (OneHotEncoder, OrdinalEncoder)) and columns and len(columns) == len(step.categories_):
            ignores = step.handle_unknown in ("ignore", "infrequent_if_exist", "use_encoded_value", "warn")
            for column, categories in zip(columns, step.categories_):
                found[column] = ([value for value in as_list(categories)
                                  if not (isinstance(value, float) and np.isnan(value))], ignores)

    walk(pipeline)
    return found


def stated_columns(pipeline):
    """The columns the pipeline says it takes, and how many: its own feature_names_in_, or else
    those of the first of its steps that states them (a first step of one's own may not)."""
    for step in [pipeline] + [step for _, step in getattr(pipeline, "steps", [])]:
        if hasattr(step, "feature_names_in_"):
            return [str(c) for c in step.feature_names_in_], len(step.feature_names_in_)
        if getattr(step, "n_features_in_", None) is not None:
            return None, step.n_features_in_
    return None, None


def read_sample(path, columns, target, n_features):
    """The sample's feature columns (the pipeline's, in its order), as pandas read them, and the target if asked."""
    import pandas as pd

    table = pd.read_csv(path)
    if str(table.columns[0]).startswith("Unnamed: 0"):
        table = table.drop(columns=[table.columns[0]])  # the index pandas writes with to_csv
    if target and target not in table.columns:
        raise DataError(f"{path}: no column {target!r}; the columns are: {', '.join(map(str, table.columns))}")
    if columns is None:
        columns = [str(c) for c in table.columns if c != target]
        if n_features is not None and len(columns) != n_features:
            raise DataError(f"{path}: the pipeline takes {n_features} columns, the sample has {len(columns)} besides the target")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DataError(f"{path}: lacks the pipeline's columns: {', '.join(missing)}")
    return table, columns


def package(model, data=None, target=None, modules=(), class_names=None, name=None, out=HERE):
    """Describe the pipeline in `model` and write the bundle into `out`. Returns the metadata and
    the notes to print."""
    from sklearn.base import is_classifier, is_regressor

    pipeline = load_pipeline(model, modules)
    notes = []
    task = "classification" if is_classifier(pipeline) or hasattr(pipeline, "classes_") else "regression"
    if not (is_classifier(pipeline) or is_regressor(pipeline) or hasattr(pipeline, "classes_")):
        notes.append("the pipeline says neither classifier nor regressor: taken to be a regression")
    known, n_features = stated_columns(pipeline)
    categories = encoders(pipeline)
    if data is not None:
        table, columns = read_sample(data, known, target, n_features)
        types = [column_type(table[column]) for column in columns]
        rows = [list(row) for row in zip(*(python_values(table[column], kind) for column, kind in zip(columns, types)))]
        frame = table[columns]
    else:
        columns = known or [f"x{i}" for i in range(n_features or 0)]
        if not columns:
            raise DataError(f"{model}: the pipeline doesn't say how many columns it takes; give a sample with DATA=")
        types = [{str: "string", bool: "boolean", int: "integer"}.get(type(categories[c][0][0]), "number")
                 if c in categories else "number" for c in columns]
        rows = [[categories[c][0][0] if c in categories else 0.0 for c in columns]]
        frame = None
        notes.append("no sample: every column the pipeline doesn't one-hot encode is taken to be a number, the "
                     "example is made up, and there are no training ranges to warn about; give DATA=sample.csv to do better")
    fields = fields_of({"columns": columns, "types": types, "values": rows},
                       {column: values for column, (values, _) in categories.items()})
    kind = input_kind(pipeline, fields, rows, frame, data) if frame is not None else ("dataframe" if known else "array")
    probe = Probe(pipeline, fields, kind)
    failure = first_failure(data, len(rows), lambda i: probe.finite(*probe.answers([rows[i]])))
    if failure:
        raise failure
    example = next((row for row in rows if None not in row), rows[0])
    for j, field in enumerate(fields):
        field["nullable"] = probe.takes(example[:j] + [None] + example[j + 1:])
        if "categories" in field:
            unseen = NEVER_SEEN if field["type"] == "string" else max(field["categories"]) + 1 if field["type"] == "integer" else None
            if unseen is not None and not probe.takes(example[:j] + [unseen] + example[j + 1:]):
                field["unknown_categories"] = "error"
    labels, _ = probe.answers(rows)
    metrics = {}
    if data is not None and target:
        known_target = table[target].notna().to_numpy()
        truth, labels = table[target].to_numpy()[known_target], labels[known_target]
        if task == "classification":
            metrics["sample_accuracy"] = round(float(np.mean(labels == truth)), 4)
        else:
            residual = labels.astype(float) - truth.astype(float)
            metrics["sample_mae"] = round(float(np.mean(np.abs(residual))), 4)
            metrics["sample_r2"] = round(float(1 - np.sum(residual**2) / np.sum((truth - truth.mean()) ** 2)), 4)
    source = Path(data) if data else Path(model)
    steps = getattr(pipeline, "steps", [(type(pipeline).__name__.lower(), pipeline)])
    description = {
        "name": name or model_name(source if source.stem != "model" else source.parent.name or "model"),
        "task": task,
        "data": {"source": source.name, "rows": len(rows), "target": target or "the pipeline's own"},
        "fields": fields,
        "input": kind,
        "pipeline": [f"{step_name}: {type(step).__name__}" for step_name, step in steps],
        "metrics": metrics,
        "example": dict(zip([field["name"] for field in fields], example)),
        "modules": [Path(module).stem for module in modules],
    }
    if task == "classification":
        classes = as_list(pipeline.classes_)
        names = class_names or [str(c) for c in classes]
        if len(names) != len(classes):
            raise DataError(f"--class-names gives {len(names)} names for the {len(classes)} classes {classes}")
        description["classes"], description["class_names"] = classes, names
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for module in modules:
        if Path(module).resolve() != (out / Path(module).name).resolve():
            shutil.copy(module, out / Path(module).name)
        ignore = out / ".gcloudignore"
        if ignore.is_file() and f"!{Path(module).name}" not in ignore.read_text().split():
            ignore.write_text(ignore.read_text() + f"!{Path(module).name}\n")
    metadata = write_bundle(pipeline, description, out, rows)
    if metadata["served_as"] == "pipeline":
        pinned = "now pins them" if (out / "requirements.txt").is_file() else "must pin them"
        needs = "scikit-learn, scipy, joblib" + (" and pandas (it takes a DataFrame)" if kind == "dataframe" else "")
        notes.append(f"serving unpickles it, with {needs}: requirements.txt {pinned}")
    return metadata, notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the pickled pipeline (joblib.dump or pickle.dump)")
    parser.add_argument("--data", help="a CSV sample of the rows it takes (the training data will do)")
    parser.add_argument("--target", help="the sample's column the pipeline predicts, to report how well it does")
    parser.add_argument("--modules", default="", help="module files the pipeline's own classes live in, comma separated")
    parser.add_argument("--class-names", default="", help="names for the classes, in the pipeline's order, comma separated")
    parser.add_argument("--name", help="the model's name (default: from the file names)")
    parser.add_argument("--out", default=str(HERE), help="folder for model.pkl and model.json")
    args = parser.parse_args(argv)
    modules = [module for module in args.modules.split(",") if module]
    try:
        metadata, notes = package(args.model, args.data, args.target, modules,
                                  [n for n in args.class_names.split(",") if n] or None, args.name, args.out)
    except DataError as err:
        print(f"package.py: {err}", file=sys.stderr)
        print("package.py: nothing written; the existing model is unchanged", file=sys.stderr)
        return 1
    fields = ", ".join(f"{f['name']} ({f['type']}{', may be null' if f['nullable'] else ''})" for f in metadata["fields"])
    lines = [f"packaged {args.model}: {' + '.join(step.split(': ')[1] for step in metadata['pipeline'])}, "
             f"a {metadata['task']}", f"fields: {fields}"]
    if metadata["task"] == "classification":
        lines.append(f"classes: {', '.join(map(str, metadata['classes']))} ({', '.join(metadata['class_names'])})")
    lines += [f"on the sample: {', '.join(f'{k} {v}' for k, v in metadata['metrics'].items())}"] if metadata["metrics"] else []
    lines += [f"note: {note}" for note in notes]
    lines.append(served_as(metadata))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
