"""Artifact lineage (issue 8 item 5): producer and consumers of each artifact, recorded
by the engine, queried from Python and shown by ``chute get``.

Real CLI, real SQLite file, real step processes: an Argo DAG passes one artifact to two
consumers (``from``), and an SDK pipeline wires ``Output[Dataset]`` into ``Input[...]``.
"""

from __future__ import annotations

import io

import pytest

from tests.conftest import REPO
from tests.fixtures.cli import run  # noqa: F401 - the `run` fixture

FANOUT = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: fanout}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: make, template: make}
      - name: left
        template: use
        dependencies: [make]
        arguments: {artifacts: [{name: data, from: "{{tasks.make.outputs.artifacts.data}}"}]}
      - name: right
        template: use
        dependencies: [make]
        arguments: {artifacts: [{name: data, from: "{{tasks.make.outputs.artifacts.data}}"}]}
      - {name: lonely, template: make}
  - name: make
    container:
      image: alpine
      command: [sh, -c, "echo payload > /tmp/data.txt"]
    outputs:
      artifacts: [{name: data, path: /tmp/data.txt}]
  - name: use
    inputs:
      artifacts: [{name: data, path: /tmp/in.txt}]
    container:
      image: alpine
      command: [sh, -c, "cat /tmp/in.txt"]
"""


def _store():
    from chute.config import load_settings
    from chute.store.db import open_store

    return open_store(load_settings())


def test_from_artifact_records_producer_and_consumers(run, tmp_path):
    from chute.engine.lineage import artifact_lineage
    from chute.errors import NotFoundError

    f = tmp_path / "fanout.yaml"
    f.write_text(FANOUT)
    code, _, err = run("submit", str(f), "--wait")
    assert code == 0, err
    with _store().read() as s:
        lin = artifact_lineage(s, ("fanout", "make", "data"))
        from chute.store import queries as q

        ids = {n.display_name: n.node_id for n in q.nodes_of(s, q.get_workflow(s, "fanout").uid)}
        assert lin["producer"] == ("fanout", ids["make"])
        assert sorted(lin["consumers"]) == sorted([("fanout", ids["left"]),
                                                   ("fanout", ids["right"])])
        assert lin["name"] == "data" and lin["digest"].startswith("sha256:")
        # by id, the same answer; the unconsumed artifact has no consumers
        assert artifact_lineage(s, lin["artifact_id"]) == lin
        lonely = artifact_lineage(s, ("fanout", ids["lonely"], "data"))
        assert lonely["consumers"] == [] and lonely["producer"] == ("fanout", ids["lonely"])
        with pytest.raises(NotFoundError, match="nope"):
            artifact_lineage(s, ("fanout", "make", "nope"))
    code, out, _ = run("get", "fanout")
    lines = [line.strip() for line in out.splitlines()]
    assert "↳ data → left, right" in lines or "↳ data → right, left" in lines, out
    assert "↳ data → (no consumers)" in lines, out


def test_retry_adds_no_duplicate_consumer(chute_home):
    from chute.engine.lineage import add_consumers, artifact_lineage
    from chute.store.models import ArtifactRow

    store = _store()
    with store.write() as s:
        s.add(ArtifactRow(workflow_uid="u1", node_id="p", name="m", key="u1/p/m.tgz",
                          created_at=0.0))
    inputs = {"artifacts": [{"name": "m", "path": "/tmp/m",
                             "from": '{"key": "u1/p/m.tgz", "workflow_uid": "u1"}'},
                            {"name": "x", "path": "/tmp/x",
                             "from": "{{tasks.gone.outputs.artifacts.x}}"}]}
    with store.write() as s:
        assert add_consumers(s, "u2", "c", inputs) == 1
        assert add_consumers(s, "u2", "c", inputs) == 0
    with store.read() as s:
        assert artifact_lineage(s, ("u1", "p", "m"))["consumers"] == [("u2", "c")]


def test_sdk_output_wired_into_input_is_lineage(chute_home):
    from rich.console import Console

    from chute.cli.run import run_pipeline
    from chute.engine.lineage import artifact_lineage

    row, nodes = run_pipeline(str(REPO / "examples" / "diamond.py"), {"rows": "4"},
                              timeout=120, console=Console(file=io.StringIO()),
                              out=Console(file=io.StringIO()), live=False)
    assert row.phase == "Succeeded", [(n.display_name, n.phase, n.message) for n in nodes]
    ids = {n.display_name: n.node_id for n in nodes}
    with _store().read() as s:
        data = artifact_lineage(s, (row.name, "load", "data"))
        assert data["producer"] == (row.name, ids["load"])
        assert sorted(n for _, n in data["consumers"]) == sorted([ids["summarize"],
                                                                  ids["scale"]])
        scaled = artifact_lineage(s, (row.uid, ids["scale"], "scaled"))
        assert scaled["consumers"] == [(row.name, ids["report"])]
