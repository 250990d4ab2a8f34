"""The Open Inference Protocol (KServe's v2, Triton's HTTP/REST API), for the model in model.json.

  GET  /v2                                    the server's name, version and extensions
  GET  /v2/health/live, /v2/health/ready      200 (an instance whose model can't answer never starts)
  GET  /v2/models/<name>[/versions/<v>]       the model's inputs and outputs, with datatypes and shapes
  GET  /v2/models/<name>[/versions/<v>]/ready
  POST /v2/models/<name>[/versions/<v>]/infer

An inference request holds one tensor per field (named by the field or its training column,
shape [rows] or [rows, 1]; BYTES for text, as the protocol's convention for tables has it), or,
for a model of numbers, one FP64/FP32/INT64 tensor of shape [rows, fields]. Its data may be JSON or
Triton's binary extension (`Inference-Header-Content-Length`). The outputs are `predict` (the
labels, or a regression's values) and, for a classifier that gives them, `predict_proba`; a
request's `outputs` choose among them. Answers are JSON; errors are {"error": "..."}.
"""

import struct

import numpy as np

from serving.answers import Answer, json_answer, open_inference_error
from serving.fields import InputError, kind_of, shown
from serving.formats import check_count
from serving.request_body import parse_json

DATATYPES = {"number": "FP64", "integer": "INT64", "boolean": "BOOL",
             "string": "BYTES", "text": "BYTES", "date": "BYTES", "datetime": "BYTES"}
NUMPY_TYPES = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "<i1",
               "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
NUMERIC = {name for name in NUMPY_TYPES if name != "BOOL"}


def label_datatype(model):
    if model.task == "regression":
        return "FP64"
    return {int: "INT64", str: "BYTES", bool: "BOOL"}[type(model.classes[0])]


def server_metadata():
    return {"name": "scikit-learn pipeline as a Cloud Function", "version": "2", "extensions": ["binary_tensor_data"]}


def model_metadata(model):
    outputs = [{"name": "predict", "datatype": label_datatype(model), "shape": [-1]}]
    if model.gives_probabilities:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(model.classes)]})
    return {
        "name": model.metadata["name"],
        "versions": [model.version],
        "platform": "scikit-learn",
        "inputs": [{"name": field.name, "datatype": DATATYPES[field.type], "shape": [-1]} for field in model.schema.fields],
        "outputs": outputs,
    }


def tensor_data(tensor, where, binary, offset):
    """A tensor's elements, flat and in row-major order, from its JSON data or from the binary
    part of the body; and the offset of the next binary tensor."""
    datatype = tensor["datatype"]
    size = tensor.get("parameters", {}).get("binary_data_size")
    if size is None:
        if "data" not in tensor:
            raise InputError(f"{where} has no data")
        return flattened(tensor["data"], tensor["shape"], where), offset
    if type(size) is not int or size < 0 or offset + size > len(binary):
        raise InputError(f"{where}'s binary_data_size {size!r} runs past the end of the body")
    raw = binary[offset:offset + size]
    if datatype == "BYTES":
        elements, at = [], 0
        while at < len(raw):  # each element: its length, four bytes little-endian, then its bytes
            if at + 4 > len(raw):
                raise InputError(f"{where}'s BYTES data ends inside an element's length")
            (length,) = struct.unpack_from("<I", raw, at)
            elements.append(raw[at + 4:at + 4 + length])
            at += 4 + length
        return elements, offset + size
    if datatype not in NUMPY_TYPES:
        raise InputError(f"{where}.datatype {shown(str(datatype))} is not one the protocol defines")
    width = np.dtype(NUMPY_TYPES[datatype]).itemsize
    if size % width:
        raise InputError(f"{where}'s {size} bytes are not a whole number of {datatype} elements")
    return np.frombuffer(raw, dtype=NUMPY_TYPES[datatype]).tolist(), offset + size


