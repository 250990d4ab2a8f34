"""The constant function plus the imports serving as data can't do without (numpy, and orjson,
which writes the answers): the floor of any function that scores with numpy."""

import functions_framework
import numpy  # noqa: F401
import orjson  # noqa: F401


@functions_framework.http
def predict(request):
    return '{"predicted_class":0}\n', 200, {"Content-Type": "application/json"}
