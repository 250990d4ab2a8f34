"""The request formats the function reads, each with the answers and errors it writes.

Each format is a class: built from a parsed body, it checks the rows the body holds (raising
InputError naming the bad value), and `answer(labels, probabilities)` writes its answer from the
model's answers for those rows, in order.

  Single    {"sepal_length": 5.1, ...}        -> {"predicted_class": 0, ...}   the original contract
  Batch     {"instances": [row, ...]}         -> {"predictions": [answer, ...]}  (Vertex AI: "parameters" beside)
  BigQuery  {"calls": [[arg, ...], ...]}      -> {"replies": [reply, ...]}
  MLflow    {"dataframe_split": ...}, {"dataframe_records": ...}, {"inputs": ...}, and at /invocations
            {"instances": ...} too            -> {"predictions": [label, ...]}, as MLflow's scoring server
"""

from serving.answers import function_error, located, mlflow_error
from serving.fields import InputError, kind_of, path, shown


def single_row(body, schema):
    if not isinstance(body, dict):
        raise InputError(f"body must be a JSON object with the fields {', '.join(schema.names)}, not {kind_of(body)}")
    return schema.row(body)


def check_count(count, max_rows, field):
    if count > max_rows:
        raise InputError(f"{field} holds {count} rows; the limit is {max_rows}", field, status=413)


def check_beside(body, key, beside):
    """That the body holds nothing beside `key` but the keys `beside`, each an object (the
    parameters Vertex AI and MLflow send, which no model here takes)."""
    unknown = [name for name in body if name != key and name not in beside]
    if unknown:
        raise InputError(f"unknown field {shown(unknown[0])} beside {key}", path("", unknown[0]))
    for name in beside:
        if name in body and not isinstance(body[name], dict):
            raise InputError(f"{name} must be an object, not {kind_of(body[name])}", name)


def batch_rows(body, schema, max_rows, beside=()):
    """{"instances": [row, ...]}: each row an object or an array in field order. Returns the rows'
    values and, per row, its warnings. Keys `beside` may stand beside instances (Vertex AI's parameters)."""
    check_beside(body, "instances", beside)
    instances = body["instances"]
    if not isinstance(instances, list):
        raise InputError(f"instances must be an array of rows, not {kind_of(instances)}", "instances")
    if not instances:
        raise InputError("instances is empty", "instances")
    check_count(len(instances), max_rows, "instances")
    checked = [schema.row(row, f"instances[{i}]") for i, row in enumerate(instances)]
    return [values for values, _ in checked], [warnings for _, warnings in checked]


def bigquery_rows(body, schema, max_rows):
    """BigQuery's {"calls": [[arg, ...], ...]}. Returns the rows to score and, per call, whether
    it is scored: a call with a SQL NULL for a field that may not be null gets a null reply, as
    SQL functions usually do (a NULL for a field the pipeline imputes is imputed)."""
    calls = body["calls"]
    if not isinstance(calls, list):
        raise InputError(f"calls must be an array, not {kind_of(calls)}", "calls")
    check_count(len(calls), max_rows, "calls")
    rows, scored = [], []
    for i, call in enumerate(calls):
        prefix = f"calls[{i}]"
        if not isinstance(call, list):
            raise InputError(f"a call must be an array of arguments, not {kind_of(call)}", prefix)
        is_scored = not (len(call) == len(schema.fields)
                         and any(value is None and not field.nullable for value, field in zip(call, schema.fields)))
        if is_scored:
            rows.append(schema.row(call, prefix)[0])
        scored.append(is_scored)
    return rows, scored


def bigquery_return(body, choices):
    context = body.get("userDefinedContext", {})
    if not isinstance(context, dict):
        raise InputError("userDefinedContext must be an object", "userDefinedContext")
    choice = context.get("return", choices[0])
    if choice not in choices:
        raise InputError(
            f"userDefinedContext.return must be one of {', '.join(choices)}, "
            f"not {shown(choice) if isinstance(choice, str) else kind_of(choice)}",
            "userDefinedContext.return",
        )
    return choice