def flattened(data, shape, where):
    """Tensor data as one flat list: sent flat, as the protocol allows, or nested exactly as its shape
    is. Data nested otherwise ([[a, b], [c, d]] for a [1, 4] tensor) is refused rather than guessed
    at: read flat, its values could land in other fields than the sender meant."""
    if not isinstance(data, list):
        raise InputError(f"{where}.data must be an array, not {kind_of(data)}")
    if not any(isinstance(item, list) for item in data):
        return data
    level = [data]  # one level of the nesting at a time: data nested a thousand deep needs no recursion
    for depth, size in enumerate(shape):
        for k, item in enumerate(level):
            if not isinstance(item, list) or len(item) != size:
                found = f"{len(item)} elements" if isinstance(item, list) else kind_of(item)
                raise misnested(where, shape, depth, k, found, size)
        level = [value for item in level for value in item]
    deeper = next((k for k, value in enumerate(level) if isinstance(value, list)), None)
    if deeper is not None:
        raise misnested(where, shape, len(shape), deeper, "an array", "a value")
    return level


def misnested(where, shape, depth, k, found, expected):
    """The refusal of data not nested as its shape is: the k-th array at `depth`, found holding
    `found` where the shape has `expected`, named by its path in the data."""
    indexes = []
    for size in reversed(shape[:depth]):
        k, index = divmod(k, size)
        indexes.insert(0, f"[{index}]")
    return InputError(f"{where}.data must be flat, or nested as its shape {shape} is: "
                      f"data{''.join(indexes)} holds {found} where the shape has {expected}")


def json_value(value, datatype, where):
    """One tensor element as the JSON value a request's row would hold."""
    if datatype == "BYTES":
        if isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                raise InputError(f"{where} is not UTF-8 text") from None
        return value
    if datatype == "BOOL":
        return value if type(value) is bool else "not a boolean"  # refused by the field's check
    return value


def read_tensors(body, model, max_rows, binary=b""):
    """The request's inputs as checked rows, and the outputs it asks for."""
    if not isinstance(body, dict):
        raise InputError(f"an inference request must be a JSON object, not {kind_of(body)}")
    for key, kind in (("id", str), ("parameters", dict)):
        if key in body and not isinstance(body[key], kind):
            raise InputError(f"{key} must be {'an object' if kind is dict else 'a string'}, not {kind_of(body[key])}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs must be a non-empty array of tensors")
    fields = model.schema.fields
    by_key = model.schema.by_key
    columns, offset, rows_count = {}, 0, None
    for i, tensor in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict) or not all(key in tensor for key in ("name", "shape", "datatype")):
            raise InputError(f"{where} must be an object with name, shape, datatype and data")
        for key, kind in (("name", str), ("datatype", str), ("parameters", dict)):
            if key in tensor and not isinstance(tensor[key], kind):
                raise InputError(f"{where}.{key} must be {'an object' if kind is dict else 'a string'}, not {kind_of(tensor[key])}")
        shape = tensor["shape"]
        if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
            raise InputError(f"{where}.shape must be an array of whole numbers")
        data, offset = tensor_data(tensor, where, binary, offset)
        if len(data) != int(np.prod(shape)):
            raise InputError(f"{where} holds {len(data)} elements, but its shape {shape} makes {int(np.prod(shape))}")
        values = [json_value(value, tensor["datatype"], f"{where}.data[{j}]") for j, value in enumerate(data)]
        if len(inputs) == 1 and len(shape) == 2 and shape[1] == len(fields) and tensor["name"] not in by_key:
            if tensor["datatype"] not in NUMERIC or not model.schema.numeric:
                raise InputError(f"{where}: a single [rows, fields] tensor is for a model of numbers, with an "
                                    "INT or FP datatype; send one tensor per field")
            check_count(shape[0], max_rows, where)
            return rows_of([values[r * len(fields):(r + 1) * len(fields)] for r in range(shape[0])], fields,
                           lambda r, j, where=where: f"{where}.data[{r * len(fields) + j}]"), requested(body, model)
        field = by_key.get(tensor["name"])
        if field is None:
            raise InputError(f"{where}: no field is named {shown(str(tensor['name']))}; the fields are "
                                f"{', '.join(model.features)}, or one [rows, {len(fields)}] tensor")
        if field.name in columns:
            raise InputError(f"{where}: the field {field.name} is given twice")
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise InputError(f"{where}.shape must be [rows] or [rows, 1] for one field")
        if rows_count is not None and shape[0] != rows_count:
            raise InputError(f"{where} holds {shape[0]} rows, the tensors before it {rows_count}")
        rows_count = shape[0]
        check_count(rows_count, max_rows, where)
        columns[field.name] = (i, values)
    missing = [field.name for field in fields if field.name not in columns]
    if missing:
        raise InputError(f"inputs lack the fields {', '.join(missing)}")
    rows = [[columns[field.name][1][r] for field in fields] for r in range(rows_count)]
    return rows_of(rows, fields, lambda r, j: f"inputs[{columns[fields[j].name][0]}].data[{r}]"), requested(body, model)


