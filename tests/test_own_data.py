"""train.py on real tables nobody here wrote, and a function that follows whatever model it made.

Each table is trained with `make train`, served as `make serve` serves, and called in every
format; every answer is compared with the served pickle's own predict and predict_proba on the
same rows, built here from the CSV with pandas, not with the function's code.
"""

import json
import os
import re
import shutil
import subprocess

import joblib
import numpy as np
import palmerpenguins
import pytest
import requests
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine

from bundling import fields as bundle_fields

from conftest import ROOT, Server, as_requests, close, columns, copy_function_code, field_names, is_compact_json, run_train


@pytest.fixture(scope="module")
def committed_model():
    """The iris model in the repo, as it was before these tests: they must leave it alone."""
    before = {name: (ROOT / name).read_bytes() for name in ("model.pkl", "model.json")}
    yield
    assert {name: (ROOT / name).read_bytes() for name in before} == before


def penguins():
    return palmerpenguins.load_penguins()


def with_target(loaded, target, labels=None):
    table = loaded.data.copy()
    table[target] = loaded.target if labels is None else labels
    return table


TABLES = {
    # name: (the table, its target, what to_csv is given)
    "penguins": (penguins, "species", {"index": False}),
    "penguins_mass": (penguins, "body_mass_g", {"index": False}),
    "diabetes": (lambda: with_target(load_diabetes(as_frame=True), "progression"), "progression", {"index": False}),
    "breast_cancer": (lambda: with_target(load_breast_cancer(as_frame=True), "diagnosis",
                                          [("malignant", "benign")[i] for i in load_breast_cancer().target]),
                      "diagnosis", {"index": False}),
    "wine": (lambda: with_target(load_wine(as_frame=True), "cultivar", load_wine().target + 1), "cultivar", {"index": False}),
    "wine_indexed": (lambda: with_target(load_wine(as_frame=True), "cultivar", load_wine().target + 1), "cultivar", {}),
}


