"""Package a pipeline made elsewhere (a notebook's `joblib.dump(pipe, f)`) as this bundle's model.

    python package.py notebook/model.pkl --data sample.csv [--target column]
        [--trust scikit-learn,...] [--modules my_steps.py,...] [--class-names a,b,c] [--name name] [--out folder]

It reads the pickle as data first (nothing in it runs), and unpickles it only if every object in it
is a checked record of a class read as data, or if you said you trust it (--trust: the libraries
whose code it may run; --modules: your own module files), and then first in a child process bounded
in time and memory (bundling/loading.py says why: loading a pickle can run any code). It reads what
the pipeline knows about itself (its columns, classes, fitted encoders' categories, the columns it
gives a text vectorizer, or whether it takes a column of text itself, as
make_pipeline(TfidfVectorizer(), ...) fitted on a Series does; classifier or regressor,
predict_proba or not), takes the fields' types, gaps and ranges from the sample, tries what the
pipeline accepts (a null, a category it never saw, an array instead of a DataFrame), checks that it
scores every row of the sample as the function will give them to it (and how well, when the sample
holds the target), and writes model.pkl and model.json just as train.py does. Without a sample it
does what it can from the pipeline alone and says what it had to assume. What can't be
served is refused here, with what to do about it.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from bundling.fields import DataError, column_type, fields_of, fitted_frame, model_name, python_values, stopped
from bundling.loading import load_pipeline
from bundling.probe import NEVER_SEEN, Probe, first_failure, input_kind
from bundling.table import check_numbers, existing_file, read_csv, separator_hint
from bundling.writer import served_as, write_bundle
from serving.bundle import as_list
from serving.safe_pickle import installed_library

HERE = Path(__file__).resolve().parent


def takes_documents(step):
    """Whether a step takes a column of text itself, as make_pipeline(TfidfVectorizer(), ...) fitted
    on a Series does: a text vectorizer, or a Pipeline or TransformedTargetRegressor starting with one."""
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.feature_extraction.text import CountVectorizer, HashingVectorizer
    from sklearn.pipeline import Pipeline

    if isinstance(step, (CountVectorizer, HashingVectorizer)):  # a TfidfVectorizer is a CountVectorizer
        return True
    if isinstance(step, Pipeline):
        return takes_documents(next((inner for _, inner in step.steps if not isinstance(inner, (str, type(None)))), None))
    if isinstance(step, TransformedTargetRegressor):
        return takes_documents(step.regressor_)
    return False


def columns_known(pipeline):
    """What the pipeline's steps say of its columns: {column: (categories, whether an unseen value is
    ignored)} from its fitted OneHotEncoders and OrdinalEncoders, and the columns it gives a text
    vectorizer (by name, or by position for a pipeline fitted on an array), wherever a
    ColumnTransformer hands them on."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    found, texts = {}, set()

    def walk(step, columns=None):
        if isinstance(step, Pipeline):
            for _, inner in step.steps:
                walk(inner, columns)
        elif isinstance(step, ColumnTransformer):
            for _, inner, selected in step.transformers_:
                if isinstance(selected, (str, int, np.integer)) and takes_documents(inner):
                    texts.add(selected if isinstance(selected, str) else int(selected))
                elif isinstance(selected, (list, tuple, np.ndarray)) and len(selected) and isinstance(selected[0], str):
                    walk(inner, list(selected))
        elif isinstance(step, (OneHotEncoder, OrdinalEncoder)) and columns and len(columns) == len(step.categories_):
            ignores = step.handle_unknown in ("ignore", "infrequent_if_exist", "use_encoded_value", "warn")
            for column, categories in zip(columns, step.categories_):
                found[column] = ([value for value in as_list(categories)
                                  if not (isinstance(value, float) and np.isnan(value))], ignores)

    walk(pipeline)
    return found, texts


