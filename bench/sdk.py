"""SDK benchmark (not a test): per-step overhead of no-op Python components, chute in its
two local modes beside Prefect and Dagster running the same workloads, in one invocation.

    .venv/bin/python bench/sdk.py [--quick] [--dag 1000] [--chain 200] [--fanout 1000]
                                  [--mode both|process|reused] [--no-peers] [--repeat 3]
                                  [--json out.json]

Workloads (each step a Python function that does nothing):

* ``dag``: 1,000 components in 10 layers of 100, each depending on one of the layer before;
* ``chain``: 200 components, each after the previous one;
* ``fanout``: one component over a 1,000-item ``ParallelFor`` (static list).

chute compiles each pipeline with ``chute.dsl``, submits it and runs it with the engine's
Controller on the default :class:`~chute.executors.python.PythonExecutor`, twice:

* "chute (process per step)": plain ``@component``s; each step a compiled ``script``
  template forked from a warm zygote, its own process, logs, outputs and status;
* "chute (reused workers)": the same pipelines built from ``@component(reuse_worker=True)``
  (what a user writes to opt in); each step runs in a long-lived worker process that ran
  earlier steps, with the same per-step logs, outputs, status, timeout and retries.

The peers run the same shapes with their own defaults for local runs:
Prefect 3 (``@task``s in a ``@flow``; ``.submit``/``.map`` on the default thread-pool task
runner, with its ephemeral API server) and Dagster (a ``@job`` of ``@op``s, dynamic
outputs for the fan-out, ``execute_in_process``). Each is installed by this script with pip
into its own virtual environment (``/tmp/bench-prefect``, ``/tmp/bench-dagster``); a peer
whose install fails is skipped with the reason printed. ``--quick`` runs 100 / 50 / 100.

CPU per step counts every process of the system during the run (chute: the controller,
the zygotes, the reused workers (CPU time before and after the run of each worker
process the pool lists, plus workers reaped meanwhile), and from each step's status.json
its supervisor and step process (a reused step has none); a peer: its process tree), which says more than wall time on a loaded
machine.

Every system gets one untimed warm-up run first (chute: one independent step per CPU,
which brings up the zygote and the fork server, or the pool's reused workers, one per CPU,
as the timed run uses them; Prefect: its ephemeral server; Dagster: its instance), then
the timed runs: ``--repeat`` (default 3) of each workload, one after another in the same
process (chute: the same controller and workers, as a user's ``chute controller`` runs
one pipeline after another), of which the median by wall time is reported (every run's
wall is printed too): a machine shared with other work slows single runs by 2x at times,
chute's more than the peers' (a step of it is two processes waking each other).
Overhead per step = wall time of the run / number of steps (the steps do nothing, so
all of it is overhead). The summary gives each chute mode's ratio best peer / chute
(higher is better for chute) and says which mode meets the target (issue 5, on wall
time): at least 10x less overhead than the best peer, and under 2 ms per step.
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


@component(reuse_worker=True)
def noop_reused() -> None:
    """Nothing at all, in a reused worker process."""


@component(reuse_worker=True)
def item_reused(x: int) -> None:
    """Nothing, for one loop item, in a reused worker process."""


def dag_pipeline(n: int, reuse: bool = False, width: int = 100):
    width = min(width, n)
    step = noop_reused if reuse else noop

    @pipeline(name="bench-sdk-dag")
    def bench_dag():
        tasks = []
        for i in range(n):
            t = step()
            if i >= width:
                t.after(tasks[i - width])
            tasks.append(t)

    return bench_dag


def chain_pipeline(n: int, reuse: bool = False):
    step = noop_reused if reuse else noop

    @pipeline(name="bench-sdk-chain")
    def bench_chain():
        prev = None
        for _ in range(n):
            t = step()
            if prev is not None:
                t.after(prev)
            prev = t

    return bench_chain


def fanout_pipeline(n: int, reuse: bool = False):
    step = item_reused if reuse else item

    @pipeline(name="bench-sdk-fanout")
    def bench_fanout():
        with ParallelFor(list(range(n))) as x:
            step(x=x)

    return bench_fanout


def run_chute(make, n: int, reuse: bool, home: Path, max_running: int,
              repeat: int = 1) -> tuple[dict[str, float], str]:
    """Compile, submit and run one pipeline (``make(n, reuse)``) on the PythonExecutor,
    ``repeat`` times on the same controller; (the median run's {wall, cpu, parts} with
    "walls": every run's wall, the worst phase).

    CPU is the controller's (this process, all threads), the zygotes', the reused
    workers' and, from each step's status.json, its supervisor's and its step process's:
    supervisors are not our children once they exit, so rusage alone would miss them."""
    from chute.config import load_settings
    from chute.engine.controller import Controller
    from chute.engine.submit import submit
    from chute.executors.python import PythonExecutor
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    resource = load_resource(compile_pipeline(make(n, reuse)))
    # the default executor: the pipeline's components say where their steps run
    executor = PythonExecutor().start()
    ctl = Controller(store, settings, executor, max_running=max_running)
    try:
        # untimed warm-up: independent steps, one per CPU, bring up the zygote (or the
        # reused workers: as many as the pool keeps, one per CPU, as the run will use)
        cpus = os.cpu_count() or 1
        warm = submit(store, load_resource(compile_pipeline(dag_pipeline(cpus, reuse, cpus))))
        ctl.run_until_done([warm.uid])
        time.sleep(1.0)  # a worker the warm-up started may still be starting: let it finish
        runs, uids = [], []
        for _ in range(repeat):
            row = submit(store, resource)
            uids.append(row.uid)
            zygotes = _procs(executor.zygote_pids().values())
            workers0, reaped0 = _worker_cpu(executor, {}), _reaped_cpu()
            c0, z0 = _cpu([]), _cpu(zygotes, me=False)
            t0, e0 = time.perf_counter(), time.time()
            ctl.run_until_done([row.uid])
            wall = time.perf_counter() - t0
            parts = {"controller": _cpu([]) - c0, "zygote": _cpu(zygotes, me=False) - z0}
            if reuse:  # live workers' CPU since the first look, plus that of workers that
                # exited and were reaped since (the pool waits for its workers)
                workers1 = _worker_cpu(executor, workers0)
                parts["workers"] = sum(workers1.values()) - sum(
                    workers0.get(pid, 0.0) for pid in workers1) + _reaped_cpu() - reaped0
            parts.update(_steps_cpu(home, e0))
            runs.append({"wall": wall, "cpu": sum(parts.values()), "parts": parts})
    finally:
        ctl.close()
        executor.close()
    with store.read() as s:
        phases = {q.get_workflow(s, uid).phase for uid in uids}
    store.dispose()
    phase = "Succeeded" if phases == {"Succeeded"} else ", ".join(sorted(phases))
    return {**median_run(runs), "walls": [r["wall"] for r in runs]}, phase


def median_run(runs: list[dict]) -> dict:
    """The run of median wall time (the lower one of an even count)."""
    return sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]


def _reaped_cpu() -> float:
    """CPU seconds of this process's children that exited and were waited for."""
    t = os.times()
    return t.children_user + t.children_system


def _procs(pids) -> list:
    import psutil

    out = []
    for pid in pids:
        try:
            out.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return out


def _worker_cpu(executor, known: dict[int, float]) -> dict[int, float]:
    """CPU seconds so far of each live reused worker process, by pid (``known``: pids
    seen before, looked at again even if the pool no longer lists them).

    The pool's own list (``PythonExecutor.pool.worker_pids()``), else this process's
    descendants running ``chute.executors.reused_worker``. A worker that exited (retired
    after ``MAX_STEPS``) is counted by the caller from this process's reaped children."""
    import psutil

    pids = set(known)
    pool = getattr(executor, "pool", None)
    if pool is not None:
        for found in pool.worker_pids().values():
            pids.update(found)
    else:
        for child in psutil.Process().children(recursive=True):
            try:
                if any("chute.executors.reused_worker" in a for a in child.cmdline()):
                    pids.add(child.pid)
            except psutil.Error:
                continue
    out = {}
    for p in _procs(pids):
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        out[p.pid] = t.user + t.system
    return out


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

sizes, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
chain(1)  # warm-up: starts the ephemeral API server
out = {}
for name, fn, args in (("dag", dag, (sizes["dag"], min(100, sizes["dag"]))),
                       ("chain", chain, (sizes["chain"],)),
                       ("fanout", fanout, (sizes["fanout"],))):
    if args[0] <= 0:
        continue
    out[name] = []
    for _ in range(repeat):
        c0, t0 = tree_cpu(), time.perf_counter()
        fn(*args)
        out[name].append({"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0})
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

sizes, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
instance = DagsterInstance.ephemeral()
chain_job(1).execute_in_process(instance=instance)  # warm-up
out = {}
for name, make, args in (("dag", dag_job, (sizes["dag"], min(100, sizes["dag"]))),
                         ("chain", chain_job, (sizes["chain"],)),
                         ("fanout", fanout_job, (sizes["fanout"],))):
    if args[0] <= 0:
        continue
    out[name] = []
    for _ in range(repeat):
        j = make(*args)  # (outside the timing, as compiling is for chute)
        c0, t0 = tree_cpu(), time.perf_counter()
        assert j.execute_in_process(instance=instance).success
        out[name].append({"wall": time.perf_counter() - t0, "cpu": tree_cpu() - c0})
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


def run_peer(peer: str, python: Path, sizes: dict[str, int],
             repeat: int = 1) -> tuple[dict | None, str]:
    """Run the peer's script (each workload ``repeat`` times); ({"version": v, workload:
    the median run's {wall, cpu} with "walls"}, "") or (None, why)."""
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
            proc = subprocess.run([str(python), str(script), json.dumps(sizes), str(repeat)],
                                  cwd=tmp,
                                  env=env, check=False, capture_output=True, text=True, timeout=3600)
        except subprocess.TimeoutExpired:
            return None, "timed out"
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            runs = json.loads(line[7:])
            return {"version": version, **{name: {**median_run(r), "walls": [x["wall"] for x in r]}
                                           for name, r in runs.items()}}, ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return None, f"exit {proc.returncode}: {' / '.join(tail)}"


# ---------------------------------------------------------------- main


MODES = {"process": ("chute", False, "chute (process per step)"),
         "reused": ("chute-reused", True, "chute (reused workers)")}  # -> (key, reuse, label)
TARGET_MS, TARGET_RATIO = 2.0, 10.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 / 50 / 100 steps")
    ap.add_argument("--dag", type=int)
    ap.add_argument("--chain", type=int)
    ap.add_argument("--fanout", type=int)
    ap.add_argument("--mode", choices=("both", *MODES), default="both",
                    help="chute's modes to run: a process per step, reused workers, or both")
    ap.add_argument("--max-running", type=int, default=max(16, 8 * (os.cpu_count() or 2)))
    ap.add_argument("--no-peers", action="store_true", help="chute only")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed runs of each workload per system; the median is reported")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    default = (100, 50, 100) if args.quick else (1000, 200, 1000)
    sizes = {"dag": args.dag if args.dag is not None else default[0],
             "chain": args.chain if args.chain is not None else default[1],
             "fanout": args.fanout if args.fanout is not None else default[2]}
    makers = {"dag": dag_pipeline, "chain": chain_pipeline, "fanout": fanout_pipeline}
    modes = list(MODES) if args.mode == "both" else [args.mode]
    print(f"sizes {json.dumps(sizes)}  cpus {os.cpu_count()}  max_running {args.max_running}",
          flush=True)

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, n in sizes.items():
            if n <= 0:
                continue
            for mode in modes:
                key, reuse, label = MODES[mode]
                res, phase = run_chute(makers[name], n, reuse, Path(tmp) / f"{name}-{mode}",
                                       args.max_running, args.repeat)
                if phase != "Succeeded":
                    print(f"{label} {name}: the run ended {phase}", file=sys.stderr)
                results.setdefault(key, {})[name] = res
                _print_run(key, name, n, res, label)

    for peer in ([] if args.no_peers else PEERS):
        python, why = install(peer)
        res = None
        if python is not None:
            res, why = run_peer(peer, python, sizes, args.repeat)
        if res is None:
            print(f"{peer:12s} skipped: {why}", flush=True)
            continue
        version = res.pop("version")
        results[peer] = res
        for name, r in res.items():
            _print_run(peer, name, sizes[name], r, f"{peer} {version}")

    figures = _summary(results, sizes)
    print("\nchute (process per step): each step its own process (forked from a warm zygote), "
          "private /tmp, logs and outputs collected, status recorded; chute (reused "
          "workers): the same per-step logs, outputs, status, timeouts and retries, the "
          "step run in a long-lived worker process (@component(reuse_worker=True)); the "
          "peers run tasks inside their own process (Prefect: threads; Dagster: one after "
          "another in execute_in_process)")
    print(f"load average during the run: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cpus")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


def _summary(results: dict, sizes: dict[str, int]) -> dict:
    """Print wall and CPU ms per step of every system, each chute mode with its ratio to
    the best peer (best peer / chute: higher is better for chute), then which chute mode
    meets issue 5's target on wall time; return the figures."""
    figures: dict = {"sizes": sizes, "load_average": os.getloadavg(), "ms_per_step": {},
                     "best_peer_over_chute": {}, "target_met": {}}
    ours = [key for key, _, _ in MODES.values() if key in results]
    peers = [p for p in results if p not in ours]
    met = {key: [] for key in ours}  # key -> [(workload, ms, ratio or None)] on wall time
    for measure in ("wall", "cpu"):
        print(f"\n{measure} ms per step; x = best peer / that chute mode")
        print(f"{'workload':9s}" + "".join(f" {k:>13s} {'x':>6s}" for k in ours)
              + "".join(f" {p:>9s}" for p in peers))
        for name, n in sizes.items():
            ms = {k: 1000 * r[name][measure] / n for k, r in results.items() if name in r}
            if not any(k in ms for k in ours):
                continue
            figures["ms_per_step"].setdefault(name, {})[measure] = {
                k: round(v, 3) for k, v in ms.items()}
            best = min((ms[p] for p in peers if p in ms), default=None)
            line = f"{name:9s}"
            for k in ours:
                if k not in ms:
                    line += " " * 21
                    continue
                ratio = best / ms[k] if best is not None else None
                line += f" {ms[k]:13.2f} " + (f"{ratio:6.1f}" if ratio else " " * 6)
                if ratio is not None:
                    figures["best_peer_over_chute"].setdefault(k, {}).setdefault(
                        name, {})[measure] = round(ratio, 2)
                if measure == "wall":
                    met[k].append((name, ms[k], ratio))
            line += "".join(f" {ms[p]:9.2f}" if p in ms else " " * 10 for p in peers)
            print(line, flush=True)
    print(f"\ntarget (issue 5), on wall time: < {TARGET_MS:g} ms/step and best peer / chute "
          f">= {TARGET_RATIO:g}x")
    labels = {key: label for key, _, label in MODES.values()}
    for k in ours:
        ok = [w for w, ms, r in met[k] if ms < TARGET_MS and r is not None and r >= TARGET_RATIO]
        fast = [w for w, ms, _ in met[k] if ms < TARGET_MS]
        figures["target_met"][k] = ok
        verdict = ("met in every workload" if met[k] and len(ok) == len(met[k]) else
                   f"met in {', '.join(ok)}" if ok else "not met")
        if not peers:
            verdict = f"< {TARGET_MS:g} ms/step in {len(fast)} of {len(met[k])} workloads " \
                      "(no peer ran: the ratio is unknown)"
        print(f"  {labels[k]:26s} {verdict}", flush=True)
    return figures


def _print_run(system: str, name: str, n: int, r: dict, what: str) -> None:
    print(f"{system:12s} {name:7s} {n:5d} steps  wall {r['wall']:7.2f} s "
          f"{1000 * r['wall'] / n:8.2f} ms/step   cpu {1000 * r['cpu'] / n:8.2f} ms/step"
          f"  ({what})", flush=True)
    if len(r.get("walls", ())) > 1:  # the median run's figures above; every run's wall
        print(" " * 21 + "wall ms/step of each run: " + ", ".join(
            f"{1000 * w / n:.2f}" for w in r["walls"]), flush=True)
    if r.get("parts"):  # where chute's CPU goes, per step
        print(" " * 21 + "cpu ms/step: " + ", ".join(
            f"{k} {1000 * v / n:.2f}" for k, v in r["parts"].items()), flush=True)


if __name__ == "__main__":
    main()
