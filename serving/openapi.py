"""What the API is, built from model.json: GET's description, and the OpenAPI 3.1 document.

Field names, their order and the class names come from the model's metadata, so both
always describe the model actually deployed. The document is served at /openapi.json.
"""

from serving.fields import KINDS, LISTED_IN_AN_ANSWER, MAX_MAGNITUDE, MOMENT_TYPES

# What is published (GET's description, this document, the page that renders the description) lists
# a field's values only when it has at most this many. model.json keeps them all, since serving
# checks a value by them, but it ships inside the function and is never served.
MAX_LISTED = 50
# What an example request holds in place of a value of a field whose values aren't listed.
PLACEHOLDERS = {"string": "any text", "text": "any text", "integer": 0, "number": 0.0}
FIELD_KINDS = {"string": "free text", "integer": "a whole number", "number": "a number"}
TEXT_DESCRIPTION = "free text: a sentence, a review, a description, of any length"
# JSON Schema's format of a date field's text (RFC 3339's full-date and date-time, which ISO 8601's
# extended form takes in; a time without an offset is accepted too, as the training data's clock read it).
FORMATS = {"date": "date", "datetime": "date-time"}


def date_description(field):
    """What a date field takes, how a time zone is read, and the dates training saw."""
    zone = "; a time with a UTC offset (Z, +02:00) is taken to UTC, one without is read as the training data's clock" \
        if field["type"] == "datetime" else ""
    seen = f"; training saw {field['range'][0]} to {field['range'][1]}, and beyond is answered with a warning" \
        if "range" in field else ""
    return f"{KINDS[field['type']]}{zone}{seen}"


def lists_its_values(field, rows):
    """Whether what is published may list a field's categories: when they are few, and not so
    many that most stand for a single training row (`rows` of them), as an ID's, a name's or a
    sentence's do; a handful, which a warning lists anyway, are taken to be a category's levels."""
    count = len(field["categories"])
    return count <= MAX_LISTED and not (count > LISTED_IN_AN_ANSWER and rows and 2 * count > rows)


def published_field(field, rows):
    """A field as it is published: as model.json has it, but for a field whose values aren't
    listed, their number and a sentence in their place; a date or text field, with a sentence on what it takes."""
    if field["type"] in MOMENT_TYPES:
        return {**field, "description": date_description(field)}
    if field["type"] == "text":
        return {**field, "description": TEXT_DESCRIPTION}
    if "categories" not in field or lists_its_values(field, rows):
        return field
    count = len(field["categories"])
    unseen = "answered, with a warning" if field["unknown_categories"] == "ignore" else "refused"
    return {**{key: value for key, value in field.items() if key != "categories"}, "distinct_values": count,
            "description": f"{FIELD_KINDS[field['type']]}; {count} distinct values seen in training, not listed; "
                           f"a value never seen is {unseen}"}


def published(metadata):
    """model.json as GET and this document show it: no field's values listed unless
    lists_its_values, and the example's value of such a field, or of a text field, a placeholder,
    not a training row's (null, where the field refuses a value never seen but takes a gap)."""
    fields = [published_field(field, metadata["data"].get("rows")) for field in metadata["fields"]]
    hidden = {field["name"]: placeholder(field) for field in fields if "distinct_values" in field or field["type"] == "text"}
    example = {key: hidden.get(key, value) for key, value in metadata["example"].items()}
    return {**metadata, "fields": fields, "example": example}


def placeholder(field):
    if field.get("unknown_categories") == "error" and field["nullable"]:
        return None
    return PLACEHOLDERS[field["type"]]


def description(metadata: dict, limits: dict) -> dict:
    """GET's answer: the model, and an example of each request it takes."""
    metadata = published(metadata)
    fields, example = metadata["fields"], metadata["example"]
    as_list = [example[field["name"]] for field in fields]
    return {
        "model": {
            **{key: metadata[key] for key in ("name", "task", "pipeline", "data", "trained_at", "metrics", "versions",
                                              "model_sha256")},
            "features": [field["name"] for field in fields],  # the fields' names, in order: a row as a list
            "fields": fields,
            "classes": metadata.get("classes"),
            "class_names": metadata.get("class_names"),
        },
        "requests": {
            "single": example,
            "batch": {"instances": [example, as_list]},
            "bigquery": {"calls": [as_list], "userDefinedContext": {
                "return": "predicted_value" if metadata["task"] == "regression" else "class_name"}},
        },
        "limits": limits,
    }


