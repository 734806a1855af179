"""What the compiler emits for each DSL feature, checked field by field, and `chute compile`."""

from __future__ import annotations

import json
import re
from typing import Literal

import pytest
import yaml

from chute import dsl
from chute.cli.app import main
from chute.dsl import (
    Collected,
    Dataset,
    If,
    Input,
    Output,
    ParallelFor,
    compile_pipeline,
    component,
    pipeline,
)


@component
def count(n: int) -> int:
    return n


@component
def echo(text: str) -> str:
    return text


@component
def make_list(n: int) -> list[int]:
    return list(range(n))


@component
def produce(d: Output[Dataset]) -> int:
    with open(d.path, "w") as fh:
        fh.write("x")
    return 1


@component
def consume(d: Input[Dataset], k: int = 3) -> int:
    return k


@component(image="python:3.12-slim", packages=["numpy==1.26.4"], retries=2, timeout=90,
           cpu="500m", memory="1Gi", env={"MODE": "fast"},
           secrets={"API_TOKEN": ("api-secret", "token")})
def configured(x: int) -> int:
    return x


def tmpl(doc: dict, name: str) -> dict:
    (t,) = [t for t in doc["spec"]["templates"] if t["name"] == name]
    return t


def tasks(doc: dict, name: str) -> dict[str, dict]:
    return {t["name"]: t for t in tmpl(doc, name)["dag"]["tasks"]}


@pytest.fixture(scope="module")
def validator(argo_dir):
    jsonschema = pytest.importorskip("jsonschema")
    return jsonschema.Draft202012Validator(json.loads((argo_dir / "schema.json").read_text()))


def assert_valid(doc: dict, validator) -> None:
    assert [e.message for e in validator.iter_errors(doc)] == []
    try:
        from chute.spec.loader import load_documents
        from chute.spec.validate import validate
    except ImportError:
        return
    (res,) = load_documents(dsl.compile_to_yaml(_last[0]))
    assert validate(res) == []


_last: list = [None]


def compiled(p) -> dict:
    _last[0] = p
    return compile_pipeline(p)


def test_component_options_map_to_template_fields(validator):
    @pipeline(name="opts")
    def p():
        configured(x=1)

    doc = compiled(p)
    t = tmpl(doc, "configured")
    assert t["retryStrategy"] == {"limit": "2"}
    assert t["activeDeadlineSeconds"] == "90"  # IntOrString: emitted as a string
    s = t["script"]
    assert s["image"] == "python:3.12-slim" and s["command"] == ["python3"]
    assert s["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                              "limits": {"cpu": "500m", "memory": "1Gi"}}
    env = {e["name"]: e for e in s["env"]}
    assert env["CHUTE_INPUT_x"]["value"] == "{{inputs.parameters.x}}"
    assert env["MODE"]["value"] == "fast"
    assert env["API_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "api-secret",
                                                              "key": "token"}}
    assert '"packages": ["numpy==1.26.4"]' in s["source"]
    assert_valid(doc, validator)


def test_memoize_key_and_when_it_is_left_out(validator):
    @pipeline
    def p():
        count(n=1)
        count(n=2).set_caching(False)
        d = produce()
        consume(d=d.outputs["d"])

    doc = compiled(p)
    m = tmpl(doc, "count")["memoize"]
    assert re.fullmatch(
        r"count-[0-9a-f]{12}-\{\{=sprig\.sha256sum\(toJson\(\[inputs\.parameters\.n\]\)\)\}\}",
        m["key"])
    assert m["cache"] == {"configMap": {"name": "chute-cache"}} and m["maxAge"] == ""
    assert "memoize" not in tmpl(doc, "count-2")  # set_caching(False): its own template
    assert tasks(doc, "p")["count-2"]["template"] == "count-2"
    assert "memoize" in tmpl(doc, "produce")
    assert "memoize" not in tmpl(doc, "consume")  # reads an artifact: a key cannot see it
    assert tmpl(doc, "consume")["inputs"]["parameters"] == [{"name": "k", "default": "3"}]
    assert_valid(doc, validator)


