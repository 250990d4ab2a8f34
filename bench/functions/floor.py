"""The floor: functions-framework plus joblib.load(model.pkl), answering a constant.

Nothing a model-serving function can do costs less: its figures are the floors the bench
compares main.py against (warm requests, cold start, memory). BENCH_BUNDLE names the folder
whose model.pkl it loads (default: the project's own, iris).
"""

import json
import os
from pathlib import Path

import functions_framework
import joblib

PIPELINE = joblib.load(Path(os.environ.get("BENCH_BUNDLE") or Path(__file__).resolve().parents[2]) / "model.pkl")
ANSWER = json.dumps({"predicted_class": 0, "class_name": "setosa",
                     "probabilities": {"setosa": 0.98, "versicolor": 0.015, "virginica": 6.2e-08}})


@functions_framework.http
def predict(request):
    return ANSWER, 200, {"Content-Type": "application/json"}