@pytest.fixture(scope="module", params=list(TABLES))
def trained(request, tmp_path_factory, committed_model):
    """A table written to CSV, trained with `make train`, and served: (name, table, metadata,
    the served pickle, the server, what train printed)."""
    name = request.param
    make_table, target, csv_options = TABLES[name]
    folder = tmp_path_factory.mktemp(name)
    table = make_table()
    table.to_csv(folder / f"{name}.csv", **csv_options)
    result = subprocess.run(["make", "--no-print-directory", "train", f"DATA={folder / name}.csv", f"TARGET={target}",
                             f"OUT={folder}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    copy_function_code(ROOT, folder)
    metadata = json.loads((folder / "model.json").read_text())
    with Server(folder / "main.py").wait_ready() as server:
        yield name, table.dropna(subset=[target]), metadata, joblib.load(folder / "model.pkl"), server, result.stdout


def as_pipeline_takes_it(table, metadata):
    """The table's feature columns as the pipeline was fitted on them: a float array for numbers
    alone, else an object array with NaN in the gaps."""
    features = table[columns(metadata)]
    if all(field["type"] in ("number", "integer") for field in metadata["fields"]):
        return features.to_numpy(dtype=float)
    features = features.astype(object)
    return features.where(features.notna(), np.nan).to_numpy()


def expected_answers(pipeline, X, metadata):
    if metadata["task"] == "regression":
        return [{"predicted_value": value} for value in pipeline.predict(X).tolist()]
    names = dict(zip(metadata["classes"], metadata["class_names"]))
    answers = [{"predicted_class": label, "class_name": names[label]} for label in pipeline.predict(X).tolist()]
    for answer, probabilities in zip(answers, pipeline.predict_proba(X).tolist()):
        answer["probabilities"] = dict(zip(metadata["class_names"], probabilities))
    return answers


def without_warnings(answers):
    return [{key: value for key, value in answer.items() if key != "warnings"} for answer in answers]


def test_every_format_answers_what_the_served_pipeline_answers(trained):
    name, table, metadata, pipeline, server, _ = trained
    expected = expected_answers(pipeline, as_pipeline_takes_it(table, metadata), metadata)
    rows = as_requests(table, metadata)
    batch = requests.post(server.url, json={"instances": rows})
    assert batch.status_code == 200 and is_compact_json(batch.text)
    assert close(without_warnings(batch.json()["predictions"]), expected)
    # Rows as arrays in field order, and rows keyed by the training columns, give the same.
    as_lists = requests.post(server.url, json={"instances": [list(row.values()) for row in rows]}).json()
    assert as_lists == batch.json()
    by_column = requests.post(server.url, json={"instances": as_requests(table, metadata, by="column")}).json()
    assert by_column == batch.json()
    for i in (0, len(rows) // 2, len(rows) - 1):
        single = requests.post(server.url, json=rows[i])
        assert single.status_code == 200
        assert close(without_warnings([single.json()]), [expected[i]])
    replies = requests.post(server.url, json={"calls": [list(row.values()) for row in rows]}).json()["replies"]
    key = "predicted_value" if metadata["task"] == "regression" else "class_name"
    assert replies == [answer[key] for answer in batch.json()["predictions"]]


def test_bad_input_is_a_400_naming_the_field(trained):
    name, table, metadata, pipeline, server, _ = trained
    row = as_requests(table, metadata)[0]
    fields = metadata["fields"]
    first = fields[0]
    cases = [
        ({**row, "colour": "blue"}, "colour", "unknown field 'colour'"),
        ({**row, first["name"]: 3 if first["type"] == "string" else "3"}, first["name"], f"{first['name']} must be"),
        ({key: value for key, value in row.items() if key != first["name"]}, first["name"], f"{first['name']} is missing"),
    ]
    for body, field, error in cases:
        response = requests.post(server.url, json=body)
        assert response.status_code == 400 and response.json()["field"] == field
        assert response.json()["error"].startswith(error)
    null = requests.post(server.url, json={**row, first["name"]: None})
    if first["nullable"]:
        assert null.status_code == 200  # the pipeline fills the gap
    else:
        assert (null.status_code, null.json()) == (400, {"error": f"{first['name']} must be a number, not null",
                                                         "field": first["name"]})


def test_what_training_never_saw_is_answered_and_flagged(trained):
    name, table, metadata, pipeline, server, _ = trained
    row = as_requests(table, metadata)[0]
    number = next(field for field in metadata["fields"] if "range" in field)
    beyond = number["range"][1] * 10 + 1
    answer = requests.post(server.url, json={**row, number["name"]: beyond}).json()
    assert answer["warnings"] == [f"{number['name']} {beyond!r} is above the training range "
                                  f"{number['range'][0]!r} to {number['range'][1]!r}"]
    categorical = next((field for field in metadata["fields"] if field["type"] == "string"), None)
    if categorical is not None:
        answer = requests.post(server.url, json={**row, categorical["name"]: "Atlantis"}).json()
        assert answer["warnings"] == [f"{categorical['name']} 'Atlantis' is not a value seen in training "
                                      f"({', '.join(categorical['categories'])})"]
        assert "predicted_class" in answer or "predicted_value" in answer


def test_what_train_py_made_of_each_table(trained):
    name, table, metadata, pipeline, server, printed = trained
    if name.startswith("penguins"):
        types = {field["name"]: field["type"] for field in metadata["fields"]}
        assert types["island"] == "string" and types["sex"] == "string" and types["bill_length_mm"] == "number"
        assert next(f for f in metadata["fields"] if f["name"] == "year")["categories"] == [2007, 2008, 2009]
        assert all(field["nullable"] for field in metadata["fields"])
    if name == "penguins":
        assert metadata["classes"] == ["Adelie", "Chinstrap", "Gentoo"] and metadata["task"] == "classification"
    assert "dropped column" not in printed  # none of these tables has a column of IDs or names
    # Every pipeline train.py makes is read as data and scored with numpy, proven against scikit-learn.
    assert metadata["served_as"] == "data" and "served as data, without scikit-learn" in printed
    if name in ("penguins_mass", "diabetes"):
        assert metadata["task"] == "regression" and "classes" not in metadata
        assert "task: regression" in printed and "always guessing the mean" in printed
        assert metadata["metrics"]["cv_r2"] > metadata["metrics"]["baseline_cv_r2"] + 0.3
    if name.startswith("wine"):
        assert metadata["classes"] == [1, 2, 3] and metadata["class_names"] == ["1", "2", "3"]
        assert requests.post(server.url, json=metadata["example"]).json()["predicted_class"] == 1
    if name == "wine_indexed":
        assert "unnamed_0" not in field_names(metadata)
        assert "the index pandas writes with to_csv: dropped" in printed
    if name == "breast_cancer":
        assert metadata["classes"] == ["benign", "malignant"] and len(metadata["fields"]) == 30
    if metadata["task"] == "classification":
        assert "most frequent class" in printed
        assert metadata["metrics"]["cv_accuracy"] > metadata["metrics"]["baseline_cv_accuracy"] + 0.3


def test_the_description_the_document_and_the_page_follow_the_model(trained):
    name, table, metadata, pipeline, server, _ = trained
    description = requests.get(server.url).json()
    assert description["model"]["fields"] == metadata["fields"]
    assert requests.post(server.url, json=description["requests"]["single"]).status_code == 200
    assert requests.post(server.url, json=description["requests"]["bigquery"]).status_code == 200
    schemas = requests.get(server.url + "openapi.json").json()["components"]["schemas"]
    assert list(schemas["Row"]["properties"]) == field_names(metadata)
    page = requests.get(server.url, headers={"Accept": "text/html"})
    assert page.status_code == 200 and "<form" in page.text


def test_a_sorted_table_is_scored_on_shuffled_folds(tmp_path, committed_model):
    iris = load_iris(as_frame=True)
    table = iris.data.copy()
    table["species"] = [iris.target_names[i] for i in iris.target]  # sorted by class, as iris is
    table.to_csv(tmp_path / "iris.csv", index=False)
    assert run_train("--data", tmp_path / "iris.csv", "--target", "species", "--out", tmp_path).returncode == 0
    metrics = json.loads((tmp_path / "model.json").read_text())["metrics"]
    assert metrics["cv_accuracy"] > 0.9 and metrics["baseline_cv_accuracy"] == pytest.approx(1 / 3, abs=0.01)


def test_field_names_keep_letters_of_any_alphabet():
    assert bundle_fields.field_name("Schnabellänge (mm)") == "schnabellänge"
    assert bundle_fields.field_name("年") == "年"
    assert bundle_fields.field_name("Flipper-Länge_mm") == "flipper_länge_mm"


def test_class_names_that_need_escaping_in_json(tmp_path, committed_model):
    iris = load_iris(as_frame=True)
    table = iris.data.copy()
    names = ['say "setosa"', "100% versicolor", "virginica \\ blüte ✿"]
    table["label"] = [names[i] for i in iris.target]
    table.to_csv(tmp_path / "iris.csv", index=False)
    folder = tmp_path / "bundle"
    assert run_train("--data", tmp_path / "iris.csv", "--target", "label", "--out", folder).returncode == 0
    copy_function_code(ROOT, folder)
    rows = iris.data.to_numpy()[[0, 60, 120]].tolist()
    with Server(folder / "main.py").wait_ready() as server:
        answers = [
            requests.post(server.url, json=dict(zip(("sepal_length", "sepal_width", "petal_length", "petal_width"), rows[0]))),
            requests.post(server.url, json={"instances": rows}),
            requests.post(server.url, json={"calls": rows, "userDefinedContext": {"return": "json"}}),
            requests.post(server.url, json={"calls": rows}),
        ]
    for answer in answers:
        assert answer.status_code == 200
        assert is_compact_json(answer.text)
    assert answers[0].json()["predicted_class"] == answers[0].json()["class_name"] == names[0]
    assert [p["class_name"] for p in answers[1].json()["predictions"]] == names
    assert list(answers[1].json()["predictions"][0]["probabilities"]) == sorted(names)
    assert answers[3].json() == {"replies": names}


@pytest.fixture
def out_dir(tmp_path):
    """An output folder already holding a model, which a failed run must leave untouched."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("model.pkl", "model.json"):
        shutil.copy(ROOT / name, out / name)
    return out


def write_csv(tmp_path, text):
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def rows(n_per_class, classes=("a", "b")):
    return "".join(f"{i}.5,{i % 7},{label}\n" for label in classes for i in range(n_per_class))


@pytest.mark.parametrize("text, target, extra, message", [
    (None, "y", [], "file not found"),
    ("x1,x2,label\n" + rows(6), "species", [], "no column 'species'; the columns are: x1, x2, label"),
    ("x1;x2;label\n" + rows(6).replace(",", ";"), "label", [], "is it separated by something else than ','? (--sep)"),
    ("x1,x2,label\n" + rows(6, classes=("a",)), "label", [], "has a single class"),
    ("x1,x2,label\n" + rows(6) + "1.0,2.0,c\n", "label", [],
     "classes with fewer than 5 rows (needed for 5-fold cross-validation): c"),
    ("a b,A-B,label\n" + rows(6), "label", [], "columns 'a b' and 'A-B' both become field 'a_b'"),
    ("x1,x2,label\n" + rows(6), "label", ["--drop", "x9"], "--drop names columns it doesn't have: x9"),
    ("x1,x2,label\n" + rows(6) + "inf,1,a\n", "label", [], "column 'x1' holds an infinite value"),
    ("x1,x2,label\n" + rows(6), "label", ["--task", "regression"], "the target 'label' holds text, so it can't be a regression"),
])
def test_bad_data_stops_with_a_clear_message_and_keeps_the_model(tmp_path, out_dir, text, target, extra, message):
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    data = tmp_path / "absent.csv" if text is None else write_csv(tmp_path, text)
    result = run_train("--data", data, "--target", target, "--out", out_dir, *extra)
    assert result.returncode == 1
    assert message in result.stderr
    assert "the existing model is unchanged" in result.stderr
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


def test_gaps_and_text_are_trained_on_not_refused(tmp_path, committed_model):
    text = "x1,colour,label\n" + "".join(f"{'' if i % 5 == 0 else i},{'red' if i % 2 else 'blue'},{'ab'[i % 2]}\n" for i in range(30))
    result = run_train("--data", write_csv(tmp_path, text), "--target", "label", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    fields = json.loads((tmp_path / "model.json").read_text())["fields"]
    assert [(f["name"], f["type"], f["nullable"]) for f in fields] == [("x1", "number", True), ("colour", "string", True)]


# Files that are no table, or no table to train on: whatever is wrong, train.py says it in one line
# on stderr, never a traceback, and the model in --out stays as it was.

PNG_START = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01"
REFUSED = " (nothing written; the existing model is unchanged)\n"


def penguins_csv(table=None, **to_csv):
    return (penguins() if table is None else table).to_csv(index=False, **to_csv).encode()


def penguins_with(column, line, value):
    """The penguins CSV with `value` in `column` on line `line` of the file (the header is line 1)."""
    table = penguins()
    table.loc[line - 2, column] = value
    return penguins_csv(table)


BROKEN_TABLES = {
    # name: (the file's bytes, the target, the line train.py stops with, {path} standing for the file's)
    "empty": (lambda: b"", "species", "{path}: the file is empty"),
    "blank lines": (lambda: b"\n\n\n", "species", "{path}: holds no header and no rows"),
    "an image": (lambda: PNG_START, "species", "{path}: not a text file: byte 0x89 on line 1 isn't UTF-8 (save it as CSV UTF-8)"),
    "Latin-1 text": (lambda: penguins_csv().replace(b"Torgersen", "Torgersen Ø".encode("latin-1")), "species",
                     "{path}: not a text file: byte 0xd8 on line 2 isn't UTF-8 (save it as CSV UTF-8)"),
    "NUL bytes": (lambda: penguins_csv().replace(b"Dream", b"Dr\x00eam"), "species",
                  "{path}: not a text file: it holds a NUL byte on line 32"),
    "a header alone": (lambda: penguins_csv().split(b"\n")[0] + b"\n", "species", "{path}: has a header but no rows"),
    "a line longer than the header": (lambda: penguins_csv().replace(b"\n", b",1\n", 2).replace(b",1\n", b"\n", 1), "species",
                                      "{path}: a line has more values than the header has names"),
    "a column named twice": (lambda: penguins_csv().replace(b"bill_depth_mm", b"bill_length_mm", 1), "species",
                             "{path}: columns 3 and 4 are both named 'bill_length_mm'; rename one"),
    "semicolons": (lambda: penguins_csv(sep=";"), "species",
                   "{path}: no column 'species'; the columns are: species;island;bill_length_mm;bill_depth_mm;flipper_length_mm;"
                   "body_mass_g;sex;year; is it separated by something else than ','? (--sep)"),
    "1e200 in a feature": (lambda: penguins_with("bill_length_mm", 9, 1e200), "species",
                           "{path}: column 'bill_length_mm' holds 1e+200 on line 9, beyond 1e+100, the largest magnitude "
                           "the function takes; correct or remove that line"),
    "1e200 in the target": (lambda: penguins_with("body_mass_g", 9, -1e200), "body_mass_g",
                            "{path}: column 'body_mass_g' holds -1e+200 on line 9, beyond 1e+100, the largest magnitude "
                            "the function takes; correct or remove that line"),
    "whole numbers beyond 64 bits": (lambda: penguins_csv().replace(b",2007\n", b",123456789012345678901234567890\n"), "species",
                                     "column 'year' holds whole numbers too large for 64 bits; written with a decimal point "
                                     "(1234.0) they are read as numbers"),
    "a target of one value": (lambda: penguins_csv(penguins().assign(species="Adelie")), "species",
                              "the target 'species' has a single class; nothing to predict"),
    "a target without values": (lambda: penguins_csv(penguins().assign(species=None)), "species",
                                "{path}: the target 'species' is empty on every line"),
    "the target alone": (lambda: penguins_csv(penguins()[["species"]]), "species",
                         "{path}: no feature columns besides the target 'species'"),
}


def stops_in_one_line(result, line):
    """That the tool failed saying `line`, that it wrote nothing, and nothing else."""
    assert (result.returncode, result.stderr) == (1, line + REFUSED), result.stderr
    assert "Traceback" not in result.stdout


@pytest.mark.parametrize("name", list(BROKEN_TABLES))
def test_a_file_train_cannot_use_stops_it_in_one_line(tmp_path, out_dir, name):
    content, target, line = BROKEN_TABLES[name]
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    data = tmp_path / "table.csv"
    data.write_bytes(content())
    stops_in_one_line(run_train("--data", data, "--target", target, "--out", out_dir), "train.py: " + line.format(path=data))
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before


def test_random_bytes_a_folder_or_no_file_stop_train_in_one_line(tmp_path, out_dir):
    before = {path.name: path.read_bytes() for path in out_dir.iterdir()}
    noise = tmp_path / "noise.csv"
    noise.write_bytes(os.urandom(4096))
    result = run_train("--data", noise, "--target", "species", "--out", out_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert re.fullmatch(rf"train\.py: {re.escape(str(noise))}: not a text file: (byte 0x[0-9a-f]{{2}} on line \d+ isn't UTF-8 "
                        rf"\(save it as CSV UTF-8\)|it holds a NUL byte on line \d+){re.escape(REFUSED)}", result.stderr)
    folder = run_train("--data", tmp_path, "--target", "species", "--out", out_dir)
    stops_in_one_line(folder, f"train.py: {tmp_path}: is a folder, not a file")
    absent = run_train("--data", tmp_path / "absent.csv", "--target", "species", "--out", tmp_path / "new")
    stops_in_one_line(absent, f"train.py: {tmp_path / 'absent.csv'}: file not found")
    assert {path.name: path.read_bytes() for path in out_dir.iterdir()} == before and not (tmp_path / "new").exists()


def test_a_bom_and_windows_line_endings_train_as_the_plain_file(tmp_path, committed_model):
    """Excel's "CSV UTF-8" starts with a byte order mark and ends its lines with CR LF: read as the
    same table, not as a first column named "\\ufeffspecies" and values ending in "\\r"."""
    (tmp_path / "plain.csv").write_bytes(penguins_csv())
    (tmp_path / "excel.csv").write_bytes("\ufeff".encode() + penguins_csv(lineterminator="\r\n"))
    made = {}
    for name in ("plain", "excel"):
        result = run_train("--data", tmp_path / f"{name}.csv", "--target", "species", "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        made[name] = json.loads((tmp_path / name / "model.json").read_text())
    assert made["excel"]["fields"] == made["plain"]["fields"] and made["excel"]["example"] == made["plain"]["example"]
    assert made["excel"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"] == made["plain"]["classes"]
