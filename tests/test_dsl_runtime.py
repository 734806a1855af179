"""The generated step programs run: each compiled script source is executed with python3,
inputs given as Argo would substitute them, and its output files are checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from chute.dsl import (
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
    compile_pipeline,
    component,
    pipeline,
    runtime,
)
from chute.dsl.loader import load_pipeline
from tests.conftest import REPO


def templates(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["spec"]["templates"]}


def run_template(tmpl: dict, root: Path, params: dict[str, str] | None = None,
                 artifacts: dict[str, Path] | None = None, check: bool = True):
    """Run a script template as Argo would: inputs into env, artifacts at their paths."""
    root.mkdir(parents=True, exist_ok=True)
    script = root / "script.py"
    script.write_text(tmpl["script"]["source"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHUTE_")}
    env["CHUTE_STEP_ROOT"] = str(root)
    given = dict(params or {})
    for p in tmpl.get("inputs", {}).get("parameters", []):
        if p["name"] not in given and "default" in p:
            given[p["name"]] = p["default"]
    for e in tmpl["script"].get("env", []):
        if "value" in e:
            value = e["value"]
            for name, v in given.items():  # the one substitution Argo does here
                value = value.replace("{{" + f"inputs.parameters.{name}" + "}}", v)
            env[e["name"]] = value
    for a in tmpl.get("inputs", {}).get("artifacts", []):
        dest = root / a["path"].lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        src = (artifacts or {})[a["name"]]
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest)
    proc = subprocess.run([sys.executable, *tmpl["script"]["command"][1:], str(script)],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def out_param(root: Path, tmpl: dict, name: str) -> str:
    (p,) = [p for p in tmpl["outputs"]["parameters"] if p["name"] == name]
    return (root / p["valueFrom"]["path"].lstrip("/")).read_text()


def out_art(root: Path, tmpl: dict, name: str) -> Path:
    (a,) = [a for a in tmpl["outputs"]["artifacts"] if a["name"] == name]
    return root / a["path"].lstrip("/")


def example(name: str) -> dict:
    return compile_pipeline(load_pipeline(str(REPO / "examples" / f"{name}.py")))


def test_hello_world_step_prints_and_returns(tmp_path):
    t = templates(example("hello_world"))["say-hello"]
    proc = run_template(t, tmp_path, {"name": "chute"})
    assert proc.stdout.strip() == "Hello, chute!"
    assert out_param(tmp_path, t, "Output") == "Hello, chute!"


def test_hostile_parameter_value_is_data_not_code(tmp_path):
    t = templates(example("hello_world"))["say-hello"]
    evil = "\"); import os; os.system('touch PWNED'); print(\"'''{}$(id)"
    run_template(t, tmp_path, {"name": evil})
    assert out_param(tmp_path, t, "Output") == f"Hello, {evil}!"
    assert not list(tmp_path.rglob("PWNED"))


def test_diamond_steps_chain_artifacts_and_write_metrics(tmp_path):
    ts = templates(example("diamond"))
    load = run_template(ts["load"], tmp_path / "load", {"rows": "5"})
    assert load.returncode == 0
    data = out_art(tmp_path / "load", ts["load"], "data")
    assert data.read_text().split() == ["0", "1", "2", "3", "4"]
    run_template(ts["summarize"], tmp_path / "sum", artifacts={"data": data})
    assert out_param(tmp_path / "sum", ts["summarize"], "Output") == "2.0"
    run_template(ts["scale"], tmp_path / "scale", {"factor": "3"}, artifacts={"data": data})
    assert out_param(tmp_path / "scale", ts["scale"], "Output") == "5"
    scaled = out_art(tmp_path / "scale", ts["scale"], "scaled")
    proc = run_template(ts["report"], tmp_path / "report", {"mean": "2.0", "count": "5"},
                        artifacts={"scaled": scaled})
    assert "mean=2.0 count=5 largest=12.0" in proc.stdout
    metrics = json.loads(out_art(tmp_path / "report", ts["report"], "metrics").read_text())
    assert metrics == {"mean": 2.0, "count": 5, "largest_scaled": 12.0}
    art = next(a for a in ts["report"]["outputs"]["artifacts"] if a["name"] == "metrics")
    assert art["archive"] == {"none": {}}
    types = json.loads(ts["report"]["metadata"]["annotations"]["chute.dev/artifact-types"])
    assert types == {"metrics": "system.Metrics"}


def test_loop_fan_in_steps_decode_lists_from_argo_aggregation(tmp_path):
    ts = templates(example("loop_fan_in"))
    run_template(ts["numbers"], tmp_path / "n", {"n": "4"})
    items = json.loads(out_param(tmp_path / "n", ts["numbers"], "Output"))
    assert items == [1, 2, 3, 4]
    squares = []
    for i, item in enumerate(items):  # withParam hands each item over as {{item}}
        run_template(ts["square"], tmp_path / f"sq{i}", {"x": str(item)})
        squares.append(out_param(tmp_path / f"sq{i}", ts["square"], "Output"))
    # Argo aggregates the iterations' outputs as a JSON list of their string values.
    run_template(ts["total"], tmp_path / "t", {"values": json.dumps(squares)})
    assert out_param(tmp_path / "t", ts["total"], "Output") == "30"
    run_template(ts["total"], tmp_path / "t2", {"values": "[1, 4, 9]"})
    assert out_param(tmp_path / "t2", ts["total"], "Output") == "14"


def test_conditional_and_exit_handler_steps(tmp_path):
    ts = templates(example("conditional"))
    run_template(ts["flip"], tmp_path / "f", {"seed": "1"})
    assert out_param(tmp_path / "f", ts["flip"], "Output") in ("heads", "tails", "edge")
    ts = templates(example("exit_handler"))
    proc = run_template(ts["work"], tmp_path / "w", {"fail": "true"}, check=False)
    assert proc.returncode == 1 and "failing on purpose" in proc.stderr
    proc = run_template(ts["cleanup"], tmp_path / "c", {"status": "Failed"})
    assert proc.stdout.strip() == "workflow finished: Failed"


def test_bad_input_value_fails_with_a_clear_message(tmp_path):
    ts = templates(example("diamond"))
    proc = run_template(ts["load"], tmp_path, {"rows": "many"}, check=False)
    assert proc.returncode == 1
    assert "chute: input parameter 'rows': expected int, got 'many'" in proc.stderr


@component
def kitchen_sink(flag: bool, ratio: float, tags: list, conf: dict, n: int = 2,
                 model: Output[Model] = None, cm: Output[ClassificationMetrics] = None):  # type: ignore[assignment]
    with open(model.path, "w") as fh:
        fh.write(f"{flag} {ratio} {tags} {sorted(conf)} {n}")
    model.framework = "none"
    cm.log_confusion_matrix(["a", "b"], [[3, 1], [0, 4]])
    cm.log_roc_curve([0.0, 0.5], [0.0, 0.9], [1.0, 0.5])


@component
def uses_model(model: Input[Model], m: Input[Metrics]) -> bool:
    return open(model.path).read().startswith("True") and m.metadata == {"x": 1}


def test_all_parameter_kinds_and_classification_metrics(tmp_path):
    @pipeline
    def p():
        kitchen_sink(flag=True, ratio=0.5, tags=["a", "b"], conf={"k": 1})

    t = templates(compile_pipeline(p))["kitchen-sink"]
    run_template(t, tmp_path, {"flag": "true", "ratio": "0.5", "tags": '["a", "b"]',
                               "conf": '{"k": 1}'})
    assert out_art(tmp_path, t, "model").read_text() == "True 0.5 ['a', 'b'] ['k'] 2"
    cm = json.loads(out_art(tmp_path, t, "cm").read_text())
    assert cm["confusionMatrix"] == {
        "annotationSpecs": [{"displayName": "a"}, {"displayName": "b"}],
        "rows": [{"row": [3, 1]}, {"row": [0, 4]}]}
    assert cm["confidenceMetrics"][1] == {"confidenceThreshold": 0.5, "recall": 0.9,
                                          "falsePositiveRate": 0.5}
    metrics = tmp_path / "m.json"
    metrics.write_text('{"x": 1}')

    @pipeline
    def q():
        k = kitchen_sink(flag=True, ratio=0.5, tags=[], conf={})
        uses_model(model=k.outputs["model"], m=metrics_source().outputs["m"])

    u = templates(compile_pipeline(q))["uses-model"]
    run_template(u, tmp_path / "u", artifacts={"model": out_art(tmp_path, t, "model"),
                                               "m": metrics})
    assert out_param(tmp_path / "u", u, "Output") == "true"


@component
def metrics_source(m: Output[Metrics]):
    m.log_metric("x", 1)


def test_missing_output_artifact_and_wrong_return_type_fail(tmp_path):
    @component
    def lazy(d: Output[Dataset]) -> int:
        return "not an int"  # type: ignore[return-value]

    @pipeline
    def p():
        lazy()

    t = templates(compile_pipeline(p))["lazy"]
    proc = run_template(t, tmp_path, check=False)
    assert proc.returncode == 1
    assert "output 'Output' is declared int, but the function returned str" in proc.stderr

    @component
    def forgetful(d: Output[Dataset]) -> int:
        return 1

    @pipeline
    def q():
        forgetful()

    t = templates(compile_pipeline(q))["forgetful"]
    proc = run_template(t, tmp_path / "f", check=False)
    assert proc.returncode == 1
    assert "output artifact 'd' was not written" in proc.stderr


class Out(NamedTuple):
    total: int
    names: list[str]


def test_namedtuple_outputs_written_per_field(tmp_path):
    @component
    def split(text: str) -> Out:
        from collections import namedtuple

        parts = text.split(",")
        return namedtuple("Out", "total names")(len(parts), parts)

    @pipeline
    def p():
        split(text="a,b")

    t = templates(compile_pipeline(p))["split"]
    run_template(t, tmp_path, {"text": "x,y,z"})
    assert out_param(tmp_path, t, "total") == "3"
    assert json.loads(out_param(tmp_path, t, "names")) == ["x", "y", "z"]


def test_package_guard_skips_installed_distributions(monkeypatch):
    assert runtime._requirement_present("PyYAML")
    assert runtime._requirement_present("pyyaml>=1.0") is False  # a range: let pip decide
    import importlib.metadata as md

    version = md.version("PyYAML")
    assert runtime._requirement_present(f"PyYAML=={version}")
    assert not runtime._requirement_present("PyYAML==0.0.1")
    assert not runtime._requirement_present("surely-not-installed-chute-pkg")
    calls = []
    result = subprocess.CompletedProcess([], 0)

    def fake_run(cmd, **kw):
        calls.append(cmd)
        return result

    monkeypatch.setattr(runtime.subprocess, "run", fake_run)
    runtime.install_packages(["PyYAML"])
    assert calls == []
    runtime.install_packages(["PyYAML", "surely-not-installed-chute-pkg==1.0"])
    assert calls and calls[0][1:5] == ["-m", "pip", "install", "--quiet"]
    assert calls[0][-1] == "surely-not-installed-chute-pkg==1.0"
    result.returncode = 1
    with pytest.raises(runtime.StepInputError, match="pip could not install"):
        runtime.install_packages(["surely-not-installed-chute-pkg"])


def test_runtime_is_standard_library_only_and_brace_free():
    import ast

    source = Path(runtime.__file__).read_text()
    assert "{{" not in source
    stdlib = set(sys.stdlib_module_names)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            assert all(a.name.split(".")[0] in stdlib for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.module == "__future__" or node.module.split(".")[0] in stdlib