def stated_columns(pipeline):
    """The columns the pipeline says it takes, and how many: its own feature_names_in_, or else
    those of the first of its steps that states them (a first step of one's own may not)."""
    for step in [pipeline] + [step for _, step in getattr(pipeline, "steps", [])]:
        if hasattr(step, "feature_names_in_"):
            return [str(c) for c in step.feature_names_in_], len(step.feature_names_in_)
        if getattr(step, "n_features_in_", None) is not None:
            return None, step.n_features_in_
    return None, None


def read_sample(path, columns, target, n_features, documents=False):
    """The sample's feature columns (the pipeline's, in its order), as pandas read them, and the
    target if asked. A pipeline that takes `documents` takes one column: the sample's only one besides the target."""
    table = read_csv(path)
    if str(table.columns[0]).startswith("Unnamed: 0"):
        table = table.drop(columns=[table.columns[0]])  # the index pandas writes with to_csv
    hint = separator_hint(table)
    if hint:
        raise DataError(f"{path}: {hint} A sample's columns are separated by commas (to_csv's default)")
    if target and target not in table.columns:
        raise DataError(f"{path}: no column {target!r}; the columns are: {', '.join(map(str, table.columns))}")
    if target and table[target].isna().all():
        raise DataError(f"{path}: the target {target!r} is empty on every line; without TARGET= it is packaged unscored")
    if columns is None:
        columns = [str(c) for c in table.columns if c != target]
        if documents and len(columns) != 1:
            raise DataError(f"{path}: the pipeline takes one column of text (it starts with a text vectorizer), the sample has "
                            f"{len(columns)} besides the target ({', '.join(columns)}): save only the text and the target")
        if n_features is not None and len(columns) != n_features:
            raise DataError(f"{path}: the pipeline takes {n_features} columns, the sample has {len(columns)} besides the target")
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise DataError(f"{path}: lacks the pipeline's columns: {', '.join(missing)}")
    check_numbers(path, table, columns + [target] if target else columns)
    return table, columns


def sample_metrics(path, task, target, labels):
    """How well the pipeline's `labels` answer the sample's `target` (a pandas column) on its rows
    that have one: accuracy, or mean absolute error and R², which divides by the target's spread,
    so only when it has one."""
    from pandas.api.types import is_numeric_dtype

    if task == "regression" and not is_numeric_dtype(target):
        raise DataError(f"{path}: the target {target.name!r} holds text, but the pipeline is a regression")
    known = target.notna().to_numpy()
    truth, labels = target.to_numpy()[known], labels[known]
    if task == "classification":
        return {"sample_accuracy": round(float(np.mean(labels == truth)), 4)}
    truth, residual = truth.astype(float), labels.astype(float) - truth.astype(float)
    metrics = {"sample_mae": round(float(np.mean(np.abs(residual))), 4)}
    spread = np.sum((truth - truth.mean()) ** 2)
    if spread > 0:
        metrics["sample_r2"] = round(float(1 - np.sum(residual**2) / spread), 4)
    return metrics


def as_classes(target, description):
    """The sample's target as a classifier's classes: a notebook that encoded its labels as 0..n-1
    (XGBoost's classifiers ask for that) keeps their names in its sample, and CLASS_NAMES says
    which class each is; a target of the classes themselves (or a regression's), as it is."""
    classes = description.get("classes", [])
    named = dict(zip(description.get("class_names", []), classes))
    if named == dict(zip(map(str, classes), classes)) or not target.dropna().isin(list(named)).all():
        return target
    return target.map(named)


