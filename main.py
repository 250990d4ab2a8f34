"""An HTTP Google Cloud Function that serves the scikit-learn pipeline in model.pkl.

POST {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
  -> {"predicted_class": 0, "class_name": "setosa", "probabilities": {"setosa": 0.97..., ...}}

Entry point: `predict`. Run it locally with `functions-framework --target predict`.
"""

import json
import os
import sys
from pathlib import Path

import functions_framework

from model_loader import ModelError, load_model
from validation import InputError, read_json, single_row

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 1024 * 1024))

# The model is loaded once per instance, when Cloud Functions imports this file, and
# reused by every request: unpickling costs far more than a prediction. A model that
# can't be trusted stops the instance here, with one line saying why, rather than
# serving errors or wrong answers.
try:
    MODEL = load_model(HERE, expected_sha256=os.environ.get("MODEL_SHA256"))
except ModelError as err:
    sys.exit(f"cannot serve: {err}")

JSON_HEADERS = {"Content-Type": "application/json"}


def answers(probabilities):
    """One answer per row: the class index (the original contract), its name, and every
    class's probability."""
    names = MODEL.class_names
    return [
        {
            "predicted_class": int(row.argmax()),
            "class_name": names[row.argmax()],
            "probabilities": dict(zip(names, row.tolist())),
        }
        for row in probabilities
    ]


def reply(body, status=200):
    return json.dumps(body), status, JSON_HEADERS


@functions_framework.http
def predict(request):
    try:
        body = read_json(request, MAX_BODY_BYTES)
        rows = single_row(body, MODEL.features)
    except InputError as err:
        return reply({"error": err.message, "field": err.field}, err.status)
    return reply(answers(MODEL.predict_proba(rows))[0])
