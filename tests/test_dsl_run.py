"""`chute run`: compile a Python pipeline, run it on the local engine, report the outcome;
and the metrics-file reader the engine and UI use."""

from __future__ import annotations

import io
import json

import pytest

from chute.dsl.metrics import (
    CLASSIFICATION,
    METRICS,
    MetricRecord,
    metrics_artifacts,
    parse_metrics,
)
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _console():
    from rich.console import Console

    return Console(file=io.StringIO(), width=120, force_terminal=False)


@pytest.fixture
def engine(chute_home):
    pytest.importorskip("chute.engine.controller")
    pytest.importorskip("chute.engine.submit")
    from chute.cli.run import run_pipeline

    return run_pipeline


def _outputs(nodes) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in nodes:
        if n.type == "Pod":
            for p in (n.outputs or {}).get("parameters", []) or []:
                out.setdefault(f"{n.display_name}.{p['name']}", []).append(p.get("value"))
    return out


def test_run_loop_fan_in_to_the_expected_sum(engine):
    console = _console()
    row, nodes = engine(str(EXAMPLES / "loop_fan_in.py"), {"n": "5"}, timeout=120,
                        console=console, live=False)
    assert row.phase == "Succeeded"
    outs = _outputs(nodes)
    assert outs["total.Output"] == ["55"]
    assert sorted(outs["square.Output"], key=int) == ["1", "4", "9", "16", "25"]
    text = console.file.getvalue()
    assert "✔ total" in text and "loop-fan-in-" in text and ": Succeeded" in text


def test_run_conditional_and_exit_handler(engine):
    row, nodes = engine(str(EXAMPLES / "conditional.py"), {"seed": "1", "mode": "loud"},
                        timeout=120, console=_console(), live=False)
    assert row.phase == "Succeeded"
    phases = {n.display_name: n.phase for n in nodes}
    coin = _outputs(nodes)["flip.Output"][0]
    branch = {"heads": "announce", "tails": "announce-2", "edge": "announce-3"}[coin]
    assert phases[branch] == "Succeeded"
    assert sorted(k for k in ("announce", "announce-2", "announce-3")
                  if phases[k] == "Skipped") == sorted(
        {"announce", "announce-2", "announce-3"} - {branch})
    assert phases["announce-4"] == "Succeeded"  # mode=loud

    console = _console()
    row, nodes = engine(str(EXAMPLES / "exit_handler.py"), {"fail": "true"}, timeout=120,
                        console=console, live=False)
    assert row.phase == "Failed"
    text = console.file.getvalue()
    assert "work failed" in text and "failing on purpose" in text  # the step's log tail
    phases = {n.display_name: n.phase for n in nodes}
    assert phases["work"] in ("Failed", "Error") and phases["cleanup"] == "Succeeded"


def test_run_diamond_passes_artifacts_and_records_metrics(engine):
    console = _console()
    row, nodes = engine(str(EXAMPLES / "diamond.py"), {"rows": "5", "factor": "3"},
                        timeout=120, console=console, live=False)
    by_name = {n.display_name: n for n in nodes}
    if "artifacts" not in (by_name["load"].outputs or {}):
        pytest.skip("the engine does not save output artifacts yet")
    assert row.phase == "Succeeded", [(n.display_name, n.phase, n.message) for n in nodes]
    outs = _outputs(nodes)
    assert outs["summarize.Output"] == ["2.0"] and outs["scale.Output"] == ["5"]
    assert [a["name"] for a in by_name["report"].outputs["artifacts"]] == ["metrics"]
    text = console.file.getvalue()  # the summary's metrics table: mean 2, count 5, max 12
    for metric, value in (("mean", "2"), ("count", "5"), ("largest_scaled", "12")):
        assert any(line.split() == ["report", metric, value]
                   for line in text.replace("│", " ").splitlines()), text


def test_run_cli_exit_codes_and_parameter_errors(engine, capsys):
    from chute.cli.app import main

    assert main(["run", str(EXAMPLES / "hello_world.py"), "-p", "name=tests"]) == 0
    assert main(["run", str(EXAMPLES / "exit_handler.py"), "-p", "fail=true"]) == 1
    assert main(["run", str(EXAMPLES / "hello_world.py"), "-p", "nope"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_parse_scalar_and_classification_metrics():
    assert parse_metrics(METRICS, '{"accuracy": 0.9, "n": 3}') == [
        MetricRecord("accuracy", 0.9), MetricRecord("n", 3.0)]
    records = parse_metrics(CLASSIFICATION, json.dumps({
        "confusionMatrix": {"annotationSpecs": [{"displayName": "a"}, {"displayName": "b"}],
                            "rows": [{"row": [1, 2]}, {"row": [3, 4]}]},
        "confidenceMetrics": [{"confidenceThreshold": 0.5, "recall": 1, "falsePositiveRate": 0}],
    }))
    assert records[0] == MetricRecord("confusion_matrix", None, "confusion_matrix",
                                      {"categories": ["a", "b"], "matrix": [[1, 2], [3, 4]]})
    assert records[1].kind == "roc_curve" and len(records[1].data["points"]) == 1
    for bad in ('{"a": "x"}', '{"a": true}', "[1]", "not json", '{"a": Infinity}'):
        with pytest.raises(ValueError):
            parse_metrics(METRICS, bad)
    with pytest.raises(ValueError, match="square"):
        parse_metrics(CLASSIFICATION, '{"confusionMatrix": {"annotationSpecs": '
                                      '[{"displayName": "a"}], "rows": []}}')


def test_metrics_artifacts_read_from_a_compiled_template():
    from chute.dsl.compiler import compile_pipeline
    from chute.dsl.loader import load_pipeline

    doc = compile_pipeline(load_pipeline(str(EXAMPLES / "diamond.py")))
    found = {t["name"]: metrics_artifacts(t) for t in doc["spec"]["templates"]}
    assert found["report"] == {"metrics": METRICS}
    assert found["load"] == {} and found["diamond"] == {}


def test_ctrl_c_leaves_the_run_to_a_controller(engine, tmp_path, chute_home):
    import os
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "slow.py"
    src.write_text(
        "from chute.dsl import component, pipeline\n"
        "@component\n"
        "def nap(s: float) -> str:\n"
        "    import time\n"
        "    time.sleep(s)\n"
        "    return 'rested'\n"
        "@pipeline(name='slow')\n"
        "def slow():\n"
        "    nap(s=8.0)\n")
    env = dict(os.environ, CHUTE_HOME=str(chute_home))
    # as a terminal's foreground job: SIGINT at its default. A test run started in the
    # background of a non-interactive shell (`pytest &`) ignores SIGINT, and an ignored
    # disposition survives exec: `chute run`, rightly, would then ignore the Ctrl-C too.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "run", str(src)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=REPO)
    finally:
        signal.signal(signal.SIGINT, before)
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    deadline = time.time() + 60
    while time.time() < deadline:  # interrupt once the step runs (imports take seconds)
        time.sleep(0.3)
        if not (chute_home / "chute.db").exists():
            continue
        store = open_store(load_settings())
        with store.read() as s:
            if any(n.type == "Pod" and n.phase == "Running"
                   for w in q.list_workflows(s) for n in q.nodes_of(s, w.uid)):
                break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert "interrupted: slow-" in err and "chute controller" in err