def package(model, data=None, target=None, modules=(), class_names=None, name=None, out=HERE, trust=()):
    """Describe the pipeline in `model` and write the bundle into `out`, unpickled only as `trust`
    (the libraries whose code it may run) and `modules` allow. Returns the metadata and the notes to print."""
    from sklearn.base import is_classifier, is_regressor

    existing_file(model)  # before load_pipeline reads it: a path that names nothing, or a folder, in one line
    pipeline, own = load_pipeline(model, modules, trust)
    notes = []
    task = "classification" if is_classifier(pipeline) or hasattr(pipeline, "classes_") else "regression"
    if not (is_classifier(pipeline) or is_regressor(pipeline) or hasattr(pipeline, "classes_")):
        notes.append("the pipeline says neither classifier nor regressor: taken to be a regression")
    documents = takes_documents(pipeline)  # fitted on a Series of text: one text field, whatever its vocabulary's size
    known, n_features = (None, 1) if documents else stated_columns(pipeline)
    categories, texts = columns_known(pipeline)
    if data is not None:
        table, columns = read_sample(data, known, target, n_features, documents)
        texts = text_columns(columns, texts, documents)
        types = ["text" if column in texts else column_type(table[column], dates=column not in categories)  # an encoder's: categories
                 for column in columns]
        rows = [list(row) for row in zip(*(python_values(table[column], kind) for column, kind in zip(columns, types)))]
        frame = fitted_frame(table, columns, types)  # its dates as datetime64, as the notebook's DataFrame had them
    else:
        columns, types, rows = made_up_rows(model, known, n_features, categories, texts, documents)
        frame = None
        notes.append("no sample: every column the pipeline doesn't one-hot encode or read as text is taken to be a number, the "
                     "example is made up, and there are no training ranges to warn about; give DATA=sample.csv to do better")
    fields = fields_of({"columns": columns, "types": types, "values": rows},
                       {column: values for column, (values, _) in categories.items()})
    if documents:
        kind = "documents"
    else:
        kind = input_kind(pipeline, fields, rows, frame, data) if frame is not None else ("dataframe" if known else "array")
    probe = Probe(pipeline, fields, kind)
    probe.check_one_output(model, rows[:1])
    failure = first_failure(data, len(rows), lambda indices: probe.finite(*probe.answers([rows[i] for i in indices])))
    if failure:
        raise failure
    example = next((row for row in rows if None not in row), rows[0])
    try_gaps_and_unseen_values(probe, fields, example)
    source = Path(data) if data else Path(model)
    name = name or model_name(source if source.stem != "model" else source.parent.name or "model")
    sample = {"source": source.name, "rows": len(rows), "target": target or "the pipeline's own"}
    description = describe(pipeline, name, task, sample, fields, kind, example, modules)
    if task == "classification":
        classes = as_list(pipeline.classes_)
        names = class_names or [str(c) for c in classes]
        if len(names) != len(classes):
            raise DataError(f"--class-names gives {len(names)} names for the {len(classes)} classes {classes}")
        description["classes"], description["class_names"] = classes, names
    if data is not None and target:
        labels, _ = probe.answers(rows)
        description["metrics"] = sample_metrics(data, task, as_classes(table[target], description), labels)
    metadata = write(pipeline, description, Path(out), rows, trust, own)
    return metadata, notes + trust_notes(metadata, trust, Path(out))


# A made-up example's text, where there is no sample: what the published example holds in place of any text.
MADE_UP_TEXT = "any text"


def text_columns(columns, texts, documents):
    """The columns that are text fields: the only one of a pipeline that takes documents, else those
    the pipeline gives a text vectorizer (`texts`, by name or by position)."""
    if documents:
        return set(columns)
    return {columns[text] if isinstance(text, int) else text for text in texts
            if not isinstance(text, int) or 0 <= text < len(columns)}


def made_up_rows(model, known, n_features, categories, texts, documents):
    """Without a sample: the columns, their types and a row of one made-up example, from the
    pipeline alone (a text field "text" for a pipeline that takes documents)."""
    columns = ["text"] if documents else known or [f"x{i}" for i in range(n_features or 0)]
    if not columns:
        raise DataError(f"{model}: the pipeline doesn't say how many columns it takes; give a sample with DATA=")
    texts = text_columns(columns, texts, documents)
    types = ["text" if c in texts else {str: "string", bool: "boolean", int: "integer"}.get(type(categories[c][0][0]), "number")
             if c in categories else "number" for c in columns]
    row = [MADE_UP_TEXT if c in texts else categories[c][0][0] if c in categories else 0.0 for c in columns]
    return columns, types, [row]