def value_schema(field, may_be_null=None):
    """The JSON Schema of a field's value: its type, what training saw of it, null if it may be."""
    schema = {"type": {"number": "number", "integer": "integer", "boolean": "boolean"}.get(field["type"], "string")}
    if field["type"] in ("number", "integer"):
        schema.update(minimum=-MAX_MAGNITUDE, maximum=MAX_MAGNITUDE)
    if field["type"] in MOMENT_TYPES:
        description = date_description(field)
        schema.update(format=FORMATS[field["type"]], description=description[:1].upper() + description[1:])
    elif "categories" in field:
        if field["unknown_categories"] == "error":
            schema["enum"] = field["categories"]
        else:
            schema["examples"] = field["categories"]
            schema["description"] = "Values training never saw are answered, with a warning"
    elif "distinct_values" in field or field["type"] == "text":
        schema["description"] = field["description"][:1].upper() + field["description"][1:]
    elif "range" in field:
        schema["description"] = f"Training saw {field['range'][0]} to {field['range'][1]}; beyond, a warning"
    if field["nullable"] if may_be_null is None else may_be_null:
        schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def answer_schema(metadata):
    warnings = {"type": "array", "items": {"type": "string"}, "description": "What about the row training never saw"}
    if metadata["task"] == "regression":
        return {"type": "object", "properties": {"predicted_value": {"type": "number"}, "warnings": warnings},
                "required": ["predicted_value"]}
    classes, names = metadata["classes"], metadata["class_names"]
    return {
        "type": "object",
        "properties": {
            "predicted_class": {"enum": classes, "description": "The class, as the training data spells it"},
            "class_name": {"enum": names},
            "probabilities": {
                "type": "object",
                "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in names},
                "required": names,
                "additionalProperties": False,
            },
            "warnings": warnings,
        },
        "required": ["predicted_class", "class_name"],
    }


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema, example=None):
    content = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"application/json": content}


def openapi_document(metadata: dict, bigquery_returns: tuple, max_instances: int) -> dict:
    """The API as OpenAPI 3.1, for this model's fields and classes."""
    metadata = published(metadata)
    features = [field["name"] for field in metadata["fields"]]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scikit-learn pipeline as a Cloud Function",
            "version": metadata["model_sha256"][:12],
            "description": (
                f"Predicts {metadata['data']['target']} "
                + (f"({', '.join(metadata['class_names'])}) " if metadata["task"] == "classification" else "")
                + f"from {', '.join(features)}."
            ),
        },
        "paths": {
            "/": root_operations(metadata["example"]),
            **other_paths(),
            **open_inference_paths(metadata),
        },
        "components": {"schemas": {
            **row_schemas(metadata, max_instances),
            **bigquery_schemas(metadata, bigquery_returns, max_instances),
            **mlflow_schemas(metadata, features, max_instances),
            **open_inference_schemas(metadata),
        }},
    }


def row_schemas(metadata, max_instances):
    """A row (an object, or a list in field order), a batch of them, the answers, the error, GET's answer."""
    fields = metadata["fields"]
    features = [field["name"] for field in fields]
    renamed = ", ".join(f"{field['name']} as {field['column']!r}" for field in fields if field["column"] != field["name"])
    return {
        "Row": {
            "type": "object",
            **({"description": f"A field may also be named by its training column: {renamed}"} if renamed else {}),
            "properties": {field["name"]: value_schema(field) for field in fields},
            "required": features,
            "additionalProperties": False,
        },
        "RowList": {
            "type": "array",
            "description": f"The {len(features)} values in this order: {', '.join(features)}",
            "prefixItems": [value_schema(field) for field in fields],
            "items": False,
            "minItems": len(features),
        },
        "Answer": answer_schema(metadata),
        "Batch": {
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": {"oneOf": [ref("Row"), ref("RowList")]},
                    "minItems": 1,
                    "maxItems": max_instances,
                },
                "parameters": {"type": "object", "description": "Vertex AI's parameters; no model here takes any"},
            },
            "required": ["instances"],
            "additionalProperties": False,
        },
        "Predictions": {
            "type": "object",
            "properties": {"predictions": {"type": "array", "items": ref("Answer")}},
            "required": ["predictions"],
        },
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
            "required": ["error", "field"],
        },
        "Description": {
            "type": "object",
            "properties": {"model": {"type": "object"}, "requests": {"type": "object"}, "limits": {"type": "object"}},
            "required": ["model", "requests", "limits"],
        },
    }