def row_answer(model, label, probabilities=None, warnings=()):
    """One row's answer. A classifier's: the class as the training data spells it (the original
    contract's `predicted_class`), its name, and every class's probability when the model gives
    them. A regression's: the predicted value. Either way, what about the row training never saw."""
    if model.task == "regression":
        answer = {"predicted_value": label}
    else:
        answer = {"predicted_class": label, "class_name": model.class_name[label]}
        if probabilities is not None:
            answer["probabilities"] = dict(zip(model.class_names, probabilities))
    if warnings:
        answer["warnings"] = warnings
    return answer


def bigquery_returns(model):
    """What a BigQuery call may ask for in userDefinedContext.return; the first is the default."""
    return ("predicted_value", "json") if model.task == "regression" else ("class_name", "predicted_class", "json")


class Single:
    """One row, as an object keyed by field: the tutorial's request."""

    def __init__(self, body, model, max_rows):
        self.model = model
        values, self.warnings = single_row(body, model.schema)
        self.rows = [values]

    @staticmethod
    def where(i):
        return ""

    def answer(self, labels, probabilities):
        return row_answer(self.model, labels[0], probabilities and probabilities[0], self.warnings)

    error = staticmethod(function_error)


class Batch(Single):
    """Many rows, each an object or an array in field order; answered in the same order."""

    def __init__(self, body, model, max_rows):
        self.model = model
        # Vertex AI sends its prediction request's parameters beside the instances, MLflow its params;
        # no model here takes any.
        self.rows, self.warnings = batch_rows(body, model.schema, max_rows, beside=("parameters", "params"))

    @staticmethod
    def where(i):
        return f"instances[{i}]"

    def answer(self, labels, probabilities):
        probabilities = probabilities or [None] * len(labels)
        return {"predictions": [row_answer(self.model, *answer) for answer in zip(labels, probabilities, self.warnings)]}


class BigQuery:
    """A BigQuery remote function call: one reply per call, in order. BigQuery retries 5xx
    answers, so bad input must be a 4xx; its error key is `errorMessage`."""

    def __init__(self, body, model, max_rows):
        self.model = model
        self.returning = bigquery_return(body, bigquery_returns(model))
        self.rows, self.scored = bigquery_rows(body, model.schema, max_rows)
        self.calls = [i for i, is_scored in enumerate(self.scored) if is_scored]

    def where(self, i):
        return f"calls[{self.calls[i]}]"

    def reply(self, label, probabilities):
        if self.returning == "json":
            return row_answer(self.model, label, probabilities)
        return self.model.class_name[label] if self.returning == "class_name" else label

    def answer(self, labels, probabilities):
        replies = iter(map(self.reply, labels, probabilities or [None] * len(labels)))
        return {"replies": [next(replies) if is_scored else None for is_scored in self.scored]}

    @staticmethod
    def error(message, field=None):
        return {"errorMessage": located(message, field)[:1000]}  # BigQuery shows at most 1,000 characters


def split_columns(columns, schema):
    """dataframe_split's columns, which name the values of each row: every one of the model's fields
    once, by its name or its training column, in any order (a DataFrame's own). Anything else would
    leave some value read as another field than the sender meant."""
    where = "dataframe_split.columns"
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InputError(f"{where} must be an array of names", where)
    unknown = next((name for name in columns if name not in schema.by_key), None)
    if unknown is not None:
        raise InputError(f"unknown column {shown(unknown)}; the columns must be the fields {', '.join(schema.names)}, "
                         "in any order", where)
    named = set()
    for name in columns:
        field = schema.by_key[name].name
        if field in named:
            raise InputError(f"{where} name the field {field} twice", where)
        named.add(field)
    missing = [name for name in schema.names if name not in named]
    if missing:
        raise InputError(f"{where} lack the fields {', '.join(missing)}", where)
    return columns


def split_rows(columns, data):
    """dataframe_split's rows, each an array of one value per column, as objects keyed by column."""
    for i, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            found = f"{len(row)} values" if isinstance(row, list) else kind_of(row)
            raise InputError(f"a row must be an array of {len(columns)} values, one per column, not {found}",
                             f"dataframe_split.data[{i}]")
    return [dict(zip(columns, row)) for row in data]


