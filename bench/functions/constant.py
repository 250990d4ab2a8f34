"""A functions-framework function that answers a constant and loads nothing: what any Python
function costs a new instance before its first answer, whatever it serves."""

import functions_framework


@functions_framework.http
def predict(request):
    return '{"predicted_class":0}\n', 200, {"Content-Type": "application/json"}