def bigquery_schemas(metadata, bigquery_returns, max_instances):
    """What BigQuery sends a remote function, and what it reads back."""
    fields = metadata["fields"]
    features = [field["name"] for field in fields]
    replies = [{"type": "null"}, {"type": "number"}] if metadata["task"] == "regression" else \
        [{"type": "null"}, {"enum": metadata["class_names"]}, {"enum": metadata["classes"]}]
    return {
        "BigQueryRequest": {
            "type": "object",
            "description": "What BigQuery sends a remote function",
            "properties": {
                "requestId": {"description": "Sent by BigQuery; not used"},
                "caller": {"description": "Sent by BigQuery; not used"},
                "sessionUser": {"description": "Sent by BigQuery; not used"},
                "userDefinedContext": {
                    "type": "object",
                    "properties": {"return": {"enum": list(bigquery_returns)}},
                },
                "calls": {
                    "type": "array",
                    "items": {
                        "type": "array",
                        "prefixItems": [value_schema(field, may_be_null=True) for field in fields],
                        "items": False,
                        "minItems": len(features),
                    },
                    "maxItems": max_instances,
                },
            },
            "required": ["calls"],
        },
        "BigQueryReplies": {
            "type": "object",
            "properties": {
                "replies": {
                    "type": "array",
                    "items": {"anyOf": [*replies, ref("Answer")]},
                }
            },
            "required": ["replies"],
        },
        "BigQueryError": {
            "type": "object",
            "properties": {"errorMessage": {"type": "string", "maxLength": 1000}},
            "required": ["errorMessage"],
        },
    }


def root_operations(example):
    """The root: POST predicts, GET describes, OPTIONS answers a CORS preflight."""
    return {
        "post": {
            "operationId": "predict",
            "summary": "Predict one row, a batch of rows, or a BigQuery remote function call",
            "requestBody": {
                "required": True,
                "content": json_content(
                    {"oneOf": [ref("Row"), ref("Batch"), ref("BigQueryRequest"), ref("MLflowRequest")]}, example
                ),
            },
            "responses": {
                "200": {
                    "description": "The answer: one, a list, or BigQuery's replies",
                    "content": json_content(
                        {"anyOf": [ref("Answer"), ref("Predictions"), ref("BigQueryReplies"), ref("MLflowPredictions")]}
                    ),
                },
                "400": {
                    "description": "Bad input (BigQuery requests get errorMessage)",
                    "content": json_content({"anyOf": [ref("Error"), ref("BigQueryError"), ref("MLflowError")]}),
                },
                "413": {
                    "description": "Body or batch over the limit",
                    "content": json_content({"anyOf": [ref("Error"), ref("BigQueryError"), ref("MLflowError")]}),
                },
            },
        },
        "get": {
            "operationId": "describe",
            "summary": "What the deployed model is, and an example of each request",
            "responses": {
                "200": {
                    "description": "The model's description (a browser asking for HTML gets a try-it page)",
                    "content": {
                        **json_content(ref("Description")),
                        "text/html": {"schema": {"type": "string"}},
                    },
                }
            },
        },
        "options": {
            "operationId": "preflight",
            "summary": "CORS preflight",
            "responses": {"204": {"description": "The methods and headers a web page may use"}},
        },
    }


