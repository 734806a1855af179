"""The fraud-detection pipeline compiles to valid Argo: the shape the issue asks for."""

from __future__ import annotations

import json

import pytest
import yaml

from chute.dsl.compiler import compile_to_yaml
from chute.dsl.loader import load_pipeline
from tests.conftest import REPO

PIPELINE = REPO / "examples" / "fraud_detection" / "pipeline.py"


@pytest.fixture(scope="module")
def doc() -> dict:
    return yaml.safe_load(compile_to_yaml(load_pipeline(str(PIPELINE))))


def test_validates_against_argo_schema_and_chute_lint(doc, argo_dir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((argo_dir / "schema.json").read_text())
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}"
              for e in jsonschema.Draft202012Validator(schema).iter_errors(doc)]
    assert errors == []
    from chute.spec.loader import load_documents
    from chute.spec.validate import validate

    (resource,) = load_documents(yaml.safe_dump(doc), source="fraud.yaml")
    assert validate(resource) == [] and validate(resource, runtime="local") == []


def test_shape(doc):
    main = next(t for t in doc["spec"]["templates"] if t["name"] == doc["spec"]["entrypoint"])
    tasks = {t["name"]: t for t in main["dag"]["tasks"]}
    # the two ingest steps depend on nothing: they run in parallel
    assert not tasks["ingest-csv"].get("dependencies") and not tasks["ingest-s3"].get("dependencies")
    # the tuning stage is conditional on the decision, in two rounds
    for name in ("tune-ask", "tune-tell", "tune-ask-2", "tune-tell-2"):
        assert "tasks.decide.outputs.parameters.Output" in tasks[name]["when"]
    assert "tune-tell" in tasks["tune-ask-2"]["dependencies"]
    assert "tune-tell-2" in tasks["train"]["dependencies"]
    # credentials never appear in the spec: only the secret's name is a parameter
    params = {p["name"]: p.get("value") for p in doc["spec"]["arguments"]["parameters"]}
    assert params["s3_secret"] == "fraud-s3" and params["s3_bucket"] == ""
    text = yaml.safe_dump(doc)
    assert "secret_key:" not in text and "AWS_SECRET_ACCESS_KEY=" not in text
    assert params["tune"] == "auto"
