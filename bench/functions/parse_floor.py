"""The batch floor: parse the JSON body and encode an answer of the same size, no model.

What any JSON API must spend on a batch of rows; main.py's batches are compared with it.
"""

import json

import functions_framework

ANSWER = {"predicted_class": 0, "class_name": "setosa",
          "probabilities": {"setosa": 0.9847031668428455, "versicolor": 0.015296771119383056,
                            "virginica": 6.203777137248208e-08}}


@functions_framework.http
def predict(request):
    rows = json.loads(request.get_data())["instances"]
    return json.dumps({"predictions": [ANSWER] * len(rows)}), 200, {"Content-Type": "application/json"}
