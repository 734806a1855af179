"""Conformance: every example of Argo's repository that can run on a host (CATALOGUE.md
column Host = H or H*) is submitted to one controller, all at once, and must end in the
phase Argo expects, with the outputs the example defines. Examples the local runtime
refuses at submit time must be exactly the ones listed in EXPECTED_REFUSALS, each with
its reason; examples not run at all are in NOT_RUN with theirs.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import ARGO_DIR, REPO

EXAMPLES = ARGO_DIR / "examples"

#: Examples refused at submit: file -> (text of the refusal, why it cannot run here).
#: Each is a pod that is more than one host process: chute runs one supervised process
#: per node, so what needs several processes sharing a pod's network and volumes, with
#: their own lifecycle, is refused before anything runs (chute.spec.validate_local).
_CONTAINER_SET = ("not supported locally: containerSet",
                  ("a containerSet is a graph of containers inside one pod, sharing its "
                   "volumes, with per-container retries and outputs"))
_DAEMON = ("not supported locally: daemon template",
           ("a daemon keeps serving at its pod IP ({{steps.X.ip}}) while later steps run "
            "and is killed when its scope ends; on one host every step shares 127.0.0.1 "
            "and its ports"))
_SIDECAR = ("not supported locally: sidecars",
            ("sidecars run beside the main container in the pod's network namespace "
             "(localhost) and are killed when it ends"))
EXPECTED_REFUSALS: dict[str, tuple[str, str]] = {
    **{f"container-set-template/{f}.yaml": _CONTAINER_SET
       for f in ("graph-workflow", "outputs-result-workflow", "parallel-workflow",
                 "sequence-workflow", "workspace-workflow")},
    "daemon-nginx.yaml": _DAEMON,
    "dag-daemon-retry-strategy.yaml": _DAEMON,
    "steps-daemon-retry-strategy.yaml": _DAEMON,
    "variables-showcase.yaml": _DAEMON,
    "init-container.yaml": (
        "not supported locally: initContainers",
        ("init containers run before the main container in the same pod, sharing its "
         "volumes (mirrorVolumeMounts); the supervisor runs one command per step")),
    "pod-resources-template-override.yaml": _SIDECAR,
    "sidecar-nginx.yaml": _SIDECAR,
}

#: Examples not submitted, and why.
NOT_RUN: dict[str, str] = {
    "forever.yaml": "runs for ~1000 s by design (Argo's own CI skips it: no-test=duration)",
}

#: Examples that wait for a person: the test does what the person would do.
RESUME_AT: dict[str, str] = {
    "suspend-template.yaml": "approve",  # `suspend: {}`: `argo resume` once it is reached
}

#: Catalogue expectations corrected after reading the YAML (the catalogue marks these
#: "intended; not e2e-run", i.e. Argo's CI never checked them).
PHASE_OVERRIDES: dict[str, tuple[set[str], str]] = {
    "loops-arbitrary-sequential-steps.yaml": (
        {"Failed"}, "item 3 exits 1 ('will fail and stop here'), no continueOn, failFast"),
    "custom-metrics.yaml": ({"Succeeded", "Failed"}, "a step exits with a random code"),
    "step-level-timeout.yaml": (
        {"Failed"}, "a `timeout` kill fails the node (Argo: pod deadline exceeded), and "
                    "sleep1 only continues on error"),
    "retry-conditional.yaml": (
        {"Succeeded", "Failed"}, "random exit 1 or 2; exit 1 ends the retries"),
}

def catalogue() -> list[dict[str, str]]:
    """Rows of CATALOGUE.md for Workflows that can run on a host."""
    rows = []
    for line in (ARGO_DIR / "CATALOGUE.md").read_text().splitlines():
        if not line.startswith("| ") or line.startswith("| #") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.replace("\\|", "¦").strip().strip("|").split("|")]
        if len(cells) < 12 or cells[6] not in ("H", "H*") or cells[2] != "Workflow":
            continue
        rows.append({"file": cells[1].strip("`"), "note": cells[7], "expected": cells[8],
                     "outputs": cells[9]})
    return rows


def expected_phases(text: str) -> set[str]:
    """Phases a catalogue entry allows."""
    if text.startswith("random") or "Succeeded or Failed" in text or "may be Failed" in text:
        return {"Succeeded", "Failed"}
    if text.startswith("Failed"):
        return {"Failed"}
    return {"Succeeded"}


def store_libraries(store) -> dict[str, str]:
    """Store every WorkflowTemplate and ClusterWorkflowTemplate of the examples first, as
    Argo's e2e suite applies them before the run (mixed-cluster-namespaced-wftmpl-steps
    needs templates from two libraries). Returns the ones refused, with the reason."""
    from chute.engine.submit import store_template
    from chute.errors import UserError
    from chute.spec.loader import load_file
    from chute.spec.models import ClusterWorkflowTemplate, WorkflowTemplate

    refused = {}
    for path in sorted(EXAMPLES.rglob("*.yaml")):
        try:
            docs = load_file(path)
        except UserError:
            continue  # not an Argo document (a ConfigMap, a PVC)
        for d in docs:
            if isinstance(d, WorkflowTemplate | ClusterWorkflowTemplate):
                try:
                    store_template(store, d)
                except UserError as exc:
                    refused[str(path.relative_to(EXAMPLES))] = str(exc)
    return refused


def _node_outputs(store, uid):
    from chute.store import queries as q

    with store.read() as s:
        return {n.display_name: n for n in q.nodes_of(s, uid)}


def check_outputs(file: str, nodes: dict, log) -> None:
    """Outputs the catalogue defines for some examples."""
    if file == "output-parameter.yaml":
        gen = [n for n in nodes.values() if n.display_name == "generate-parameter"][0]
        assert {"name": "hello-param", "value": "hello world"} in gen.outputs["parameters"]
    if file == "exit-code-output-variable.yaml":
        assert any("Exit code was: 123" in log(n) for n in nodes.values() if n.type == "Pod")
    if file in ("hello-world.yaml", "arguments-parameters.yaml", "global-parameters.yaml"):
        assert any("hello world" in log(n) for n in nodes.values() if n.type == "Pod")
    if file == "coinflip.yaml":
        flip = nodes["flip-coin"].outputs["result"]
        ran = {n.display_name for n in nodes.values() if n.phase == "Succeeded"}
        skipped = {n.display_name for n in nodes.values() if n.phase == "Skipped"}
        assert flip in ("heads", "tails")
        other = "tails" if flip == "heads" else "heads"
        assert flip in ran and other in skipped
    if file == "dag-diamond.yaml":
        order = sorted((n.started_at, n.display_name) for n in nodes.values() if n.type == "Pod")
        assert order[0][1] == "A" and order[-1][1] == "D"
    if file == "skipped-output-defaults/consumer-input-default.yaml":
        assert nodes["consumer"].inputs["parameters"][0]["value"] == "fallback-from-input"
    if file == "skipped-output-defaults/producer-output-default.yaml":
        assert nodes["consumer"].inputs["parameters"][0]["value"] == "hello-from-producer"
    if file == "dag-continue-on-fail.yaml":
        assert nodes["E"].phase == "Failed" and nodes["D"].phase == "Succeeded"
    if file == "exit-handler-step-level.yaml":
        for step in ("hello1", "hello2a", "hello2b"):
            assert nodes[f"{step}.onExit"].phase == "Succeeded"
    if file == "exit-handler-with-param.yaml":  # the hook's argument: step-1's output
        assert "hello world" in log(nodes["step-1.onExit"])
    if file == "exit-handler-with-artifacts.yaml":  # the hook's artifact: step-1's output
        assert "Welcome" in log(nodes["step-1.onExit"])
    if file == "template-on-exit.yaml":
        assert any(n.display_name.endswith(".onExit") for n in nodes.values())
    if file == "exit-handlers.yaml":
        assert any(n.name.endswith(".onExit") for n in nodes.values())
    if file == "continue-on-fail.yaml":
        assert any(n.phase == "Failed" for n in nodes.values() if n.type == "Pod")
    pod_logs = [log(n) for n in nodes.values() if n.type == "Pod"]
    if file == "map-reduce.yaml":  # parts {"foo": 1..4}, each doubled, summed: 20
        total = next(a for a in nodes["reduce"].outputs["artifacts"] if a["name"] == "total")
        stored = Path(total["repository"].removeprefix("file://"), total["key"])
        assert json.loads(stored.read_text()) == {"total": 20}
    if file == "expression-tag-template-workflow.yaml":  # withParam [3]: one item, 3 * 10
        (pod,) = [n for n in nodes.values() if n.type == "Pod"]
        assert pod.outputs["parameters"][0]["value"].startswith("hello 30 @ 20")
    if file == "global-outputs.yaml":  # the exit handler reads both global outputs
        assert sum("hello world" in t for t in pod_logs) == 2
    if file in ("volumes-emptydir.yaml",):
        assert any("Volume mounted and found" in t for t in pod_logs)
    if file == "suspend-template.yaml":  # resumed, then a 20 s delay, then the release
        assert nodes["release"].started_at - nodes["delay"].started_at >= 19.5
        assert sum("hello world" in t for t in pod_logs) == 2
    if file == "scripts-bash.yaml":  # `sh -c <script file>`: a number from 1 to 100
        n = int(nodes["generate"].outputs["result"])
        assert 1 <= n <= 100 and any(f"result was: {n}" in t for t in pod_logs)


@pytest.fixture
def tools_path(monkeypatch):
    monkeypatch.setenv("PATH", f"{REPO / 'tests' / 'tools'}:/usr/games:{os.environ['PATH']}")


def run_conformance(tmp_home: Path) -> dict:
    """Submit every runnable example to one store and drive them with one controller."""
    from chute.config import load_settings
    from chute.engine.controller import Controller
    from chute.engine.submit import submit
    from chute.errors import UserError
    from chute.executors.local import LocalExecutor
    from chute.spec.loader import load_file
    from chute.spec.models import Workflow
    from chute.store.db import open_store

    settings = load_settings({"CHUTE_HOME": str(tmp_home)}).ensure()
    store = open_store(settings)
    report = {"run": {}, "refused": {}, "not_run": dict(NOT_RUN), "expected": {},
              "libraries_refused": store_libraries(store)}
    for row in catalogue():
        file = row["file"]
        if file in NOT_RUN:
            continue
        try:
            wf = next(d for d in load_file(EXAMPLES / file) if isinstance(d, Workflow))
            wf_row = submit(store, wf, {})
        except UserError as exc:
            report["refused"][file] = str(exc)
            continue
        report["run"][file] = wf_row.uid
        report["expected"][file] = row
    executor = LocalExecutor().start()
    ctl = Controller(store, settings, executor, max_running=64)
    done = threading.Event()
    resumer = threading.Thread(target=_resume_when_reached, daemon=True, args=(
        store, {report["run"][f]: step for f, step in RESUME_AT.items() if f in report["run"]},
        done))
    resumer.start()
    try:
        ctl.run_until_done(list(report["run"].values()), timeout=float(
            os.environ.get("CHUTE_CONFORMANCE_TIMEOUT", "240")))
    except TimeoutError:
        pass  # the workflows still running are reported as failures below
    finally:
        done.set()
        resumer.join()
        ctl.close()
        executor.close()
    report["store"], report["settings"] = store, settings
    return report


def _resume_when_reached(store, waits: dict[str, str], done: threading.Event) -> None:
    """``chute resume`` each workflow once its suspend step (display name) is running."""
    from chute.engine import control
    from chute.store import queries as q

    while waits and not done.wait(0.5):
        for uid, step in list(waits.items()):
            with store.read() as s:
                wf = q.get_workflow(s, uid)
                reached = any(n.display_name == step and n.phase == "Running"
                              for n in q.nodes_of(s, uid))
            if reached:
                control.resume(store, wf.name)
                del waits[uid]


def test_argo_examples_conform(tmp_path, tools_path):
    from chute.store import queries as q

    started = time.monotonic()
    report = run_conformance(tmp_path / "home")
    store, settings = report["store"], report["settings"]
    failures = []
    passed = 0
    for file, uid in report["run"].items():
        row = report["expected"][file]
        with store.read() as s:
            wf = q.get_workflow(s, uid)
        want = PHASE_OVERRIDES.get(file, (expected_phases(row["expected"]), ""))[0]
        nodes = _node_outputs(store, uid)

        def log(n, uid=uid):
            p = settings.logs_dir / uid / f"{n.node_id}.log"
            return p.read_text() if p.exists() else ""

        if wf.phase not in want:
            stuck = [f"{n.name}={n.phase}" for n in nodes.values() if n.phase in ("Running", "Pending")]
            failures.append(f"{file}: phase {wf.phase}, expected {sorted(want)}: {wf.message} "
                            f"{stuck[:4]}")
            continue
        try:
            check_outputs(file, nodes, log)
        except (AssertionError, KeyError, IndexError, TypeError, ValueError) as exc:
            failures.append(f"{file}: outputs: {exc!r}")
            continue
        passed += 1
    refused = report["refused"]
    summary = {"run": len(report["run"]), "passed": passed, "refused": len(refused),
               "not_run": len(report["not_run"]), "seconds": round(time.monotonic() - started)}
    print("\nconformance:", json.dumps(summary))
    for f, msg in sorted(refused.items()):
        why = EXPECTED_REFUSALS.get(f, ("", "UNEXPECTED"))[1]
        print(f"  refused {f}: {msg.splitlines()[0][:100]} ({why})")
    for f, why in sorted(report["not_run"].items()):
        print(f"  not run {f}: {why}")
    for f, msg in sorted(report["libraries_refused"].items()):
        print(f"  template library refused {f}: {msg.splitlines()[0][:120]}")
    unexpected = {f: r for f, r in refused.items() if f not in EXPECTED_REFUSALS
                  or EXPECTED_REFUSALS[f][0] not in r}
    assert not failures, "\n".join(failures)
    assert not unexpected, "unexpected refusals:\n" + "\n".join(
        f"{f}: {r}" for f, r in unexpected.items())
    assert set(EXPECTED_REFUSALS) <= set(refused), "expected refusals now accepted"
