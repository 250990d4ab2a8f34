"""The original tutorial's approach, kept as a reference (its crashes fixed, its design kept):
unpickle the model on every request, build a pandas DataFrame, call pipeline.predict."""

import json
from pathlib import Path

import functions_framework
import joblib
import pandas as pd

MODEL_FILE = Path(__file__).resolve().parents[2] / "model.pkl"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_prediction(sepal_length, sepal_width, petal_length, petal_width):
    with open(MODEL_FILE, "rb") as f:
        model = joblib.load(f)
    data = pd.DataFrame([[sepal_length, sepal_width, petal_length, petal_width]])
    data.columns = FEATURES
    return {"predicted_class": int(model.predict(data)[0])}


@functions_framework.http
def predict(request):
    return json.dumps(iris_prediction(**request.get_json(force=True))), 200, {"Content-Type": "application/json"}
