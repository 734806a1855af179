"""Data-arrival and metric-threshold triggers: each file version / qualifying metric value
makes exactly one run, also polled 5x at once and across a restart; files and metrics
from before the trigger do not count. Local directory and S3 (moto), with an injected
clock; the concurrent pollers on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from chute.errors import ConflictError, NotFoundError, SpecError, UserError
from chute.spec.loader import load_documents
from chute.store import queries as q
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

pytest_plugins = ["tests.fixtures.s3"]

TEMPLATE = """\
apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata: {name: ingest}
spec:
  entrypoint: main
  arguments:
    parameters: [{name: file, value: none}, {name: size, value: "0"}]
  templates:
  - name: main
    container: {image: busybox, command: [echo, "{{workflow.parameters.file}}"]}
"""


def data_trigger(where: str, extra: str = "") -> dict:
    import yaml

    return yaml.safe_load(f"""\
apiVersion: chute.dev/v1alpha1
kind: DataTrigger
metadata: {{name: new-batch}}
spec:
  {where}
  pathRegexp: '.*\\.csv'
  settleSeconds: 2
  pollSeconds: 5
  workflowTemplateRef: {{name: ingest}}
  parameters:
  - {{name: file, src: {{dataKey: body.path}}}}
  - {{name: size, src: {{dataKey: body.size}}}}
{extra}""")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    from chute.config import load_settings
    from chute.engine.submit import store_template
    from chute.store.db import open_store

    env = {"CHUTE_HOME": str(tmp_path / "home")}
    if request.param == "postgres":
        env["CHUTE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
    settings = load_settings(env).ensure()
    st = open_store(settings)
    st.settings = settings
    store_template(st, load_documents(TEMPLATE)[0])
    yield st
    st.dispose()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def runs(store) -> dict[str, dict]:
    """Run name -> its parameters."""
    with store.read() as s:
        return {r.name: dict(r.arguments) for r in q.list_workflows(s)}


def touch(path, text: str, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_each_new_file_version_makes_one_run(store, tmp_path):
    from chute.triggers import polling

    inbox = tmp_path / "inbox"
    t0 = time.time()
    touch(inbox / "old.csv", "before the trigger", t0 - 100)
    polling.create(store, data_trigger(f"path: {inbox}"), now=t0)
    touch(inbox / "a.csv", "a", t0 + 10)
    touch(inbox / "sub" / "c.csv", "ccc", t0 + 11)
    touch(inbox / "b.txt", "not a csv", t0 + 12)
    touch(inbox / "late.csv", "still being written", t0 + 19)
    clock = Clock(t0 + 20)
    sched = polling.PollScheduler(store, clock=clock)
    made = sched.tick()
    assert sorted(p["file"] for p in runs(store).values()) == ["a.csv", "sub/c.csv"]
    assert {p["size"] for p in runs(store).values()} == {"1", "3"}
    assert all(created for _, _, created in made)
    clock.t += 1
    assert sched.tick() == []  # not due: pollSeconds is 5
    clock.t += 5  # late.csv has settled; nothing else is new
    assert [p["file"] for p in runs(store).values()].count("late.csv") == 0
    sched.tick()
    assert sorted(p["file"] for p in runs(store).values()) == ["a.csv", "late.csv", "sub/c.csv"]
    # a new version of a file is a new occasion; a restarted scheduler repeats nothing
    touch(inbox / "a.csv", "a, rewritten", clock.t - 3)
    clock.t += 5
    polling.PollScheduler(store, clock=clock).tick()
    polling.PollScheduler(store, clock=clock).tick(force=True)
    files = sorted(p["file"] for p in runs(store).values())
    assert files == ["a.csv", "a.csv", "late.csv", "sub/c.csv"]
    with store.read() as s:
        labels = {r.labels.get("chute.dev/data-trigger") for r in q.list_workflows(s)}
    assert labels == {"new-batch"}


def test_five_pollers_at_once_make_one_run_per_file(store, tmp_path):
    from chute.store.db import open_store
    from chute.triggers import polling

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    t0 = time.time()
    polling.create(store, data_trigger(f"path: {inbox}"), now=t0)
    stores = [open_store(store.settings) for _ in range(5)]
    try:
        for k in range(2):
            touch(inbox / f"f{k}.csv", "x" * k, t0 + 10 + k)
            gate = threading.Barrier(5)

            def poll(st, k=k, gate=gate):
                gate.wait()
                return polling.PollScheduler(st, clock=Clock(t0 + 20 + k)).tick(force=True)

            with ThreadPoolExecutor(5) as pool:
                made = [m for r in pool.map(poll, stores) for m in r]
            assert sum(created for _, _, created in made) == 1
            assert len(runs(store)) == k + 1
    finally:
        for st in stores:
            st.dispose()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_data_trigger_definitions_are_checked_by_place(store, tmp_path):
    from chute.triggers import polling

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    def with_spec(**fields) -> dict:
        doc = data_trigger(f"path: {inbox}")
        doc["spec"].update(fields)
        return doc

    cases = [
        (with_spec(path="relative/dir"), "spec.path"),
        (with_spec(pathRegexp="(unclosed"), "spec.pathRegexp"),
        (with_spec(pollSeconds=0), "pollSeconds"),
        (with_spec(s3={"bucket": "b"}), "path or s3"),
        (with_spec(path=None, s3={"bucket": "b", "colour": "red"}), "spec.s3.colour"),
        (with_spec(workflowTemplateRef={"name": "nope"}), "nope"),
        (with_spec(parameters=[{"name": "nope", "src": {"dataKey": "body.path"}}]), "nope"),
    ]
    for doc, word in cases:
        if doc["spec"].get("path") is None:
            doc["spec"].pop("path", None)
        with pytest.raises(UserError, match=re.escape(word)):
            polling.create(store, doc)
    polling.create(store, data_trigger(f"path: {inbox}"))
    with pytest.raises(ConflictError, match="new-batch"):
        polling.create(store, data_trigger(f"path: {inbox}"))
    # a directory that goes away is recorded on the trigger, not raised
    inbox.rmdir()
    polling.PollScheduler(store).tick(force=True)
    assert "not a directory" in polling.view(polling.get(store, "new-batch"))["status"]["message"]
    polling.delete(store, "new-batch")
    with pytest.raises(NotFoundError):
        polling.get(store, "new-batch")


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_new_objects_under_an_s3_prefix(store, s3, monkeypatch):
    from chute.triggers import polling

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="in/old.csv", Body=b"before")
    where = (f"s3: {{endpoint: '{s3.endpoint}', bucket: {s3.bucket}, keyPrefix: in, "
             "insecure: true}")
    created = time.time()
    polling.create(store, data_trigger(where), now=created)
    # S3's LastModified may have whole seconds: write in the next second, after creation
    time.sleep(math.ceil(created) - time.time() + 0.05)
    client.put_object(Bucket=s3.bucket, Key="in/day1/x.csv", Body=b"12345")
    client.put_object(Bucket=s3.bucket, Key="in/notes.txt", Body=b"no")
    client.put_object(Bucket=s3.bucket, Key="elsewhere/y.csv", Body=b"no")
    sched = polling.PollScheduler(store, clock=Clock(time.time() + 10))
    made = sched.tick()
    assert [(p["file"], p["size"]) for p in runs(store).values()] == [("day1/x.csv", "5")], made
    assert sched.tick(force=True) == []


METRIC_TRIGGER = """\
apiVersion: chute.dev/v1alpha1
kind: MetricTrigger
metadata: {name: retrain}
spec:
  metric: drift
  condition: value > 0.3
  labels: {team: ml}
  workflowTemplateRef: {name: ingest}
  parameters:
  - {name: file, src: {dataKey: body.workflow}}
  - {name: size, src: {dataKey: body.value}}