def test_memoize_key_is_a_valid_argo_cache_key_after_substitution():
    from chute.spec import templating

    @pipeline
    def p():
        echo(text="x")

    key = tmpl(compiled(p), "echo")["memoize"]["key"]
    value = templating.substitute(key, {"inputs.parameters.text": "hello world / ünïcode"})
    assert re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9]*", value), value


def test_set_retry_with_backoff():
    @pipeline
    def p():
        count(n=1).set_retry(3, backoff_duration="5s", backoff_factor=2,
                             backoff_max_duration="1m", policy="Always")

    t = tmpl(compiled(p), "count")
    assert t["retryStrategy"] == {"limit": "3", "retryPolicy": "Always",
                                  "backoff": {"duration": "5s", "factor": "2",
                                              "maxDuration": "1m"}}


def test_after_adds_dependencies_and_references_add_them_too():
    @pipeline
    def p():
        a = count(n=1)
        b = echo(text="x").after(a)
        count(n=a.output).after(b)

    ts = tasks(compiled(p), "p")
    assert ts["echo"]["dependencies"] == ["count"]
    assert ts["count-2"]["dependencies"] == ["count", "echo"]
    assert "dependencies" not in ts["count"]


def test_pipeline_parameters_with_enum_and_template_kind(validator):
    @pipeline(name="params")
    def p(mode: Literal["a", "b"] = "a", n: int = 2, xs: list = [1, 2],  # noqa: B006
          flag: bool = True,
          required: str = "x"):
        echo(text=mode)

    doc = compile_pipeline(p, kind="WorkflowTemplate")
    assert doc["kind"] == "WorkflowTemplate" and doc["metadata"] == {"name": "params"}
    assert doc["spec"]["arguments"]["parameters"] == [
        {"name": "mode", "value": "a", "enum": ["a", "b"]},
        {"name": "n", "value": "2"},
        {"name": "xs", "value": "[1, 2]"},
        {"name": "flag", "value": "true"},
        {"name": "required", "value": "x"},
    ]
    assert tasks(doc, "params")["echo"]["arguments"]["parameters"] == [
        {"name": "text", "value": "{{workflow.parameters.mode}}"}]
    assert [e.message for e in validator.iter_errors(doc)] == []


def test_static_loop_of_dicts_with_item_keys_and_condition_inside(validator):
    @pipeline
    def p(limit: int = 5):
        with ParallelFor([{"name": "a", "n": 1}, {"name": "b", "n": 7}]) as item:
            c = count(n=item.n)
            with If(c.output > 3):
                echo(text=item["name"])

    doc = compiled(p)
    loop = tasks(doc, "p")["for-loop"]
    assert loop["template"] == "for-loop"
    assert loop["withItems"] == [{"name": "a", "n": 1}, {"name": "b", "n": 7}]
    args = {a["name"]: a["value"] for a in loop["arguments"]["parameters"]}
    assert args == {"for-loop-item-n": "{{item.n}}", "for-loop-item-name": "{{item.name}}"}
    body = tasks(doc, "for-loop")
    assert body["count"]["arguments"]["parameters"][0]["value"] == \
        "{{inputs.parameters.for-loop-item-n}}"
    assert body["echo"]["when"] == "{{tasks.count.outputs.parameters.Output}} > 3"
    assert body["echo"]["dependencies"] == ["count"]
    assert_valid(doc, validator)


