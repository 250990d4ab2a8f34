"""The formats clients already send, with the clients themselves where there is one: Triton's
HTTP client for the Open Inference Protocol, pandas DataFrames in each orient MLflow's scoring
server reads, and a body as Vertex AI sends it. Every answer is the pipeline's own."""

import json

import numpy as np
import palmerpenguins
import pytest
import requests
import tritonclient.http as triton
from sklearn.datasets import load_diabetes, load_iris
from tritonclient.utils import InferenceServerException

from conftest import ROOT, TUTORIAL_ROW, Server, columns, copy_function_code, field_names, run_train

IRIS = load_iris(as_frame=True).data.rename(columns=dict(zip(load_iris().feature_names, TUTORIAL_ROW)))


@pytest.fixture(scope="module")
def penguins(tmp_path_factory):
    """train.py's penguins model, served: text, integers and gaps in every format."""
    folder = tmp_path_factory.mktemp("penguins")
    table = palmerpenguins.load_penguins()
    table.to_csv(folder / "penguins.csv", index=False)
    assert run_train("--data", folder / "penguins.csv", "--target", "species", "--out", folder).returncode == 0
    copy_function_code(ROOT, folder)
    import joblib

    metadata = json.loads((folder / "model.json").read_text())
    with Server(folder / "main.py").wait_ready() as server:
        yield server, metadata, joblib.load(folder / "model.pkl"), table.dropna(subset=["species"])


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diabetes")
    loaded = load_diabetes(as_frame=True)
    loaded.data.assign(progression=loaded.target).to_csv(folder / "diabetes.csv", index=False)
    assert run_train("--data", folder / "diabetes.csv", "--target", "progression", "--out", folder).returncode == 0
    copy_function_code(ROOT, folder)
    import joblib

    with Server(folder / "main.py").wait_ready() as server:
        yield server, joblib.load(folder / "model.pkl"), loaded.data


def pipeline_input(table, metadata):
    features = table[columns(metadata)].astype(object)
    return features.where(features.notna(), np.nan).to_numpy()


def test_a_vertex_ai_body_with_its_parameters(server, pipeline):
    """Vertex AI sends a custom container {"instances": [...], "parameters": {...}}, the parameters
    of its prediction request, and reads {"predictions": [...]}."""
    rows = IRIS.iloc[::25]
    body = {"instances": rows.to_dict("records"), "parameters": {"confidence_threshold": 0.5, "max_predictions": 3}}
    predictions = requests.post(server.url, json=body).json()["predictions"]
    assert [p["predicted_class"] for p in predictions] == pipeline.predict(rows.to_numpy()).tolist()
    assert np.allclose([list(p["probabilities"].values()) for p in predictions], pipeline.predict_proba(rows.to_numpy()))
    bad = requests.post(server.url, json={**body, "parameters": "fast"})
    assert (bad.status_code, bad.json()) == (400, {"error": "parameters must be an object, not a string", "field": "parameters"})


def mlflow_bodies(frame):
    """A DataFrame as MLflow's clients send it, in each of its formats."""
    return {
        "dataframe_split": {"dataframe_split": frame.to_dict(orient="split")},
        "dataframe_split without index": {"dataframe_split": frame.to_dict(orient="split", index=False)},
        "dataframe_records": {"dataframe_records": frame.to_dict(orient="records")},
        "instances": {"instances": frame.to_dict(orient="records")},
        "inputs as records": {"inputs": frame.to_dict(orient="records")},
        "inputs as columns": {"inputs": frame.to_dict(orient="list")},
    }


@pytest.mark.parametrize("route", ["invocations", ""])
def test_mlflow_formats_from_a_pandas_dataframe(server, pipeline, route):
    frame = load_iris(as_frame=True).data.iloc[::10]  # the training columns' own names
    expected = pipeline.predict(frame.to_numpy()).tolist()
    for name, body in mlflow_bodies(frame).items():
        if route == "" and name == "instances":
            continue  # at the root, instances is Vertex AI's and KServe's: answered in full (above)
        response = requests.post(server.url + route, json=body)
        assert (response.status_code, response.json()) == (200, {"predictions": expected}), name
    snake_case = requests.post(server.url + route, json={"dataframe_records": IRIS.iloc[::10].to_dict("records")})
    assert snake_case.json() == {"predictions": expected}


def test_mlflow_formats_for_text_gaps_and_a_regression(penguins, diabetes):
    server, metadata, pipeline, table = penguins
    frame = table[columns(metadata)].iloc[:40]  # holds gaps: NaN, sent as null
    body = {"dataframe_split": json.loads(frame.to_json(orient="split"))}
    expected = pipeline.predict(pipeline_input(frame, metadata)).tolist()
    assert requests.post(server.url + "invocations", json=body).json() == {"predictions": expected}
    server, regressor, data = diabetes
    records = {"dataframe_records": data.iloc[:20].to_dict("records")}
    predictions = requests.post(server.url + "invocations", json=records).json()["predictions"]
    assert np.allclose(predictions, regressor.predict(data.iloc[:20].to_numpy()), rtol=1e-12)


