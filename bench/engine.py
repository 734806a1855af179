"""Engine benchmark (not a test): per-step overhead of the engine over a bare process
spawn, for no-op ``sh -c true`` steps, and the controller's peak memory.

    .venv/bin/python bench/engine.py [--dag 1000] [--chain 1000] [--fanout 10000]

Shapes: a 1,000-node DAG (10 layers of 100, each task depending on one task of the
previous layer), a 1,000-node chain, and a 10,000-item ``withItems`` fan-out. The bare
baseline spawns the same number of ``sh -c true`` processes with ``subprocess`` at the
same concurrency as the controller. Overhead per step = (engine wall - bare wall) / steps.
``engine_only_ms_per_step`` runs the same shape with the in-memory FakeExecutor: what the
controller itself costs per step (state machine + store commits), without any process.
CPU ms per step (steadier than wall time on a loaded machine): ``controller_cpu`` (this
process, all threads) and ``supervisor_cpu`` (from each step's status.json; the ``sh``
itself not counted).
Targets (issue 3): overhead < 5 ms/step, the 10k fan-out < 60 s on 2 cores, RSS < 300 MB.

``--controller`` measures the controller alone, as it runs beside reused workers: the
same shapes on :class:`~chute.engine.fake.ReportingFakeExecutor`, each attempt taking
``--step-ms`` (0.3, a reused worker's no-op step) on a thread and its end pushed as the
real executors push theirs, so the controller sleeps and wakes as in a real run. Home on
``/dev/shm`` when writable (``--home-dir /tmp``: on disk). Printed per shape, median of
``--repeat`` runs: wall ms per step, the driver thread's CPU ms per step, and turns,
commits and waits per step. Its attempts die with the process, as reused workers' steps
do, so the controller launches them while the commit recording them is written
(``Controller._launch_early``); ``--durable-launches``: as for process steps, only once
committed. A turn of such steps only is committed with the next ones, within
``--hold-ms`` (default: the controller's, 2; 0: each turn committed on its own:
:mod:`chute.engine.holds`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.fake import FakeExecutor
from chute.engine.submit import submit
from chute.executors.local import LocalExecutor
from chute.spec.loader import load_resource
from chute.store.db import open_store

NOOP = {"name": "noop", "container": {"image": "busybox", "command": ["sh", "-c", "true"]}}


def wf(name: str, templates: list[dict]) -> dict:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name}, "spec": {"entrypoint": "main",
                                                 "templates": templates + [NOOP]}}


def dag(n: int, width: int = 100) -> dict:
    tasks = []
    for i in range(n):
        t = {"name": f"t{i}", "template": "noop"}
        if i >= width:
            t["dependencies"] = [f"t{i - width}"]
        tasks.append(t)
    return wf("bench-dag", [{"name": "main", "dag": {"tasks": tasks}}])


def chain(n: int) -> dict:
    tasks = [{"name": "t0", "template": "noop"}] + [
        {"name": f"t{i}", "template": "noop", "dependencies": [f"t{i - 1}"]} for i in range(1, n)]
    return wf("bench-chain", [{"name": "main", "dag": {"tasks": tasks}}])


def fanout(n: int) -> dict:
    return wf("bench-fanout", [{"name": "main", "steps": [[
        {"name": "s", "template": "noop", "withItems": list(range(n))}]]}])


def bare(n: int, concurrency: int, sequential: bool = False) -> float:
    """Wall time to spawn n `sh -c true` with the given concurrency (or one at a time)."""
    t0 = time.perf_counter()
    if sequential or concurrency == 1:
        for _ in range(n):
            subprocess.run(["sh", "-c", "true"], check=True)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(lambda _: subprocess.run(["sh", "-c", "true"], check=True), range(n)))
    return time.perf_counter() - t0


def run_engine(doc: dict, home: Path, max_running: int, fake: bool = False
               ) -> tuple[float, str, dict[str, float]]:
    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    row = submit(store, load_resource(doc))
    executor = FakeExecutor() if fake else LocalExecutor().start()
    ctl = Controller(store, settings, executor, max_running=max_running)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        ctl.run_until_done([row.uid])
    finally:
        ctl.close()
        if not fake:
            executor.close()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sup = sum((json.loads(p.read_text()).get("usage") or {}).get("supervisor_cpu", 0.0)
              for p in home.rglob("status.json"))
    from chute.store import queries as q

    with store.read() as s:
        phase = q.get_workflow(s, row.uid).phase
    store.dispose()
    return wall, phase, {"controller": cpu, "supervisors": sup}


def run_controller(doc: dict, home: Path, max_running: int, step_s: float,
                   ephemeral: bool = True, hold_ms: float | None = None) -> dict[str, float]:
    """One run on the reporting fake executor: wall and driver-thread CPU seconds, and
    the controller's turns, commits and waits."""
    from chute.engine import controller as controller_module
    from chute.engine.fake import ReportingFakeExecutor

    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    row = submit(store, load_resource(doc))
    executor = ReportingFakeExecutor(seconds=step_s, ephemeral=ephemeral)
    ctl = Controller(store, settings, executor, max_running=max_running)
    if hold_ms is not None:
        ctl.hold_seconds = hold_ms / 1000
    counts = {"turns": 0, "commits": 0}
    turn, commit = ctl.turn, controller_module.commit_decisions

    def counted_turn():
        counts["turns"] += 1
        return turn()

    def counted_commit(*a, **k):
        counts["commits"] += 1
        return commit(*a, **k)

    ctl.turn = counted_turn
    controller_module.commit_decisions = counted_commit
    import gc

    gc.collect()
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        ctl.run_until_done([row.uid])
    finally:
        wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
        controller_module.commit_decisions = commit
        ctl.close()
        executor.close()
        store.dispose()
    return {"wall": wall, "cpu": cpu, "waits": executor.waits, **counts}