def rows_of(rows, fields, where):
    """Each row's values checked by its field, an error naming the element at fault."""
    checked = []
    for r, row in enumerate(rows):
        values = []
        for j, (value, field) in enumerate(zip(row, fields)):
            try:
                values.append(field.check(value, "", field.name, []))
            except InputError as err:
                raise InputError(f"{where(r, j)} ({field.name}): {err.message}") from None
        checked.append(values)
    return checked


def requested(body, model):
    names = ["predict", "predict_proba"] if model.gives_probabilities else ["predict"]
    outputs = body.get("outputs")
    if outputs is None:
        return names
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                and isinstance(o.get("parameters", {}), dict) for o in outputs):
        raise InputError("outputs must be an array of objects, each with a name")
    unknown = [str(o["name"]) for o in outputs if o["name"] not in names]
    if unknown:
        raise InputError(f"this model has no output {shown(unknown[0])}; it has {', '.join(names)}")
    return [o["name"] for o in outputs]


def infer_answer(body, model, outputs, labels, probabilities):
    answer = {"model_name": model.metadata["name"], "model_version": model.version}
    if isinstance(body.get("id"), str):
        answer["id"] = body["id"]
    tensors = []
    for name in outputs:
        if name == "predict":
            tensors.append({"name": "predict", "datatype": label_datatype(model), "shape": [len(labels)], "data": labels})
        else:
            tensors.append({"name": "predict_proba", "datatype": "FP64", "shape": [len(labels), len(model.classes)],
                            "data": [p for row in probabilities for p in row]})
    answer["outputs"] = tensors
    return answer


def parse(data, headers):
    """The JSON part of an inference request, and its binary part (Triton's extension)."""
    if headers.get("Content-Encoding"):
        raise InputError("a compressed request body is not read; send it uncompressed")
    length = headers.get("Inference-Header-Content-Length")
    if length is None:
        header, binary = data, b""
    else:
        header_length = json_length(length, len(data))
        header, binary = data[:header_length], data[header_length:]
    return parse_json(header), binary


def json_length(length, body_size):
    """Inference-Header-Content-Length: the length of the JSON that opens the body, a whole number
    of bytes within the body. Its digits are measured before they are read: Python refuses to read
    an integer of more than 4,300 digits, and no body here is that long."""
    digits = length.lstrip("0") or "0"
    if not (length.isascii() and length.isdigit()) or len(digits) > len(str(body_size)) or int(digits) > body_size:
        raise InputError(f"Inference-Header-Content-Length must be a whole number of bytes, at most the body's {body_size}: "
                         "the length of the JSON that opens the body")
    return int(digits)


def respond(endpoint, args, data, headers, model, max_rows) -> Answer:
    """The answer to a request at a /v2 route, whose method routes.allowed has let through."""
    if args.get("name") is not None and args["name"] != model.metadata["name"]:
        return refusal(f"no model named {shown(args['name'])}; this function serves {model.metadata['name']}", 404)
    if args.get("version") is not None and args["version"] != model.version:
        return refusal(f"no version {shown(args['version'])} of {model.metadata['name']}; it has {model.version}", 404)
    if endpoint == "unknown":
        return refusal("no such route of the Open Inference Protocol; see /openapi.json", 404)
    if endpoint != "infer":
        return json_answer(metadata_answer(endpoint, model))
    try:
        body, binary = parse(data, headers)
        rows, outputs = read_tensors(body, model, max_rows, binary)
        labels, probabilities = model.predict(rows, lambda i: f"inputs, row {i}")
    except InputError as err:
        return json_answer(open_inference_error(err.message, err.field), err.status)
    return json_answer(infer_answer(body, model, outputs, labels, probabilities), rows=len(rows))


def refusal(message, status):
    return json_answer(open_inference_error(message), status)


def metadata_answer(endpoint, model):
    """What a GET at a /v2 route other than infer answers: the server, its health, the model."""
    if endpoint == "server":
        return server_metadata()
    if endpoint == "live":
        return {"live": True}
    if endpoint == "ready":
        return {"ready": True}
    if endpoint == "model_ready":
        return {"name": model.metadata["name"], "ready": True}
    return model_metadata(model)