@pytest.mark.parametrize("body, message", [
    ({"dataframe_split": {"columns": list(TUTORIAL_ROW), "data": [[5.1, 3.5, "wide", 0.2]]}},
     "dataframe_split.data[0].petal_length: petal_length must be a number, not a string"),
    ({"dataframe_records": [{"sepal_length": 5.1}]}, "dataframe_records[0].sepal_width: sepal_width is missing"),
    ({"inputs": []}, "inputs holds no rows"),  # its path said once
    ({"dataframe_split": [], "inputs": []}, "the body must hold one of dataframe_split, dataframe_records, instances, inputs"),
    ({"sepal_length": 5.1}, "the body must hold one of dataframe_split, dataframe_records, instances, inputs"),
    ({"dataframe_split": {"columns": ["a"], "data": [[1, 2, 3, 4]]}},
     "dataframe_split.columns: unknown column 'a'; the columns must be the fields sepal_length, sepal_width, petal_length, "
     "petal_width, in any order"),
    ({"dataframe_split": {"columns": ["petal_width", "sepal_length", "sepal_width"], "data": [[0.2, 5.1, 3.5]]}},
     "dataframe_split.columns lack the fields petal_length"),
    ({"dataframe_split": {"columns": [*TUTORIAL_ROW, "sepal length (cm)"], "data": [[5.1, 3.5, 1.4, 0.2, 5.1]]}},
     "dataframe_split.columns name the field sepal_length twice"),
    ({"dataframe_split": {"columns": list(TUTORIAL_ROW), "data": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4]]}},
     "dataframe_split.data[1]: a row must be an array of 4 values, one per column, not 3 values"),
    ({"dataframe_split": {"columns": list(TUTORIAL_ROW), "data": [TUTORIAL_ROW]}},
     "dataframe_split.data[0]: a row must be an array of 4 values, one per column, not an object"),
])
def test_mlflow_errors_are_mlflow_s_and_name_the_field(server, body, message):
    response = requests.post(server.url + "invocations", json=body)
    assert (response.status_code, response.json()) == (400, {"error_code": "BAD_REQUEST", "message": message})


def test_dataframe_split_columns_come_in_any_order_by_field_or_training_column(server, pipeline):
    frame = load_iris(as_frame=True).data.iloc[::30]
    shuffled = frame[["petal width (cm)", "sepal length (cm)", "petal length (cm)", "sepal width (cm)"]]
    split = shuffled.rename(columns={"petal width (cm)": "petal_width"}).to_dict(orient="split", index=False)
    response = requests.post(server.url + "invocations", json={"dataframe_split": split})
    assert response.json() == {"predictions": pipeline.predict(frame.to_numpy()).tolist()}


@pytest.mark.parametrize("body, keys", [
    ({"calls": [[5.1, 3.5, 1.4, 0.2]], "instances": [[5.1, 3.5, 1.4, 0.2]]}, "calls (BigQuery) and instances (Vertex AI, KServe)"),
    ({"instances": [TUTORIAL_ROW], "dataframe_records": [TUTORIAL_ROW]}, "instances (Vertex AI, KServe) and dataframe_records (MLflow)"),
    ({"inputs": [TUTORIAL_ROW], "userDefinedContext": {"return": "json"}}, "inputs (MLflow) and userDefinedContext (BigQuery)"),
    ({"calls": [[5.1, 3.5, 1.4, 0.2]], "parameters": {}}, "calls (BigQuery) and parameters (Vertex AI, KServe)"),
    ({**TUTORIAL_ROW, "calls": [[5.1, 3.5, 1.4, 0.2]]}, "calls (BigQuery) and sepal_length (a row of fields)"),
])
def test_a_body_mixing_two_formats_is_a_400_naming_their_keys(server, body, keys):
    response = requests.post(server.url, json=body)
    assert (response.status_code, response.json()) == (
        400, {"error": f"the body mixes two formats: {keys}; send one of them", "field": None})


def test_a_body_in_no_format_at_all_is_told_the_formats(server):
    response = requests.post(server.url, json={"rows": [[5.1, 3.5, 1.4, 0.2]]})
    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is none of the formats this function reads: a row, an object "
                                               "of the fields; {\"instances\": [...]} (Vertex AI, KServe)")
    # A body with some field is a row, told what is wrong with it
    assert requests.post(server.url, json={"sepal_length": 5.1}).json()["error"] == "sepal_width is missing"


@pytest.fixture
def client(server):
    return triton.InferenceServerClient(url=server.url.removeprefix("http://").rstrip("/"))


