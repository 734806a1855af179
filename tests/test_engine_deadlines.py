"""Deadlines with real processes: a template's activeDeadlineSeconds/timeout and the
workflow's activeDeadlineSeconds kill the steps' process trees and fail the nodes with
Argo's messages (P-1/P-4 in small)."""

from __future__ import annotations

import time

import psutil
import pytest

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.submit import submit
from chute.executors.local import LocalExecutor
from chute.spec.loader import load_documents
from chute.store import queries as q
from chute.store.db import open_store


@pytest.fixture
def engine(chute_home):
    settings = load_settings().ensure()
    store = open_store(settings)
    executor = LocalExecutor().start()

    def run(text: str, timeout: float = 60):
        row = submit(store, load_documents(text)[0])
        ctl = Controller(store, settings, executor)
        t0 = time.monotonic()
        try:
            ctl.run_until_done([row.uid], timeout=timeout)
        finally:
            ctl.close()
        with store.read() as s:
            wf = q.get_workflow(s, row.uid)
            nodes = {n.display_name: n for n in q.nodes_of(s, row.uid)}
        return wf, nodes, time.monotonic() - t0

    yield run
    executor.close()
    store.dispose()


def _alive(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in a for a in (p.info["cmdline"] or [])):
                out.append(p)
        except psutil.Error:
            pass
    return out


def test_template_deadline_kills_the_step_tree(engine):
    wf, nodes, took = engine("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: step-deadline}
spec:
  entrypoint: main
  templates:
  - name: main
    steps: [[{name: slow, template: slow}], [{name: never, template: slow}]]
  - name: slow
    activeDeadlineSeconds: 1
    container: {image: busybox, command: [sh, -c, "sleep 61.5 & sleep 61.5; wait"]}
""")
    assert wf.phase == "Failed" and took < 15
    slow = nodes["slow"]
    assert slow.phase == "Failed"
    assert slow.message == "Pod was active on the node longer than the specified deadline"
    assert "never" not in nodes
    time.sleep(0.5)
    assert _alive("61.5") == []


def test_workflow_deadline_stops_everything(engine):
    wf, nodes, took = engine("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: wf-deadline}
spec:
  entrypoint: main
  activeDeadlineSeconds: 2
  templates:
  - name: main
    steps: [[{name: s, template: slow, withItems: [1, 2, 3]}], [{name: after, template: slow}]]
  - name: slow
    container: {image: busybox, command: [sh, -c, "sleep 62.5"]}
""")
    assert wf.phase == "Failed" and wf.message == "Workflow exceeded its deadline"
    assert took < 20
    pods = [n for n in nodes.values() if n.type == "Pod"]
    assert len(pods) == 3 and all(n.phase == "Failed" for n in pods)
    assert all(n.message == "Step exceeded its deadline" for n in pods)
    time.sleep(0.5)
    assert _alive("62.5") == []
