"""The CREATE FUNCTION statement for a BigQuery remote function backed by this bundle's model:
its arguments are model.json's fields in order, typed as BigQuery types them, and it returns the
class name (STRING) or the predicted value (FLOAT64).

    python scripts/bigquery_sql.py [model.json]    (make bigquery-sql)

PROJECT, DATASET, CONNECTION (location.name), REGION and FUNCTION (the Cloud Function's name)
fill in the names.
"""

import json
import os
import sys

# BigQuery sends a DATE as "2024-05-01" and a DATETIME as "2024-05-01T13:45:00", as a date field reads them.
SQL_TYPES = {"number": "FLOAT64", "integer": "INT64", "string": "STRING", "text": "STRING", "boolean": "BOOL",
             "date": "DATE", "datetime": "DATETIME"}


def statement(metadata, project, dataset, connection, region, function):
    arguments = ", ".join(f"{field['name']} {SQL_TYPES[field['type']]}" for field in metadata["fields"])
    regression = metadata["task"] == "regression"
    returns, reply = ("FLOAT64", "predicted_value") if regression else ("STRING", "class_name")
    name = metadata["name"].replace("-", "_")
    return f"""CREATE FUNCTION `{project}.{dataset}.{name}`(
  {arguments})
RETURNS {returns}
REMOTE WITH CONNECTION `{project}.{connection}`
OPTIONS (
  endpoint = 'https://{region}-{project}.cloudfunctions.net/{function}',
  max_batching_rows = 1000,
  user_defined_context = [("return", "{reply}")]
);"""


def main():
    metadata = json.loads(open(sys.argv[1] if len(sys.argv) > 1 else "model.json").read())
    env = os.environ.get
    print(statement(metadata, env("PROJECT") or "my_project", env("DATASET") or "my_dataset",
                    env("CONNECTION") or "us.my_connection", env("REGION") or "us-central1",
                    env("FUNCTION") or f"{metadata['name']}-function"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