class MLflow:
    """The bodies MLflow's scoring server reads (what pandas users make with df.to_dict(orient=
    "split") or orient="records"), answered as it answers a scikit-learn model: the labels (a
    regression's values) of its predict, in order. Its errors are MLflow's, still naming the field."""

    KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")

    def __init__(self, body, model, max_rows):
        self.model, self.schema = model, model.schema
        if not isinstance(body, dict) or sum(key in body for key in self.KEYS) != 1:
            raise InputError(f"the body must hold one of {', '.join(self.KEYS)}")
        self.key = next(key for key in self.KEYS if key in body)
        check_beside(body, self.key, ("params",))
        rows, prefix = self.rows_of(body[self.key])
        if not rows:
            raise InputError(f"{self.key} holds no rows", self.key)
        check_count(len(rows), max_rows, self.key)
        self.prefix = prefix
        self.rows = [self.schema.row(row, prefix(i))[0] for i, row in enumerate(rows)]

    def rows_of(self, value):
        """The rows a format's value holds, and each row's JSON path."""
        key = self.key
        if key == "dataframe_split":
            if not isinstance(value, dict) or not isinstance(value.get("data"), list):
                raise InputError("dataframe_split must be an object with data (and columns, index)", key)
            unknown = [name for name in value if name not in ("columns", "data", "index")]
            if unknown:
                raise InputError(f"unknown field {shown(unknown[0])} in dataframe_split", path(key, unknown[0]))
            if not isinstance(value.get("index", []), list):  # the rows' labels: not used
                raise InputError(f"dataframe_split.index must be an array, not {kind_of(value['index'])}", f"{key}.index")
            data = value["data"]
            if "columns" in value:
                data = split_rows(split_columns(value["columns"], self.schema), data)
            return data, lambda i: f"{key}.data[{i}]"
        if key == "inputs" and isinstance(value, dict):  # a column each: {"petal_width": [0.2, ...], ...}
            lengths = {len(v) if isinstance(v, list) else None for v in value.values()}
            if len(lengths) != 1 or None in lengths:
                raise InputError("inputs as columns must be arrays of one length", key)
            count = lengths.pop()
            return [{name: column[i] for name, column in value.items()} for i in range(count)], lambda i: f"{key}[{i}]"
        if not isinstance(value, list):
            raise InputError(f"{key} must be an array of rows, not {kind_of(value)}", key)
        return value, lambda i: f"{key}[{i}]"

    def where(self, i):
        return self.prefix(i)

    def answer(self, labels, probabilities):
        return {"predictions": labels}

    error = staticmethod(mlflow_error)


FORMATS = ("a row, an object of the fields; {\"instances\": [...]} (Vertex AI, KServe); {\"calls\": [...]} "
           "(BigQuery); {\"dataframe_split\": ...}, {\"dataframe_records\": [...]} or {\"inputs\": ...} (MLflow)")


# The keys each format's clients send, by the name an error gives the format (MLflow's instances
# are a batch here; at /invocations, MLflow's). `params`, which MLflow sends beside instances as
# beside its own keys, names neither. A key that holds rows says which format a body is in.
FORMAT_KEYS = {
    "BigQuery": ("calls", "userDefinedContext", "requestId", "caller", "sessionUser"),
    "Vertex AI, KServe": ("instances", "parameters"),
    "MLflow": ("dataframe_split", "dataframe_records", "inputs"),
}
FORMAT_OF_KEY = {key: name for name, keys in FORMAT_KEYS.items() for key in keys}
ROWS_KEYS = ("calls", "instances", "dataframe_split", "dataframe_records", "inputs")


def request_format(body, model, mlflow=False):
    """The format of a parsed POST body: at /invocations MLflow's alone, elsewhere any. A body with
    the keys of two formats is refused: answered as one of them, the other's rows would go unread."""
    if mlflow:
        return MLflow
    if not isinstance(body, dict):
        return Single
    rows_key = next((key for key in body if key in ROWS_KEYS), None)
    if rows_key is None:
        if body and not any(key in model.schema.by_key for key in body):
            raise InputError(f"the body is none of the formats this function reads: {FORMATS}")
        return Single
    named = FORMAT_OF_KEY[rows_key]
    for key in body:
        other = FORMAT_OF_KEY.get(key, "a row of fields" if key in model.schema.by_key else None)
        if other not in (None, named):
            raise InputError(f"the body mixes two formats: {rows_key} ({named}) and {key} ({other}); send one of them")
    return {"BigQuery": BigQuery, "Vertex AI, KServe": Batch, "MLflow": MLflow}[named]
