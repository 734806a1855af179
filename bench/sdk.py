"""SDK benchmark (not a test): per-step overhead of no-op Python components, chute's warm
workers beside Prefect and Dagster running the same workloads, in one invocation.

    .venv/bin/python bench/sdk.py [--quick] [--dag 1000] [--chain 200] [--fanout 1000]
                                  [--no-peers] [--json out.json]

Workloads (each step a Python function that does nothing):

* ``dag``: 1,000 components in 10 layers of 100, each depending on one of the layer before;
* ``chain``: 200 components, each after the previous one;
* ``fanout``: one component over a 1,000-item ``ParallelFor`` (static list).

chute compiles each pipeline with ``chute.dsl``, submits it and runs it with the engine's
Controller on the :class:`~chute.executors.python.PythonExecutor` (each step a compiled
``script`` template forked from a warm zygote, its own process, logs, outputs and status
as any step). The peers run the same shapes with their own defaults for local runs:
Prefect 3 (``@task``s in a ``@flow``; ``.submit``/``.map`` on the default thread-pool task
runner, with its ephemeral API server) and Dagster (a ``@job`` of ``@op``s, dynamic
outputs for the fan-out, ``execute_in_process``). Each is installed by this script with pip
into its own virtual environment (``/tmp/bench-prefect``, ``/tmp/bench-dagster``); a peer
whose install fails is skipped with the reason printed. ``--quick`` runs 100 / 50 / 100.

CPU per step counts every process of the system during the run (chute: the controller,
the zygote, and from each step's status.json its supervisor and step process; a peer:
its process tree), which says more than wall time on a loaded machine.

Every system gets one untimed warm-up run first (chute: the zygote and the fork server;
Prefect: its ephemeral server; Dagster: its instance), then the timed run.
Overhead per step = wall time of the run / number of steps (the steps do nothing, so
all of it is overhead). Ratios are peer / chute (higher is better for chute). Target
(issue 5): chute at least 10x less overhead than the best peer, and under 2 ms per step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.dsl import ParallelFor, compile_pipeline, component, pipeline

PEERS = {"prefect": "prefect", "dagster": "dagster"}  # peer -> pip requirement


# ---------------------------------------------------------------- chute workloads


@component
def noop() -> None:
    """Nothing at all."""


@component
def item(x: int) -> None:
    """Nothing, for one loop item."""


def dag_pipeline(n: int, width: int = 100):
    width = min(width, n)

    @pipeline(name="bench-sdk-dag")
    def bench_dag():
        tasks = []
        for i in range(n):
            t = noop()
            if i >= width:
                t.after(tasks[i - width])
            tasks.append(t)

    return bench_dag


def chain_pipeline(n: int):
    @pipeline(name="bench-sdk-chain")
    def bench_chain():
        prev = None
        for _ in range(n):
            t = noop()
            if prev is not None:
                t.after(prev)
            prev = t

    return bench_chain


def fanout_pipeline(n: int):
    @pipeline(name="bench-sdk-fanout")
    def bench_fanout():
        with ParallelFor(list(range(n))) as x:
            item(x=x)

    return bench_fanout


def run_chute(pipe, home: Path, max_running: int) -> tuple[dict[str, float], str]:
    """Compile, submit and run one pipeline on the warm executor; ({wall, cpu}, phase).

    CPU is the controller's (this process, all threads), the zygote's and, from each
    step's status.json, its supervisor's and its step process's: supervisors are not
    our children once they exit, so rusage alone would miss them."""
    import psutil

    from chute.config import load_settings
    from chute.engine.controller import Controller
    from chute.engine.submit import submit
    from chute.executors.python import PythonExecutor
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    row = submit(store, load_resource(compile_pipeline(pipe)))
    executor = PythonExecutor().start()
    ctl = Controller(store, settings, executor, max_running=max_running)
    try:
        # untimed warm-up: a one-step pipeline brings up the zygote and its first workers
        warm = submit(store, load_resource(compile_pipeline(chain_pipeline(1))))
        ctl.run_until_done([warm.uid])
        zygotes = [psutil.Process(pid) for pid in executor.zygote_pids().values()]
        c0, z0 = _cpu([]), _cpu(zygotes, me=False)
        t0, e0 = time.perf_counter(), time.time()
        ctl.run_until_done([row.uid])
        wall = time.perf_counter() - t0
        parts = {"controller": _cpu([]) - c0, "zygote": _cpu(zygotes, me=False) - z0,
                 **_steps_cpu(home, e0)}
    finally:
        ctl.close()
        executor.close()
    with store.read() as s:
        phase = q.get_workflow(s, row.uid).phase
    store.dispose()
    return {"wall": wall, "cpu": sum(parts.values()), "parts": parts}, phase


def _cpu(procs, me: bool = True) -> float:
    t = os.times()
    total = t.user + t.system if me else 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001, S112 - gone: counted up to now
            continue
    return total


def _steps_cpu(home: Path, since: float) -> dict[str, float]:
    """Supervisor and step CPU seconds of the attempts that started after ``since``."""
    total = {"supervisors": 0.0, "steps": 0.0}
    for status in home.rglob("status.json"):
        data = json.loads(status.read_text())
        if (data.get("started_at") or since) >= since:
            usage = data.get("usage") or {}
            total["supervisors"] += usage.get("supervisor_cpu", 0.0)
            total["steps"] += usage.get("step_cpu", 0.0)
    return total


# ---------------------------------------------------------------- peers

PREFECT_SCRIPT = '''
import json, sys, time
from prefect import flow, task

def tree_cpu():
    """CPU seconds of this process, its live descendants and its reaped children."""
    import os, resource
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(parts[1]), []).append((int(d), int(parts[11]) + int(parts[12])))
    ticks, todo = 0, [os.getpid()]
    while todo:
        for pid, t in kids.get(todo.pop(), []):
            ticks += t
            todo.append(pid)
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime + ticks / os.sysconf("SC_CLK_TCK")

@task
def noop(x=None):
    return None

@flow
def dag(n, width):
    futs = []
    for i in range(n):
        futs.append(noop.submit(wait_for=[futs[i - width]] if i >= width else None))
    for f in futs:
        f.result()

@flow
def chain(n):
    for _ in range(n):
        noop()

@flow
def fanout(n):
    for f in noop.map(list(range(n))):
        f.result()

sizes = json.loads(sys.argv[1])
chain(1)  # warm-up: starts the ephemeral API server
out = {}
for name, fn, args in (("dag", dag, (sizes["dag"], min(100, sizes["dag"]))),
                       ("chain", chain, (sizes["chain"],)),
                       ("fanout", fanout, (sizes["fanout"],))):
    if args[0] <= 0:
        continue
    c0, t0 = tree_cpu(), time.perf_counter()
    fn(*args)
    out[name] = {"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0}
print("RESULT " + json.dumps(out), flush=True)
'''

DAGSTER_SCRIPT = '''
import json, sys, time
from dagster import DagsterInstance, DynamicOut, DynamicOutput, In, Nothing, job, op

def tree_cpu():
    """CPU seconds of this process, its live descendants and its reaped children."""
    import os, resource
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(parts[1]), []).append((int(d), int(parts[11]) + int(parts[12])))
    ticks, todo = 0, [os.getpid()]
    while todo:
        for pid, t in kids.get(todo.pop(), []):
            ticks += t
            todo.append(pid)
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime + ticks / os.sysconf("SC_CLK_TCK")

@op(ins={"after": In(Nothing)})
def noop():
    return None

@op
def item(x):
    return None

def dag_job(n, width):
    @job(name="dag")
    def j():
        outs = []
        for i in range(n):
            alias = noop.alias(f"t{i}")
            outs.append(alias(after=outs[i - width]) if i >= width else alias())
    return j

def chain_job(n):
    @job(name="chain")
    def j():
        prev = None
        for i in range(n):
            alias = noop.alias(f"t{i}")
            prev = alias(after=prev) if prev is not None else alias()
    return j

def fanout_job(n):
    @op(out=DynamicOut())
    def items():
        for i in range(n):
            yield DynamicOutput(i, mapping_key=str(i))

    @job(name="fanout")
    def j():
        items().map(item)
    return j

sizes = json.loads(sys.argv[1])
instance = DagsterInstance.ephemeral()
chain_job(1).execute_in_process(instance=instance)  # warm-up
out = {}
for name, make, args in (("dag", dag_job, (sizes["dag"], min(100, sizes["dag"]))),
                         ("chain", chain_job, (sizes["chain"],)),
                         ("fanout", fanout_job, (sizes["fanout"],))):
    if args[0] <= 0:
        continue
    j = make(*args)  # building the job is part of the run, as compiling is for chute
    c0, t0 = tree_cpu(), time.perf_counter()
    assert j.execute_in_process(instance=instance).success
    out[name] = {"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0}
print("RESULT " + json.dumps(out), flush=True)
'''

SCRIPTS = {"prefect": PREFECT_SCRIPT, "dagster": DAGSTER_SCRIPT}


def install(peer: str) -> tuple[Path | None, str]:
    """A virtual environment with the peer installed from PyPI; (python, "") or (None, why)."""
    venv = Path(f"/tmp/bench-{peer}")
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {peer}; print({peer}.__version__)"]
    if python.exists() and subprocess.run(check, check=False, capture_output=True).returncode == 0:
        return python, ""
    steps = ([sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "--quiet", PEERS[peer]])
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=1200)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"{' '.join(cmd[:4])}: {e}"
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return None, f"{' '.join(cmd[:4])} failed: {' / '.join(tail)}"
    return python, ""


def run_peer(peer: str, python: Path, sizes: dict[str, int]) -> tuple[dict | None, str]:
    """Run the peer's script; ({workload: wall seconds}, "") or (None, why)."""
    version = subprocess.run([str(python), "-c", f"import {peer}; print({peer}.__version__)"],
                             check=False, capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / f"bench_{peer}.py"
        script.write_text(textwrap.dedent(SCRIPTS[peer]))
        env = dict(os.environ, PREFECT_HOME=str(Path(tmp) / "prefect"),
                   PREFECT_LOGGING_LEVEL="WARNING", DAGSTER_HOME=tmp,
                   # the ephemeral API server takes longer than its default 20 s to come up
                   # on a loaded machine
                   PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
        env.pop("PREFECT_API_URL", None)
        try:
            proc = subprocess.run([str(python), str(script), json.dumps(sizes)], cwd=tmp,
                                  env=env, check=False, capture_output=True, text=True, timeout=3600)
        except subprocess.TimeoutExpired:
            return None, "timed out"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return {"version": version, **json.loads(line[7:])}, ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return None, f"exit {proc.returncode}: {' / '.join(tail)}"


# ---------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 / 50 / 100 steps")
    ap.add_argument("--dag", type=int)
    ap.add_argument("--chain", type=int)
    ap.add_argument("--fanout", type=int)
    ap.add_argument("--max-running", type=int, default=max(16, 8 * (os.cpu_count() or 2)))
    ap.add_argument("--no-peers", action="store_true", help="chute only")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    default = (100, 50, 100) if args.quick else (1000, 200, 1000)
    sizes = {"dag": args.dag if args.dag is not None else default[0],
             "chain": args.chain if args.chain is not None else default[1],
             "fanout": args.fanout if args.fanout is not None else default[2]}
    makers = {"dag": dag_pipeline, "chain": chain_pipeline, "fanout": fanout_pipeline}
    print(f"sizes {json.dumps(sizes)}  cpus {os.cpu_count()}  max_running {args.max_running}",
          flush=True)

    results: dict[str, dict[str, dict[str, float]]] = {"chute": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in sizes.items():
            if n <= 0:
                continue
            res, phase = run_chute(makers[name](n), Path(tmp) / name, args.max_running)
            if phase != "Succeeded":
                print(f"chute {name}: the run ended {phase}", file=sys.stderr)
            results["chute"][name] = res
            _print_run("chute", name, n, res, "warm zygotes")

    for peer in ([] if args.no_peers else PEERS):
        python, why = install(peer)
        res = None
        if python is not None:
            res, why = run_peer(peer, python, sizes)
        if res is None:
            print(f"{peer:8s} skipped: {why}", flush=True)
            continue
        version = res.pop("version")
        results[peer] = res
        for name, r in res.items():
            _print_run(peer, name, sizes[name], r, f"{peer} {version}")

    figures: dict = {"sizes": sizes, "load_average": os.getloadavg(), "ms_per_step": {},
                     "best_peer_over_chute": {}}
    peers = [p for p in results if p != "chute"]
    for measure in ("wall", "cpu"):
        print(f"\n{measure} ms per step, and peer/chute ratio")
        print(f"{'workload':9s} {'chute':>9s}" + "".join(f" {p:>9s} {'x':>6s}" for p in peers))
        for name, n in sizes.items():
            if name not in results["chute"]:
                continue
            ms = {k: 1000 * r[name][measure] / n for k, r in results.items() if name in r}
            figures["ms_per_step"].setdefault(name, {})[measure] = {
                k: round(v, 3) for k, v in ms.items()}
            line = f"{name:9s} {ms['chute']:9.2f}"
            for p in peers:
                line += f" {ms[p]:9.2f} {ms[p] / ms['chute']:6.1f}" if p in ms else " " * 17
            others = [v for k, v in ms.items() if k != "chute"]
            if others:
                ratio = min(others) / ms["chute"]
                figures["best_peer_over_chute"].setdefault(name, {})[measure] = round(ratio, 2)
                line += f"   best peer / chute = {ratio:.1f}x"
            print(line, flush=True)
    print("\nchute: each step its own process (forked from a warm zygote), private /tmp, logs "
          "and outputs collected, status recorded; the peers run tasks inside their own "
          "process (Prefect: threads; Dagster: one after another in execute_in_process)")
    print("targets (issue 5): chute < 2 ms/step, and best peer / chute >= 10x")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cpus")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def _print_run(system: str, name: str, n: int, r: dict, what: str) -> None:
    print(f"{system:8s} {name:7s} {n:5d} steps  wall {r['wall']:7.2f} s "
          f"{1000 * r['wall'] / n:8.2f} ms/step   cpu {1000 * r['cpu'] / n:8.2f} ms/step"
          f"  ({what})", flush=True)
    if r.get("parts"):  # where chute's CPU goes, per step
        print(" " * 17 + "cpu ms/step: " + ", ".join(
            f"{k} {1000 * v / n:.2f}" for k, v in r["parts"].items()), flush=True)


if __name__ == "__main__":
    main()
