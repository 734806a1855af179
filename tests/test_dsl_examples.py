"""The SDK examples: compiled YAML is valid Argo, loads and validates in chute.spec, and
matches the golden files in examples/compiled/ (regenerate with CHUTE_REGEN_GOLDEN=1)."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from chute.dsl.compiler import compile_pipeline, compile_to_yaml
from chute.dsl.loader import load_pipeline
from tests.conftest import REPO

EXAMPLES = ["hello_world", "diamond", "loop_fan_in", "conditional", "exit_handler"]
COMPILED = REPO / "examples" / "compiled"


@pytest.fixture(scope="module")
def validator(argo_dir):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((argo_dir / "schema.json").read_text())
    return jsonschema.Draft202012Validator(schema)


def compiled_text(name: str, kind: str = "Workflow") -> str:
    return compile_to_yaml(load_pipeline(str(REPO / "examples" / f"{name}.py")), kind=kind)


@pytest.mark.parametrize("name", EXAMPLES)
def test_golden_file_in_sync(name):
    text = compiled_text(name)
    golden = COMPILED / f"{name}.yaml"
    if os.environ.get("CHUTE_REGEN_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.is_file(), f"{golden} missing: run with CHUTE_REGEN_GOLDEN=1"
    assert golden.read_text(encoding="utf-8") == text, (
        f"{golden} is out of date: rerun with CHUTE_REGEN_GOLDEN=1 and commit it")


@pytest.mark.parametrize("kind", ["Workflow", "WorkflowTemplate"])
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_validates_against_argo_schema(name, kind, validator):
    doc = yaml.safe_load(compiled_text(name, kind))
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]
    assert errors == []
    assert doc["kind"] == kind
    meta = doc["metadata"]
    assert ("name" in meta) == (kind == "WorkflowTemplate")
    assert ("generateName" in meta) == (kind == "Workflow")


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_loads_and_validates_in_chute_spec(name):
    loader = pytest.importorskip("chute.spec.loader")
    validate = pytest.importorskip("chute.spec.validate")
    (resource,) = loader.load_documents(compiled_text(name), source=f"{name}.yaml")
    assert resource.kind == "Workflow"
    assert validate.validate(resource) == []
    assert validate.validate(resource, runtime="local") == []


def test_golden_files_are_the_examples_and_nothing_else():
    assert sorted(p.stem for p in COMPILED.glob("*.yaml")) == sorted(EXAMPLES)


def test_script_sources_never_hold_a_template_brace_pair_beyond_env():
    """Argo substitutes {{...}} anywhere in a template; inputs reach the script through env."""
    for name in EXAMPLES:
        doc = compile_pipeline(load_pipeline(str(REPO / "examples" / f"{name}.py")))
        for tmpl in doc["spec"]["templates"]:
            if "script" in tmpl:
                assert "{{" not in tmpl["script"]["source"], (name, tmpl["name"])
                for env in tmpl["script"].get("env", []):
                    if env["name"].startswith("CHUTE_INPUT_"):
                        key = env["name"].removeprefix("CHUTE_INPUT_")
                        assert env["value"] == "{{" + f"inputs.parameters.{key}" + "}}"


def test_golden_files_pass_chute_lint(capsys):
    pytest.importorskip("chute.cli.lint")
    from chute.cli.app import main

    files = [str(COMPILED / f"{name}.yaml") for name in EXAMPLES]
    assert main(["lint", "--runtime", "local", *files]) == 0
    assert capsys.readouterr().out.count(": ok") == len(EXAMPLES)
