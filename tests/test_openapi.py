"""The OpenAPI document: valid, generated from the metadata, and true of the live API."""

import re
import subprocess
import sys
from pathlib import Path

from openapi_spec_validator import validate

from conftest import ROOT, TUTORIAL_ROW, field_names

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def test_document_is_valid_openapi_3_1(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_served_at_openapi_json_and_query(client):
    assert client.get("/openapi.json").get_json() == client.get("/?openapi").get_json()


def test_fields_and_classes_come_from_the_metadata(client, metadata):
    schemas = client.get("/openapi.json").get_json()["components"]["schemas"]
    assert list(schemas["Row"]["properties"]) == field_names(metadata)
    assert schemas["Row"]["required"] == field_names(metadata)
    assert schemas["Answer"]["properties"]["class_name"]["enum"] == metadata["class_names"]
    assert list(schemas["Answer"]["properties"]["probabilities"]["properties"]) == metadata["class_names"]


def test_example_in_the_document_predicts(client):
    document = client.get("/openapi.json").get_json()
    example = document["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert example == TUTORIAL_ROW
    assert client.post("/", json=example).status_code == 200


def test_generated_requests_against_the_live_server(server, tmp_path):
    """schemathesis sends at least 1000 generated requests (200 an operation), valid and invalid, with every check it
    has (each is on by default; tests/schemathesis.toml says where and why one is not): never a
    5xx, every answer as the document says, bad data refused and good data accepted."""
    result = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run",
         f"{server.url}openapi.json", "--max-examples", "200",
         "--seed", "1", "--workers", "1"],
        # A fixed seed and a count, not a time budget, so the same cases run on any machine
        # (some 3,800 of them); the timeout bounds the run. One worker: Python 3.11's ast.parse,
        # which hypothesis calls, is not safe in two threads at once. Its cache stays out of the repository.
        capture_output=True, text=True, timeout=400, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    generated = int(re.search(r"(\d+) generated", result.stdout).group(1))
    assert generated >= 1000, result.stdout[-2000:]
