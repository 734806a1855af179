"""``chute artifacts list`` and ``chute artifacts gc`` (issue 8 item 7), and check L-4:
two concurrent runs of the same spec, one deleted, gc — the other's artifacts are
untouched and still downloadable; what gc removed is reported in keys and bytes.

Real CLI, real SQLite file, real steps, the default local artifact repository.
"""

from __future__ import annotations

import json
import uuid


from tests.fixtures.cli import run  # noqa: F401 - the `run` fixture

TWO_RUNS = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: pair-}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: make, template: make}
      - name: use
        template: use
        dependencies: [make]
        arguments: {artifacts: [{name: data, from: "{{tasks.make.outputs.artifacts.data}}"}]}
  - name: make
    container:
      image: alpine
      command: [sh, -c, "sleep 0.3; head -c 20000 /dev/zero | tr '\\\\0' x > /tmp/data.txt"]
    outputs:
      artifacts: [{name: data, path: /tmp/data.txt, archive: {none: {}}}]
  - name: use
    inputs:
      artifacts: [{name: data, path: /tmp/in.txt}]
    container:
      image: alpine
      command: [sh, -c, "wc -c < /tmp/in.txt"]
"""


def _repo():
    from chute.artifacts import ArtifactRepository

    return ArtifactRepository.from_settings()


def test_gc_of_a_deleted_run_leaves_the_concurrent_one_whole(run, tmp_path):
    f = tmp_path / "pair.yaml"
    f.write_text(TWO_RUNS + "---\n" + TWO_RUNS)
    code, out, err = run("submit", str(f), "--wait")  # both in one controller, concurrently
    assert code == 0, err
    a, b = out.split()[:2]
    assert a.startswith("pair-") and b.startswith("pair-") and a != b
    from chute.config import load_settings
    from chute.store import queries as q
    from chute.store.db import open_store

    spans = []
    with open_store(load_settings()).read() as s:
        for name in (a, b):
            make = next(n for n in q.nodes_of(s, q.get_workflow(s, name).uid)
                        if n.display_name == "make")
            spans.append((make.started_at, make.finished_at))
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans  # they overlapped

    code, out, _ = run("artifacts", "list", a, "-o", "json")
    arts_a = json.loads(out)
    code, out, _ = run("artifacts", "list", b, "-o", "json")
    arts_b = json.loads(out)
    assert [x["node"] for x in arts_a] == ["make"] and [x["name"] for x in arts_b] == ["data"]
    assert arts_b[0]["size"] == 20000 and arts_b[0]["digest"].startswith("sha256:")
    code, out, _ = run("artifacts", "list", b)
    assert "make" in out and arts_b[0]["key"] in out and "19.5 KiB" in out

    repo = _repo()
    before_b = {k: n for k, n in repo.list(arts_b[0]["key"].split("/")[0])}
    run("delete", a)
    code, out, _ = run("artifacts", "gc", "-o", "json")
    report = json.loads(out)
    assert report == {"keys": len(arts_a), "bytes": 20000, "workflows": 1}
    assert not repo.exists(arts_a[0]["key"])
    # the concurrent run: every object untouched, and downloadable with its bytes
    assert dict(repo.list(arts_b[0]["key"].split("/")[0])) == before_b
    with repo.open(arts_b[0]["key"]) as fh:
        assert fh.read() == b"x" * 20000
    code, out, _ = run("artifacts", "list", b, "-o", "json")
    assert json.loads(out) == arts_b
    # lineage of b still answers; rows of the deleted run are gone with its keys
    from chute.engine.lineage import artifact_lineage
    from chute.store.models import ArtifactRow

    with open_store(load_settings()).read() as s:
        assert len(artifact_lineage(s, (b, "make", "data"))["consumers"]) == 1
        assert {r.workflow_uid for r in s.query(ArtifactRow)} == {arts_b[0]["key"].split("/")[0]}
    code, out, _ = run("artifacts", "gc")
    assert code == 0 and "removed 0 keys" in out and "freed 0 bytes" in out


def test_gc_never_takes_a_run_that_started_after_its_listing(chute_home, tmp_path):
    """A prefix written after gc listed the repository (a run submitted meanwhile, whose
    workflow row gc's live set cannot show yet) is not collected; an orphan is."""
    from chute.cli.artifacts import collect
    from chute.config import load_settings
    from chute.store.db import open_store

    repo = _repo()
    src = tmp_path / "f.txt"
    src.write_bytes(b"y" * 123)
    orphan, newcomer = str(uuid.uuid4()), str(uuid.uuid4())
    repo.save(src, name="o", workflow_uid=orphan, node_id="n", archive={"none": {}})
    store = open_store(load_settings().ensure())

    class Racing:
        """The store, with a run starting between gc's listing and its live-set read."""

        def read(self):
            repo.save(src, name="new", workflow_uid=newcomer, node_id="n", archive={"none": {}})
            return store.read()

        def write(self):
            return store.write()

    assert collect(Racing(), repo) == {"keys": 1, "bytes": 123, "workflows": 1}
    assert repo.exists(newcomer) and not repo.exists(orphan)
