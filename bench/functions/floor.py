"""The floor: functions-framework plus joblib.load(model.pkl), answering a constant.

Nothing a model-serving function can do costs less: its figures are the floors the
bench compares main.py against (warm requests, cold start, memory).
"""

import json
from pathlib import Path

import functions_framework
import joblib

PIPELINE = joblib.load(Path(__file__).resolve().parents[2] / "model.pkl")
ANSWER = json.dumps({"predicted_class": 0, "class_name": "setosa",
                     "probabilities": {"setosa": 0.98, "versicolor": 0.015, "virginica": 6.2e-08}})


@functions_framework.http
def predict(request):
    return ANSWER, 200, {"Content-Type": "application/json"}