def test_triton_health_and_metadata(client, metadata):
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("iris")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    described = client.get_model_metadata("iris")
    assert described["name"] == "iris" and described["versions"] == [metadata["model_sha256"][:12]]
    assert described["inputs"] == [{"name": name, "datatype": "FP64", "shape": [-1]} for name in field_names(metadata)]
    assert described["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]}]
    assert not client.is_model_ready("wine")
    with pytest.raises(InferenceServerException, match="no model named 'wine'; this function serves iris"):
        client.get_model_metadata("wine")


@pytest.mark.parametrize("binary", [True, False], ids=["binary tensors", "JSON tensors"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_triton_infer_with_one_tensor_of_rows(client, pipeline, binary, datatype):
    X = IRIS.to_numpy()[::7]
    tensor = triton.InferInput("input-0", list(X.shape), datatype)
    tensor.set_data_from_numpy(X.astype(np.float64 if datatype == "FP64" else np.float32), binary_data=binary)
    result = client.infer("iris", [tensor])
    sent = X.astype(np.float32).astype(np.float64) if datatype == "FP32" else X  # what the function was given
    assert result.as_numpy("predict").tolist() == pipeline.predict(sent).tolist()
    assert np.allclose(result.as_numpy("predict_proba"), pipeline.predict_proba(sent), rtol=0, atol=1e-12)


def test_triton_infer_with_a_tensor_per_field_and_text(penguins):
    server, metadata, pipeline, table = penguins
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://").rstrip("/"))
    rows = table[columns(metadata)].dropna().iloc[::9]
    tensors = []
    for field in metadata["fields"]:
        values = rows[field["column"]].to_numpy()
        if field["type"] == "string":
            tensor, data = triton.InferInput(field["name"], [len(rows)], "BYTES"), values.astype(object)
        else:
            kind = {"integer": ("INT64", np.int64), "number": ("FP64", np.float64)}[field["type"]]
            tensor, data = triton.InferInput(field["name"], [len(rows)], kind[0]), values.astype(kind[1])
        tensor.set_data_from_numpy(data, binary_data=field["type"] != "number")  # both encodings at once
        tensors.append(tensor)
    result = client.infer("penguins", tensors, outputs=[triton.InferRequestedOutput("predict", binary_data=False)])
    assert result.as_numpy("predict").tolist() == pipeline.predict(pipeline_input(rows, metadata)).tolist()
    assert result.as_numpy("predict_proba") is None  # not asked for


@pytest.mark.parametrize("body, message", [
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4]}]},
     "inputs[0] holds 3 elements, but its shape [1, 4] makes 4"),
    ({"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}]},
     "inputs lack the fields sepal_width, petal_length, petal_width"),
    ({"inputs": [{"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]}]},
     "inputs[0]: no field is named 'colour'; the fields are sepal_length, sepal_width, petal_length, petal_width, "
     "or one [rows, 4] tensor"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, "1.4", 0.2]}]},
     "inputs[0].data[2] (petal_length): petal_length must be a number, not a string"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}],
      "outputs": [{"name": "explain"}]}, "this model has no output 'explain'; it has predict, predict_proba"),
    ({"inputs": "all of them"}, "inputs must be a non-empty array of tensors"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5], [1.4, 0.2]]}]},
     "inputs[0].data must be flat, or nested as its shape [1, 4] is: data holds 2 elements where the shape has 1"),
    ({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5, 1.4]]}]},
     "inputs[0].data must be flat, or nested as its shape [2, 4] is: data[1] holds 3 elements where the shape has 4"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [[[5.1], 3.5, 1.4, 0.2]]}]},
     "inputs[0].data must be flat, or nested as its shape [1, 4] is: data[0][0] holds an array where the shape has a value"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, [3.5, 1.4, 0.2]]}]},
     "inputs[0].data must be flat, or nested as its shape [1, 4] is: data holds 2 elements where the shape has 1"),
    ({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": 5.1}]},
     "inputs[0].data must be an array, not a number"),
])
def test_a_malformed_inference_request_is_a_400_saying_what_is_wrong(server, body, message):
    response = requests.post(server.url + "v2/models/iris/infer", json=body)
    assert (response.status_code, response.json()) == (400, {"error": message})


def test_tensor_data_nested_as_its_shape_or_flat_is_read_alike(server):
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    answers = [requests.post(server.url + "v2/models/iris/infer", json={"inputs": [
        {"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": data}]}).json()["outputs"][0]["data"]
        for data in (rows, rows[0] + rows[1])]
    assert answers == [[0, 2], [0, 2]]


def test_a_json_inference_request_as_the_protocol_writes_it(server, pipeline, metadata):
    body = {"id": "42", "inputs": [{"name": name, "shape": [2, 1], "datatype": "FP64", "data": [[TUTORIAL_ROW[name]], [7.0]]}
                                   for name in TUTORIAL_ROW]}
    response = requests.post(server.url + f"v2/models/iris/versions/{metadata['model_sha256'][:12]}/infer", json=body).json()
    X = np.array([list(TUTORIAL_ROW.values()), [7.0] * 4])
    assert response["id"] == "42" and response["model_name"] == "iris"
    assert response["outputs"][0] == {"name": "predict", "datatype": "INT64", "shape": [2], "data": pipeline.predict(X).tolist()}
    assert response["outputs"][1]["shape"] == [2, 3]
    assert np.allclose(response["outputs"][1]["data"], pipeline.predict_proba(X).ravel(), rtol=0, atol=1e-12)
    assert requests.post(server.url + "v2/models/iris/versions/0123/infer", json=body).status_code == 404