def other_paths():
    """This document's own path, and MLflow's scoring server's."""
    return {
    "/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1", "content": json_content({"type": "object"})}},
        }
    },
    "/invocations": {
        "post": {
            "operationId": "mlflow_invocations",
            "summary": "Predict rows in a format of MLflow's scoring server, answered as it answers",
            "requestBody": {"required": True, "content": json_content(ref("MLflowRequest"))},
            "responses": {
                "200": {"description": "The labels, or a regression's values", "content": json_content(ref("MLflowPredictions"))},
                **{code: {"description": why, "content": json_content(ref("MLflowError"))} for code, why in (
                    ("400", "Bad input"), ("413", "Body or rows over the limit"))},
            },
        }
    },
    **{route: {"get": {"operationId": f"mlflow_{route[1:]}",
                       "summary": "200 while the function runs (MLflow's health check)",
                       "responses": {"200": {"description": "A newline",
                                             "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
       for route in ("/ping", "/health")},
    }


def mlflow_schemas(metadata, features, max_instances):
    """MLflow's scoring formats, for this model's fields (dataframe_split with the field names as
    its columns, in order; the training columns' names are read too)."""
    rows = {"type": "array", "items": {"oneOf": [ref("Row"), ref("RowList")]}, "minItems": 1, "maxItems": max_instances}
    label = {"type": "number"} if metadata["task"] == "regression" else {"enum": metadata["classes"]}
    split = {"type": "object", "properties": {
        "columns": {"const": features}, "data": {"type": "array", "items": ref("RowList"), "minItems": 1, "maxItems": max_instances},
        "index": {"type": "array"}}, "required": ["data"], "additionalProperties": False,
        "description": "Without columns, each row's values are in the fields' order"}
    one_of = [("dataframe_split", split), ("dataframe_records", {**rows, "items": ref("Row")}), ("instances", rows), ("inputs", rows)]
    return {
        "MLflowRequest": {"oneOf": [{"type": "object", "properties": {key: schema, "params": {"type": "object"}},
                                     "required": [key], "additionalProperties": False} for key, schema in one_of]},
        "MLflowPredictions": {"type": "object", "properties": {"predictions": {"type": "array", "items": label}},
                              "required": ["predictions"]},
        "MLflowError": {"type": "object", "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}},
                        "required": ["error_code", "message"]},
    }


def open_inference_schemas(metadata):
    tensor = {"type": "object", "properties": {"name": {"type": "string"}, "datatype": {"type": "string"},
                                               "shape": {"type": "array", "items": {"type": "integer"}}},
              "required": ["name", "datatype", "shape"]}
    return {
        "InferenceTensorMetadata": tensor,
        "InferenceRequest": {
            "type": "object",
            "description": "One tensor per field, named by the field (BYTES for text), of shape [rows] or [rows, 1]; "
                           "or, for a model of numbers, one tensor of shape [rows, fields]",
            "properties": {
                "id": {"type": "string"},
                "parameters": {"type": "object"},
                "inputs": {"type": "array", "minItems": 1, "items": {**tensor, "properties": {
                    **tensor["properties"], "parameters": {"type": "object"}, "data": {"type": "array"}}}},
                "outputs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}},
                                                       "required": ["name"]}},
            },
            "required": ["inputs"],
        },
        "InferenceResponse": {"type": "object", "properties": {
            "model_name": {"const": metadata["name"]}, "model_version": {"type": "string"}, "id": {"type": "string"},
            "outputs": {"type": "array", "items": {**tensor, "properties": {**tensor["properties"], "data": {"type": "array"}}}}},
            "required": ["model_name", "outputs"]},
        "InferenceError": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
    }


def open_inference_paths(metadata):
    """The Open Inference Protocol's routes (open_inference.py)."""
    error = {"content": json_content(ref("InferenceError"))}
    name = {"name": "name", "in": "path", "required": True, "schema": {"enum": [metadata["name"]]},
            "description": "The model's name"}
    version = {"name": "version", "in": "path", "required": True, "schema": {"enum": [metadata["model_sha256"][:12]]},
               "description": "The model's version"}
    health = {"type": "object", "properties": {"live": {"type": "boolean"}, "ready": {"type": "boolean"},
                                               "name": {"type": "string"}}}

    def get(operation, summary, schema, parameters=()):
        responses = {"200": {"description": summary, "content": json_content(schema)}, "404": {"description": "No such model", **error}}
        return {"get": {"operationId": operation, "summary": summary, "parameters": list(parameters), "responses": responses}}

    paths = {
        "/v2": get("oip_server_metadata", "The server's name, version and extensions",
                   {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"},
                                                     "extensions": {"type": "array", "items": {"type": "string"}}}}),
        "/v2/health/live": get("oip_live", "Live", health),
        "/v2/health/ready": get("oip_ready", "Ready to answer", health),
    }
    for base, parameters, tag in (("/v2/models/{name}", [name], ""), ("/v2/models/{name}/versions/{version}", [name, version], "_version")):
        paths[base] = get(f"oip_model_metadata{tag}", "The model's inputs and outputs", {"type": "object", "properties": {
            "name": {"type": "string"}, "versions": {"type": "array"}, "platform": {"type": "string"},
            "inputs": {"type": "array", "items": ref("InferenceTensorMetadata")},
            "outputs": {"type": "array", "items": ref("InferenceTensorMetadata")}}}, parameters)
        paths[base + "/ready"] = get(f"oip_model_ready{tag}", "Ready to answer", health, parameters)
        paths[base + "/infer"] = {"post": {
            "operationId": f"oip_infer{tag}", "summary": "Predict the rows the input tensors hold", "parameters": parameters,
            "requestBody": {"required": True, "content": {**json_content(ref("InferenceRequest")),
                                                          "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            "responses": {"200": {"description": "predict, and predict_proba for a classifier that gives them",
                                  "content": json_content(ref("InferenceResponse"))},
                          **{code: {"description": why, **error} for code, why in (
                              ("400", "Bad input"), ("404", "No such model"), ("413", "Body or rows over the limit"))}}}}
    return paths