"""


def _report(store, run: str, value: float, labels: dict, metric: str = "drift") -> None:
    """A finished run that reported ``metric`` = ``value``."""
    from chute.store.models import MetricRow, WorkflowRow

    with store.write() as s:
        uid = f"uid-{run}"
        if s.get(WorkflowRow, uid) is None:
            s.add(WorkflowRow(uid=uid, name=run, spec={}, arguments={}, phase="Succeeded",
                              created_at=time.time(), labels=labels, outputs={}))
            s.flush()
        s.add(MetricRow(workflow_uid=uid, node_id=f"{run}-node", name=metric, value=value))


def _triggered(store) -> dict[str, str]:
    """Source run -> drift value, of the runs the trigger made."""
    with store.read() as s:
        return {r.arguments["file"]: r.arguments["size"] for r in q.list_workflows(s)
                if (r.labels or {}).get("chute.dev/metric-trigger") == "retrain"}


def test_metric_values_meeting_the_condition_make_one_run_each(store):
    import yaml

    from chute.store.db import open_store
    from chute.triggers import polling

    _report(store, "monitor-0", 0.9, {"team": "ml"})  # before the trigger: does not count
    polling.create(store, yaml.safe_load(METRIC_TRIGGER))
    _report(store, "monitor-1", 0.5, {"team": "ml"})
    _report(store, "monitor-2", 0.1, {"team": "ml"})  # below the threshold
    _report(store, "monitor-3", 0.7, {"team": "other"})  # not our label
    _report(store, "monitor-4", 0.35, {"team": "ml"}, metric="accuracy")  # another metric
    stores = [open_store(store.settings) for _ in range(5)]
    try:
        gate = threading.Barrier(5)

        def poll(st):
            gate.wait()
            return polling.PollScheduler(st).tick(force=True)

        with ThreadPoolExecutor(5) as pool:
            made = [m for r in pool.map(poll, stores) for m in r]
    finally:
        for st in stores:
            st.dispose()
    assert sum(c for _, _, c in made) == 1
    assert _triggered(store) == {"monitor-1": "0.5"}
    _report(store, "monitor-5", 0.31, {"team": "ml"})
    polling.PollScheduler(store).tick(force=True)
    polling.PollScheduler(store).tick(force=True)  # a restart: nothing again
    assert _triggered(store) == {"monitor-1": "0.5", "monitor-5": "0.31"}
    with pytest.raises(SpecError, match="spec.condition"):
        polling.create(store, yaml.safe_load(METRIC_TRIGGER.replace(
            "retrain", "bad").replace("value > 0.3", "value >")))
    with pytest.raises(SpecError, match="spec.metric"):
        polling.create(store, yaml.safe_load(METRIC_TRIGGER.replace(
            "retrain", "bad").replace("  metric: drift\n", "")))