def test_nested_loops_pass_outer_values_down_and_parallelism_wraps(validator):
    @pipeline
    def p(n: int = 3):
        base = count(n=n)
        with ParallelFor(make_list(n=n).output, parallelism=2) as i:  # noqa: SIM117
            with ParallelFor([10, 20]) as j:
                consume(d=produce().outputs["d"], k=base.output)
                count(n=i)
                count(n=j)

    doc = compiled(p)
    root = tasks(doc, "p")
    outer = root["for-loop"]
    assert outer["template"] == "for-loop"
    assert sorted(outer["dependencies"]) == ["count", "make-list"]
    wrapper = tmpl(doc, "for-loop")
    assert wrapper["parallelism"] == 2
    (it,) = wrapper["dag"]["tasks"]
    assert it["withParam"] == "{{inputs.parameters.loop-items}}"
    assert it["template"] == "for-loop-iteration"
    outer_args = {a["name"]: a["value"] for a in outer["arguments"]["parameters"]}
    assert outer_args == {"count-Output": "{{tasks.count.outputs.parameters.Output}}",
                          "loop-items": "{{tasks.make-list.outputs.parameters.Output}}"}
    inner = tasks(doc, "for-loop-iteration")["for-loop-2"]
    inner_args = {a["name"]: a["value"] for a in inner["arguments"]["parameters"]}
    assert inner_args == {"count-Output": "{{inputs.parameters.count-Output}}",
                          "for-loop-item": "{{inputs.parameters.for-loop-item}}",
                          "for-loop-2-item": "{{item}}"}
    assert inner["withItems"] == [10, 20]
    leaf = tasks(doc, "for-loop-2")
    assert leaf["consume"]["arguments"]["parameters"] == [
        {"name": "k", "value": "{{inputs.parameters.count-Output}}"}]
    assert leaf["consume"]["dependencies"] == ["produce"]
    values = {t["name"]: t["arguments"]["parameters"][0]["value"] for t in leaf.values()
              if t["template"] == "count"}
    assert values == {"count-2": "{{inputs.parameters.for-loop-item}}",
                      "count-3": "{{inputs.parameters.for-loop-2-item}}"}
    assert_valid(doc, validator)


def test_collected_exports_through_the_parallelism_wrapper(validator):
    @component
    def total(values: list[int]) -> int:
        return sum(values)

    @pipeline
    def p():
        with ParallelFor([1, 2, 3], parallelism=1) as x:
            sq = count(n=x)
        total(values=Collected(sq.output))

    doc = compiled(p)
    assert tasks(doc, "p")["total"]["arguments"]["parameters"] == [
        {"name": "values", "value": "{{tasks.for-loop.outputs.parameters.count-Output}}"}]
    assert tmpl(doc, "for-loop")["outputs"]["parameters"] == [
        {"name": "count-Output",
         "valueFrom": {"parameter": "{{tasks.iteration.outputs.parameters.count-Output}}"}}]
    assert tmpl(doc, "for-loop-iteration")["outputs"]["parameters"] == [
        {"name": "count-Output",
         "valueFrom": {"parameter": "{{tasks.count.outputs.parameters.Output}}"}}]
    assert "total" in tasks(doc, "p") and tasks(doc, "p")["total"]["dependencies"] == \
        ["for-loop"]
    assert_valid(doc, validator)


def test_exit_handler_becomes_on_exit_with_workflow_status(validator):
    @pipeline(name="cleanup-demo")
    def p(who: str = "me"):
        bye = echo(text=dsl.WORKFLOW_STATUS)
        with dsl.ExitHandler(bye):
            echo(text=who)

    doc = compiled(p)
    assert doc["spec"]["onExit"] == "on-exit"
    (t,) = tmpl(doc, "on-exit")["dag"]["tasks"]
    assert t["arguments"]["parameters"] == [{"name": "text", "value": "{{workflow.status}}"}]
    assert list(tasks(doc, "cleanup-demo")) == ["echo-2"]
    assert_valid(doc, validator)


def test_names_are_unique_across_templates():
    @component
    def same_name(x: int) -> int:
        return x

    @pipeline(name="same-name")
    def p():
        same_name(x=1)

    doc = compiled(p)
    names = [t["name"] for t in doc["spec"]["templates"]]
    assert names == ["same-name", "same-name-2"]
    assert doc["spec"]["entrypoint"] == "same-name"


def test_public_api_is_pinned():
    assert sorted(dsl.__all__) == sorted([
        "HTML", "WORKFLOW_NAME", "WORKFLOW_STATUS", "WORKFLOW_UID", "Artifact",
        "ClassificationMetrics", "Collected", "Component", "Condition", "Dataset", "Elif",
        "Else", "ExitHandler", "If", "Input", "Markdown", "Metrics", "Model", "Output",
        "ParallelFor", "Pipeline", "PipelineError", "PipelineTask", "compile_pipeline",
        "compile_to_yaml", "component", "pipeline"])
    for name in dsl.__all__:
        assert getattr(dsl, name) is not None