def controller_main(args) -> None:
    """``--controller``: the controller alone, per shape (see the module docstring)."""
    import statistics

    base = args.home_dir or ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    for label, doc, n in (("dag", dag(args.dag), args.dag), ("chain", chain(args.chain), args.chain),
                          ("fanout", fanout(args.fanout), args.fanout)):
        if n <= 0:
            continue
        runs = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                runs.append(run_controller(doc, Path(tmp), args.max_running, args.step_ms / 1000,
                                           not args.durable_launches, args.hold_ms))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(label, json.dumps({
            "steps": n, "step_ms": args.step_ms, "early_launch": not args.durable_launches,
            "hold_ms": args.hold_ms,
            "wall_ms_per_step": round(1000 * med["wall"] / n, 3),
            "driver_cpu_ms_per_step": round(1000 * med["cpu"] / n, 3),
            "driver_cpu_ms_per_step_all": [round(1000 * r["cpu"] / n, 3) for r in runs],
            "turns_per_step": round(med["turns"] / n, 2),
            "commits_per_step": round(med["commits"] / n, 2),
            "waits_per_step": round(med["waits"] / n, 2),
            "load": round(os.getloadavg()[0], 1)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dag", type=int, default=1000)
    ap.add_argument("--chain", type=int, default=1000)
    ap.add_argument("--fanout", type=int, default=10000)
    ap.add_argument("--max-running", type=int, default=max(16, 8 * (os.cpu_count() or 2)))
    ap.add_argument("--controller", action="store_true",
                    help="the controller alone, on the reporting fake executor")
    ap.add_argument("--step-ms", type=float, default=0.3, help="--controller: each step's time")
    ap.add_argument("--durable-launches", action="store_true",
                    help="--controller: launch only once committed (as process steps)")
    ap.add_argument("--repeat", type=int, default=3, help="--controller: runs per shape")
    ap.add_argument("--hold-ms", type=float, help="--controller: the controller's held-commit "
                    "time (default its own; 0: none)")
    ap.add_argument("--home-dir", help="--controller: where the homes go (default /dev/shm)")
    args = ap.parse_args()
    if args.controller:
        controller_main(args)
        return
    results = {"cpus": os.cpu_count(), "max_running": args.max_running}
    with tempfile.TemporaryDirectory() as tmp:
        for label, doc, n, conc in (
            ("dag", dag(args.dag), args.dag, args.max_running),
            ("chain", chain(args.chain), args.chain, 1),
            ("fanout", fanout(args.fanout), args.fanout, args.max_running),
        ):
            if n <= 0:
                continue
            base = bare(n, conc)
            wall, phase, cpu = run_engine(doc, Path(tmp) / label, args.max_running)
            alone, _, _ = run_engine(doc, Path(tmp) / f"{label}-fake", args.max_running,
                                     fake=True)
            results[label] = {
                "steps": n, "phase": phase, "engine_s": round(wall, 2),
                "bare_s": round(base, 2),
                "overhead_ms_per_step": round(1000 * (wall - base) / n, 2),
                # the controller alone (store, state machine), with an in-memory executor
                "engine_only_ms_per_step": round(1000 * alone / n, 2),
                "controller_cpu_ms_per_step": round(1000 * cpu["controller"] / n, 2),
                "supervisor_cpu_ms_per_step": round(1000 * cpu["supervisors"] / n, 2),
                "load": round(os.getloadavg()[0], 1),
            }
            print(label, json.dumps(results[label]), flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