def try_gaps_and_unseen_values(probe, fields, example):
    """Each field's `nullable` and `unknown_categories` as the pipeline takes them: whether it
    answers the example with a gap in the field, or with a value its categories never held."""
    for j, field in enumerate(fields):
        field["nullable"] = probe.takes(example[:j] + [None] + example[j + 1:])
        if "categories" in field:
            unseen = NEVER_SEEN if field["type"] == "string" else max(field["categories"]) + 1 if field["type"] == "integer" else None
            if unseen is not None and not probe.takes(example[:j] + [unseen] + example[j + 1:]):
                field["unknown_categories"] = "error"


def describe(pipeline, name, task, sample, fields, kind, example, modules):
    """What model.json says of the pipeline, its sample and its fields (write_bundle adds the rest)."""
    steps = getattr(pipeline, "steps", [(type(pipeline).__name__.lower(), pipeline)])
    return {
        "name": name,
        "task": task,
        "data": sample,
        "fields": fields,
        "input": kind,
        "pipeline": [f"{step_name}: {type(step).__name__}" for step_name, step in steps],
        "metrics": {},
        "example": dict(zip([field["name"] for field in fields], example)),
        "modules": [Path(module).stem for module in modules],
    }


def write(pipeline, description, out, rows, trust, own):
    """write_bundle, then what else the bundle's folder needs: its own modules let through .gcloudignore."""
    metadata = write_bundle(pipeline, description, out, rows, trust, list(own.values()))
    ignore = out / ".gcloudignore"
    for module in own:
        if ignore.is_file() and f"!{module}.py" not in ignore.read_text().split():
            ignore.write_text(ignore.read_text() + f"!{module}.py\n")
    return metadata


def trust_notes(metadata, trust, out):
    """Which libraries TRUST= named that it didn't need, and what serving it needs installed."""
    notes = []
    unused = [library for library in trust if installed_library(library) not in metadata["trust"]]
    if unused:
        notes.append(f"TRUST={','.join(unused)} not needed: " + ("every object in it is read as data, and no code from it "
                     "runs" if metadata["served_as"] == "data" else "it names nothing of theirs"))
    if metadata["served_as"] == "pipeline":
        pinned = "now pins them" if (out / "requirements.txt").is_file() else "must pin them"
        libraries = ["scikit-learn", "scipy", "joblib"] + [library for library in metadata["trust"] if library != "scikit-learn"]
        needs = ", ".join(libraries) + (" and pandas (it takes a DataFrame)" if metadata["input"] == "dataframe" else "")
        notes.append(f"serving unpickles it, with {needs}: requirements.txt {pinned}")
    return notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="the pickled pipeline (joblib.dump or pickle.dump)")
    parser.add_argument("--data", help="a CSV sample of the rows it takes (the training data will do)")
    parser.add_argument("--target", help="the sample's column the pipeline predicts, to report how well it does")
    parser.add_argument("--trust", default="", help="libraries whose code the pickle may run as it loads and answers, "
                        "comma separated (scikit-learn, xgboost): loading a pickle can run any code, so only for a file you made")
    parser.add_argument("--modules", default="", help="module files the pipeline's own classes live in, comma separated")
    parser.add_argument("--class-names", default="", help="names for the classes, in the pipeline's order, comma separated")
    parser.add_argument("--name", help="the model's name (default: from the file names)")
    parser.add_argument("--out", default=str(HERE), help="folder for model.pkl and model.json")
    args = parser.parse_args(argv)
    modules = [module for module in args.modules.split(",") if module]
    try:
        metadata, notes = package(args.model, args.data, args.target, modules,
                                  [n for n in args.class_names.split(",") if n] or None, args.name, args.out,
                                  [library.strip() for library in args.trust.split(",") if library.strip()])
    except Exception as err:  # whatever stops it, the user reads one line, not a traceback
        print(stopped("package.py", err), file=sys.stderr)
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