def test_cli_compile_writes_yaml_and_reports_errors(tmp_path, capsys):
    src = tmp_path / "pipe.py"
    src.write_text(
        "from chute.dsl import component, pipeline\n"
        "@component\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "@pipeline(name='adder')\n"
        "def adder(x: int = 1):\n"
        "    add(a=x, b=2)\n"
        "@pipeline(name='broken')\n"
        "def broken():\n"
        "    add(a='one', b=2)\n")
    out = tmp_path / "out" / "adder.yaml"
    assert main(["compile", f"{src}:adder", "-o", str(out)]) == 0
    doc = yaml.safe_load(out.read_text())
    assert doc["kind"] == "Workflow" and doc["metadata"]["generateName"] == "adder-"
    assert main(["compile", f"{src}:adder", "--template"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "WorkflowTemplate"
    bad = tmp_path / "bad.yaml"
    assert main(["compile", f"{src}:broken", "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "pipe.py:10: add(): parameter 'a' expects int, got str 'one'" in err
    assert not bad.exists()
    assert main(["compile", str(src)]) == 2
    assert "defines 2 pipelines (adder, broken)" in capsys.readouterr().err
    assert main(["compile", f"{src}:nope"]) == 2
    assert main(["compile", str(tmp_path / "missing.py")]) == 2


def test_loop_over_a_list_parameter_and_branches_on_bool_outputs(validator):
    @component
    def is_big(n: int) -> bool:
        return n > 10

    @pipeline(name="branches")
    def p(xs: list = [1, 20]):  # noqa: B006 - a pipeline parameter default
        with ParallelFor(xs) as x:
            big = is_big(n=x)
            with If(big.output):
                echo(text="big")
            with dsl.Elif(big.output == False):
                echo(text="small")
            with dsl.Else():
                echo(text=dsl.WORKFLOW_NAME)

    doc = compiled(p)
    loop = tasks(doc, "branches")["for-loop"]
    assert loop["withParam"] == "{{workflow.parameters.xs}}"
    body = tasks(doc, "for-loop")
    out = "'{{tasks.is-big.outputs.parameters.Output}}'"
    assert body["echo"]["when"] == f"{out} == 'true'"
    assert body["echo-2"]["when"] == f"!({out} == 'true') && ({out} == 'false')"
    assert body["echo-3"]["when"] == f"!({out} == 'true') && !({out} == 'false')"
    assert body["echo-3"]["arguments"]["parameters"][0]["value"] == "{{workflow.name}}"
    assert all(body[n]["dependencies"] == ["is-big"] for n in ("echo", "echo-2", "echo-3"))
    assert_valid(doc, validator)


def test_quote_in_a_condition_constant_is_refused():
    @pipeline
    def p():
        with If(echo(text="x").output == "it's"):
            echo(text="y")

    with pytest.raises(dsl.PipelineError, match="cannot contain a quote"):
        compile_pipeline(p)


def test_task_level_env_and_resources_get_their_own_template():
    @pipeline
    def p():
        count(n=1)
        count(n=2).set_env_variable("LEVEL", "debug").set_cpu_limit(2).set_memory_limit("3Gi")
        count(n=3)

    doc = compiled(p)
    ts = tasks(doc, "p")
    assert ts["count"]["template"] == ts["count-3"]["template"] == "count"
    assert ts["count-2"]["template"] == "count-2"
    s = tmpl(doc, "count-2")["script"]
    assert {"name": "LEVEL", "value": "debug"} in s["env"]
    assert s["resources"]["limits"] == {"cpu": "2", "memory": "3Gi"}
    assert "resources" not in tmpl(doc, "count")["script"]
    # a different environment is a different cache namespace
    assert tmpl(doc, "count")["memoize"]["key"] != tmpl(doc, "count-2")["memoize"]["key"]


@component
def braces() -> str:
    return "{{literal}}"  # Argo would substitute a double brace anywhere in the template


def test_double_brace_in_a_component_source_is_refused_with_its_line():
    @pipeline
    def p():
        braces()

    with pytest.raises(dsl.PipelineError) as info:
        compile_pipeline(p)
    assert "its source contains '{{', which Argo would take for a template tag" in str(
        info.value)
    assert info.value.location.endswith("test_dsl_compile.py:" + str(
        braces.fn.__code__.co_firstlineno))
