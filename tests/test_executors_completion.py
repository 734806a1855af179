"""Completion is pushed, not polled: supervisors report ended attempts on the controller's
notify pipe, the controller waits on it, and a pipe nobody reads never stalls a step."""

from __future__ import annotations

import fcntl
import time
from pathlib import Path

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.submit import submit
from chute.executors.base import SUCCEEDED, LaunchSpec
from chute.executors.local import LocalExecutor
from chute.spec.loader import load_documents
from chute.store import queries as q
from chute.store.db import open_store

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), not exported by every Python


def spec(tmp_path: Path, argv, name="s") -> LaunchSpec:
    return LaunchSpec("wf", name, 0, tmp_path / name, tmp_path / "logs" / f"{name}.log",
                      list(argv))


def test_an_ended_attempt_is_reported_and_wakes_the_waiter(tmp_path):
    with LocalExecutor() as ex:
        h = ex.launch(spec(tmp_path, ["sh", "-c", "sleep 0.3"]))
        t0 = time.monotonic()
        reported: set[Path] = set()
        while h.step_dir not in reported and time.monotonic() - t0 < 30:
            ex.wait(30.0)  # returns when the report comes, not after 30 s
            reported |= ex.finished()
        took = time.monotonic() - t0
        assert h.step_dir in reported
        assert 0.25 <= took < 10
        # reported only once the result is there to read
        assert (h.step_dir / "status.json").exists()
        assert ex.poll(h).outcome == SUCCEEDED
        assert ex.finished() == set()  # each report is handed out once


def test_a_notify_pipe_nobody_reads_never_stalls_a_supervisor(tmp_path):
    with LocalExecutor() as ex:
        # one page: a few dozen reports fill it, and nobody calls finished() here
        fcntl.fcntl(ex.completions.write_fd(), F_SETPIPE_SZ, 4096)
        n = 80
        for i in range(n):
            h = ex.launch(spec(tmp_path, ["true"], name=f"step-{i:03d}"))
            end = time.monotonic() + 20
            while (r := ex.poll(h)) is None:
                assert time.monotonic() < end, f"step {i} stalled"
                time.sleep(0.002)
            assert r.outcome == SUCCEEDED
        reported = ex.finished()
        # the pipe did fill (some reports were dropped), and every step still ended
        assert 0 < len(reported) < n


WORKFLOW = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: pushed-chain}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: step}
      - {name: b, template: step, dependencies: [a]}
      - {name: c, template: step, dependencies: [b]}
      - {name: d, template: step, dependencies: [c]}
  - name: step
    container: {image: busybox, command: [sh, -c, "true"]}
"""


def test_the_controller_learns_of_ended_steps_without_polling_them(chute_home):
    settings = load_settings().ensure()
    store = open_store(settings)
    try:
        with LocalExecutor() as ex:
            row = submit(store, load_documents(WORKFLOW)[0])
            ctl = Controller(store, settings, ex)
            ctl.sweep_every = 1e9  # no poll of every attempt: only the reports drive it
            polled: list[Path] = []
            poll = ex.poll

            def counting_poll(handle):
                polled.append(handle.step_dir)
                return poll(handle)

            ex.poll = counting_poll
            try:
                ctl.run_until_done([row.uid], timeout=60)
            finally:
                ctl.close()
        with store.read() as s:
            wf = q.get_workflow(s, row.uid)
            nodes = [n for n in q.nodes_of(s, row.uid) if n.type == "Pod"]
        assert wf.phase == "Succeeded" and len(nodes) == 4
        # each attempt polled once, when it was reported ended: never while it ran
        assert sorted(polled) == sorted(Path(n.step_dir).absolute() for n in nodes)
    finally:
        store.dispose()
