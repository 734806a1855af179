"""Metrics of SDK steps land in the metadata store (issue 5 item 5).

A real pipeline runs (compiled, engine, warm workers); its ``Output[Metrics]`` and
``Output[ClassificationMetrics]`` artifacts are parsed by the engine into rows of the
``metrics`` table against the workflow and node, which ``chute run``'s summary and the
server's metrics view read.
"""

from __future__ import annotations

import io

import pytest

pytest_plugins = ["tests.fixtures.server"]

PIPELINE = '''
from chute.dsl import ClassificationMetrics, Metrics, Output, component, pipeline


@component
def evaluate(scale: float, metrics: Output[Metrics], cls: Output[ClassificationMetrics]):
    metrics.log_metric("accuracy", 0.5 * scale)
    metrics.log_metric("n", 40)
    cls.log_confusion_matrix(["cat", "dog"], [[3, 1], [2, 4]])
    cls.log_roc_curve([0.0, 0.5, 1.0], [0.0, 0.8, 1.0], [1.0, 0.5, 0.0])


@component
def plain(x: int) -> int:
    return x + 1


@pipeline(name="metrics-demo")
def metrics_demo(scale: float = 1.5):
    evaluate(scale=scale)
    plain(x=1)
'''


def _console():
    from rich.console import Console

    return Console(file=io.StringIO(), width=120, force_terminal=False)


@pytest.fixture
def ran(chute_home, tmp_path):
    from chute.cli.run import run_pipeline

    f = tmp_path / "metrics_demo.py"
    f.write_text(PIPELINE)
    out = _console()
    row, nodes = run_pipeline(str(f), {"scale": "1.5"}, timeout=120, console=_console(),
                              out=out, live=False)
    assert row.phase == "Succeeded", [(n.display_name, n.phase, n.message) for n in nodes]
    return row, nodes, out.file.getvalue()


def test_metrics_rows_stored_against_run_and_node(ran):
    from chute.config import load_settings
    from chute.engine.metrics_store import node_metrics
    from chute.store.db import open_store

    row, nodes, summary = ran
    node_of = {n.display_name: n.node_id for n in nodes}
    store = open_store(load_settings())
    with store.read() as s:
        rows = node_metrics(s, row.uid)
        got = {(m.node_id, m.name): m for m in rows}
        assert {m.node_id for m in rows} == {node_of["evaluate"]}
        assert got[(node_of["evaluate"], "accuracy")].value == pytest.approx(0.75)
        assert got[(node_of["evaluate"], "n")].value == 40.0
        assert got[(node_of["evaluate"], "accuracy")].kind == "scalar"
        cm = got[(node_of["evaluate"], "confusion_matrix")]
        assert cm.kind == "confusion_matrix" and cm.value is None
        assert cm.data["categories"] == ["cat", "dog"] and cm.data["matrix"] == [[3, 1], [2, 4]]
        assert cm.data["artifact"] == "cls"
        roc = got[(node_of["evaluate"], "roc_curve")]
        assert roc.kind == "roc_curve" and len(roc.data["points"]) == 3
        assert roc.data["points"][1]["recall"] == 0.8
    # chute run's summary reads the table: the scalar rows are shown per step
    lines = [line.split() for line in summary.replace("│", " ").splitlines()]
    assert ["evaluate", "accuracy", "0.75"] in lines and ["evaluate", "n", "40"] in lines


def test_server_metrics_route_reads_the_table_once(ran, api):
    row, _nodes, _ = ran
    m = api.get(f"/api/v1/runs/{row.name}/metrics").json()
    assert m["scalars"] == {"accuracy": pytest.approx(0.75), "n": 40.0}
    assert len(m["confusion"]) == 1 and len(m["roc"]) == 1  # not again from the artifact
    assert m["confusion"][0]["labels"] == ["cat", "dog"]
    assert m["confusion"][0]["matrix"] == [[3, 1], [2, 4]]
    assert [p["y"] for p in m["roc"][0]["points"]] == [0.0, 0.8, 1.0]


def test_bad_metrics_file_is_skipped_not_fatal(chute_home, tmp_path):
    from chute.artifacts import ArtifactRepository
    from chute.artifacts.repository import ArtifactRecord
    from chute.engine.metrics_store import metric_rows

    good = tmp_path / "m.json"
    good.write_text('{"loss": 0.25}')
    bad = tmp_path / "b.json"
    bad.write_text('{"loss": "high"}')
    tmpl = {"metadata": {"annotations": {"chute.dev/artifact-types":
                                         '{"m": "system.Metrics", "b": "system.Metrics", '
                                         '"d": "system.Dataset"}'}}}

    def rec(name, path):
        return ArtifactRecord(name=name, key=f"k/{name}", repository="file:///x", archive="none",
                              is_dir=False, size=1, digest="sha256:0", filename=name,
                              path=path)
    records = {"m": rec("m", "/tmp/m.json"), "b": rec("b", "/tmp/b.json"),
               "d": rec("d", "/tmp/d.json")}
    outputs = {"/tmp/m.json": str(good), "/tmp/b.json": str(bad)}
    rows = metric_rows(tmpl, records, outputs, ArtifactRepository.from_settings(),
                       workflow_uid="u", node_id="n")
    assert [(r.name, r.value, r.node_id, r.workflow_uid) for r in rows] == [
        ("loss", 0.25, "n", "u")]
