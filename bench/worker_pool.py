"""Reused workers vs warm forks (not a test): what one no-op SDK step costs an executor.

    .venv/bin/python bench/worker_pool.py [-n 1000] [--parallel 1] [--root DIR] [--output]
                                          [--only reused|fork]

Runs ``n`` compiled no-op steps (``@component def noop() -> None``, launched as the
engine launches them) straight through ``PythonExecutor(reuse=True)`` — reused worker
processes, :mod:`chute.executors.worker_pool` — and through ``PythonExecutor(reuse=False)``
— a zygote fork and a supervisor per step — with no controller, ``--parallel`` at a time,
(``--output``: steps that return an int, so each leaves an output in its private
``/tmp``), and prints per step: wall time, CPU of this process (the controller's side:
launch, reply, poll), CPU of the executor's processes (workers; or fork server, zygote,
supervisors and steps, from rusage of finished children and each status.json's usage),
and wake-ups of this process's threads (voluntary context switches: one per step when the
controller's own thread reads the replies, two with a reader thread in between).
Step directories go under ``--root`` (default a new directory in /var/tmp: outside /tmp,
as a chute home is, so no host path needs re-sharing into a step's private /tmp;
``--root /dev/shm``, a tmpfs: the executor's own cost without the disk's inode allocation).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.dsl import component
from chute.dsl.script import build_source
from chute.executors.base import SUCCEEDED, LaunchSpec
from chute.executors.python import PythonExecutor


@component
def noop() -> None:
    """Nothing at all."""


@component
def one() -> int:
    """An output parameter, which the step writes in its private /tmp."""
    return 1


def _cpu(pid: int) -> float:
    """CPU seconds of a live process (its own, not its children's)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _switches() -> int:
    """Voluntary context switches of this process's live threads (each a thread that
    slept and was woken: the controller's, and a reader thread's if there is one)."""
    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/status") as f:
                n += sum(int(line.split()[1]) for line in f
                         if line.startswith("voluntary_ctxt_switches"))
        except FileNotFoundError:
            pass
    return n


def run(reuse: bool, n: int, parallel: int, root: Path, output: bool) -> dict[str, float]:
    source = build_source(one if output else noop)
    outs = ["/tmp/outputs/parameters/Output"] if output else []
    logs = root / "logs"
    logs.mkdir(parents=True)
    specs = [LaunchSpec(workflow_uid="wf", node_id=f"s{i}", attempt=0, step_dir=root / f"s{i}",
                        log_path=logs / f"s{i}.log", argv=["python3"], script_source=source,
                        output_paths=outs)
             for i in range(n + parallel)]
    with PythonExecutor(reuse=reuse, pool_size=parallel) as ex:
        if reuse:  # no recycling mid-run: its new worker's start-up is not a step's cost
            ex._pool().max_steps = 1 << 30
        for s in specs[:parallel]:  # warm-up: workers or zygote started, code compiled
            h = ex.launch(s)
            while ex.poll(h) is None:
                ex.wait(0.05)
        pids = [p for ps in (ex.pool.worker_pids().values() if ex.pool else []) for p in ps]
        before = sum(_cpu(p) for p in pids)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        sw0 = _switches()
        todo = list(specs[parallel:])
        running = {}
        while todo or running:
            while todo and len(running) < parallel:
                s = todo.pop(0)
                running[s.step_dir] = ex.launch(s)
            ex.wait(1.0)
            for d in ex.finished():
                h = running.get(d)
                r = ex.poll(h) if h else None
                if r is not None:
                    assert r.outcome == SUCCEEDED, r
                    del running[d]
        wall = time.perf_counter() - t0
        sw1 = _switches()
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        workers = sum(_cpu(p) for p in pids) - before if reuse else 0.0
    me = (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime)
    kids = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
    if not reuse:  # supervisors and steps are not our children: their status.json says
        for s in specs[parallel:]:
            usage = json.loads((s.step_dir / "status.json").read_text()).get("usage") or {}
            kids += usage.get("supervisor_cpu", 0.0) + usage.get("step_cpu", 0.0)
    return {"wall": 1e3 * wall / n, "controller": 1e3 * me / n,
            "executor": 1e3 * (workers + kids) / n, "wakes": (sw1 - sw0) / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=1)
    ap.add_argument("--root", default=None)
    ap.add_argument("--output", action="store_true", help="steps return an int (private /tmp)")
    ap.add_argument("--only", choices=["reused", "fork"], default=None,
                    help="run one path only (default both)")
    args = ap.parse_args()
    what = "one-output" if args.output else "no-op"
    print(f"{args.n} {what} SDK steps, {args.parallel} at a time; ms per step")
    print(f"{'path':22s} {'wall':>7s} {'controller CPU':>15s} {'executor CPU':>13s}"
          f" {'wake-ups':>9s}")
    for reuse, name in ((True, "reused workers"), (False, "zygote fork (default)")):
        if args.only and args.only != ("reused" if reuse else "fork"):
            continue
        root = Path(tempfile.mkdtemp(prefix="chute-pool-bench-", dir=args.root or "/var/tmp"))
        try:
            r = run(reuse, args.n, args.parallel, root, args.output)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        print(f"{name:22s} {r['wall']:7.3f} {r['controller']:15.3f} {r['executor']:13.3f}"
              f" {r['wakes']:9.2f}")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
