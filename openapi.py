"""What the API is, built from model.json: GET's description, and the OpenAPI 3.1 document.

Field names, their order and the class names come from the model's metadata, so both
always describe the model actually deployed. The document is served at /openapi.json.
"""

from validation import MAX_MAGNITUDE


def description(metadata, limits):
    """GET's answer: the model, and an example of each request it takes."""
    fields, example, metrics = metadata["fields"], metadata["example"], metadata["metrics"]
    as_list = [example[field["name"]] for field in fields]
    return {
        "model": {
            "features": [field["name"] for field in fields],
            "training_columns": [field["column"] for field in fields],
            "class_names": metadata.get("class_names"),
            "pipeline": metadata["pipeline"],
            "training_accuracy": metrics.get("training_accuracy"),
            "cv_accuracy": metrics.get("cv_accuracy"),
            **{key: metadata[key] for key in ("versions", "model_sha256", "trained_at", "data", "name", "task")},
            "fields": fields,
            "classes": metadata.get("classes"),
            "metrics": metrics,
        },
        "requests": {
            "single": example,
            "batch": {"instances": [example, as_list]},
            "bigquery": {"calls": [as_list], "userDefinedContext": {"return": "class_name"}},
        },
        "limits": limits,
    }


def openapi_document(metadata, bigquery_returns, max_instances):
    features, classes = [field["name"] for field in metadata["fields"]], metadata["class_names"]
    example = metadata["example"]
    number = {"type": "number", "minimum": -MAX_MAGNITUDE, "maximum": MAX_MAGNITUDE}

    def ref(name):
        return {"$ref": f"#/components/schemas/{name}"}

    def json_content(schema, example=None):
        content = {"schema": schema}
        if example is not None:
            content["example"] = example
        return {"application/json": content}

    schemas = {
        "Row": {
            "type": "object",
            "properties": {name: number for name in features},
            "required": features,
            "additionalProperties": False,
        },
        "RowList": {
            "type": "array",
            "description": f"The {len(features)} values in this order: {', '.join(features)}",
            "prefixItems": [number] * len(features),
            "items": False,
            "minItems": len(features),
        },
        "Answer": {
            "type": "object",
            "properties": {
                "predicted_class": {"type": "integer", "minimum": 0, "maximum": len(classes) - 1},
                "class_name": {"enum": classes},
                "probabilities": {
                    "type": "object",
                    "properties": {name: {"type": "number", "minimum": 0, "maximum": 1} for name in classes},
                    "required": classes,
                    "additionalProperties": False,
                },
            },
            "required": ["predicted_class", "class_name", "probabilities"],
        },
        "Batch": {
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": {"oneOf": [ref("Row"), ref("RowList")]},
                    "minItems": 1,
                    "maxItems": max_instances,
                }
            },
            "required": ["instances"],
            "additionalProperties": False,
        },
        "Predictions": {
            "type": "object",
            "properties": {"predictions": {"type": "array", "items": ref("Answer")}},
            "required": ["predictions"],
        },
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
                        "prefixItems": [{**number, "type": ["number", "null"]}] * len(features),
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
                    "items": {"oneOf": [{"type": "null"}, {"enum": classes}, {"type": "integer"}, ref("Answer")]},
                }
            },
            "required": ["replies"],
        },
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}, "field": {"type": ["string", "null"]}},
            "required": ["error", "field"],
        },
        "BigQueryError": {
            "type": "object",
            "properties": {"errorMessage": {"type": "string", "maxLength": 1000}},
            "required": ["errorMessage"],
        },
        "Description": {
            "type": "object",
            "properties": {"model": {"type": "object"}, "requests": {"type": "object"}, "limits": {"type": "object"}},
            "required": ["model", "requests", "limits"],
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "scikit-learn pipeline as a Cloud Function",
            "version": metadata["model_sha256"][:12],
            "description": (
                f"Predicts {metadata.get('data', {}).get('target', 'the class')} "
                f"({', '.join(classes)}) from {', '.join(features)}."
            ),
        },
        "paths": {
            "/": {
                "post": {
                    "operationId": "predict",
                    "summary": "Predict one row, a batch of rows, or a BigQuery remote function call",
                    "requestBody": {
                        "required": True,
                        "content": json_content(
                            {"oneOf": [ref("Row"), ref("Batch"), ref("BigQueryRequest")]}, example
                        ),
                    },
                    "responses": {
                        "200": {
                            "description": "The answer: one, a list, or BigQuery's replies",
                            "content": json_content(
                                {"oneOf": [ref("Answer"), ref("Predictions"), ref("BigQueryReplies")]}
                            ),
                        },
                        "400": {
                            "description": "Bad input (BigQuery requests get errorMessage)",
                            "content": json_content({"oneOf": [ref("Error"), ref("BigQueryError")]}),
                        },
                        "413": {
                            "description": "Body or batch over the limit",
                            "content": json_content({"oneOf": [ref("Error"), ref("BigQueryError")]}),
                        },
                        "503": {
                            "description": "model.pkl failed the check this instance ran on it when it started",
                            "content": json_content({"oneOf": [ref("Error"), ref("BigQueryError")]}),
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
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": json_content({"type": "object"})}},
                }
            },
        },
        "components": {"schemas": schemas},
    }
