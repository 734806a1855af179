"""D-5 (RELIABILITY.md): large DAG scaling.

Generated DAGs (a linear chain, a wide fan-out, random layers) of no-op ``true`` steps run
through the real Controller and the real LocalExecutor. For each run it measures:

* the controller's CPU time: user + system CPU of this process (the driver loop, the
  store commits, the executor's client side), not of the steps, which run in supervisor
  processes outside it;
* the latency from "deps met" to "launched" of every step. Deps met is the latest
  recorded ``finishedAt`` of the step's dependencies (written by their supervisors when
  the process exited; the workflow's start for a root). Launched is when the controller
  handed the step to the executor (a thin wrapper around the real LocalExecutor records
  the time ``launch`` returned: no engine change). A step may also have to wait for a
  free slot of the controller's ``max_running`` M: the i-th launch needs i - M + 1 steps
  to have finished, so it is eligible only from the (i - M + 1)-th ``finishedAt`` on.
  Latency = launched - max(deps met, slot free): what the scheduler adds (noticing the
  finish, deciding, committing, launching). The step's own ``startedAt`` (its process
  running, after the supervisor's fork and exec) gives a second figure, ``start_p99_ms``,
  reported but not judged: it measures the executor on a loaded machine, not the
  scheduler;
* the controller process's peak RSS (sampled).

Pass criteria (D-5): CPU per completed node roughly constant (CPU(n) <= 1.2 x n/1k x
CPU(1k), i.e. 10k <= 12x 1k), p99 latency <= 200 ms, RSS <= 1 GiB. The heavy trial
(@pytest.mark.heavy, CHUTE_HEAVY=1) runs 1k/5k/10k x 3 shapes and judges exactly these.
CI runs the three shapes at 1k and the fan-out at 5k (~50 s on a loaded 2-core machine)
and judges RSS, CPU with a slack of 1.5 instead of 1.2 (CPU time is noisy on a shared
machine), every run's p99 against 200 ms, and that the wide shapes' p99 does not grow
with the DAG's size (5k <= max(200 ms, 2 x 1k)). The wide shapes meet the limit since the
controller bounds the work per turn (``Controller.turn_budget``): a thousand tasks ready
at once are created, committed and launched a slice per turn, so the first launches no
longer wait for all of them to be created and committed.
"""

from __future__ import annotations

import gc
import json
import os
import random
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

NOOP = {"name": "noop", "container": {"image": "busybox", "command": ["true"]}}
P99_LIMIT = 0.200  # seconds
RSS_LIMIT = 1 << 30  # bytes
CPU_SLACK = 1.2  # CPU per node may grow by this factor at most (10k <= 12 x 1k)
# CI: CPU time of one run varies by +-30 % on a machine shared with other jobs (cache and
# scheduler noise), so CI allows 1.5 (still failing on a per-node cost that grows with n)
CI_CPU_SLACK = 1.5


def generate(shape: str, n: int, seed: int = 5) -> tuple[dict, dict[str, list[str]]]:
    """A Workflow with an ``n``-task DAG of the given shape, and each task's dependencies.

    chain: t0 <- t1 <- ... ; fanout: t0, then t1..t(n-1) all depending on t0; layered:
    layers of 50-150 tasks, each depending on 1-3 random tasks of the layer before.
    """
    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    if shape == "chain":
        for i in range(n):
            deps[f"t{i}"] = [f"t{i - 1}"] if i else []
    elif shape == "fanout":
        for i in range(n):
            deps[f"t{i}"] = ["t0"] if i else []
    elif shape == "layered":
        prev: list[str] = []
        i = 0
        while i < n:
            layer = []
            for _ in range(min(rng.randint(50, 150), n - i)):
                name = f"t{i}"
                deps[name] = rng.sample(prev, min(len(prev), rng.randint(1, 3))) if prev else []
                layer.append(name)
                i += 1
            prev = layer
    else:
        raise ValueError(shape)
    tasks = [{"name": t, "template": "noop", **({"dependencies": d} if d else {})}
             for t, d in deps.items()]
    doc = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
           "metadata": {"name": f"d5-{shape}-{n}"},
           "spec": {"entrypoint": "main",
                    "templates": [{"name": "main", "dag": {"tasks": tasks}}, NOOP]}}
    return doc, deps


@dataclass
class Figures:
    """What one run measured."""

    shape: str
    nodes: int
    phase: str
    wall_s: float
    cpu_s: float  # controller process, user + system
    driver_cpu_s: float  # the driver loop's thread alone
    p50_ms: float
    p99_ms: float
    max_ms: float
    start_p99_ms: float  # to the step's process start (supervisor fork + exec included)
    peak_rss_mb: float

    @property
    def cpu_ms_per_node(self) -> float:
        return 1000 * self.cpu_s / self.nodes

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["cpu_ms_per_node"] = round(self.cpu_ms_per_node, 3)
        return d


class RssSampler(threading.Thread):
    """Peak resident memory of this process, sampled every 20 ms while running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        return max(self.peak, self.proc.memory_info().rss)


class TimedExecutor:
    """The real executor, recording when each launch was handed over (node id -> time)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.launched: dict[str, float] = {}

    def launch(self, spec):
        handle = self.inner.launch(spec)
        self.launched[spec.node_id] = time.time()
        return handle

    def __getattr__(self, name):
        return getattr(self.inner, name)


def latencies(nodes: dict, deps: dict[str, list[str]], wf_started: float,
              max_running: int, launched: dict[str, float] | None = None) -> list[float]:
    """Deps-met-to-launched latency of each step (see the module docstring); launch
    times from ``launched`` (node id -> time), else the nodes' ``started_at``."""
    def at(n) -> float:
        return launched[n.node_id] if launched is not None else n.started_at

    finishes = sorted(n.finished_at for n in nodes.values())
    out = []
    for i, node in enumerate(sorted(nodes.values(), key=at)):
        ready = max((nodes[d].finished_at for d in deps[node.display_name]), default=wf_started)
        slot = finishes[i - max_running] if i >= max_running else wf_started
        out.append(max(0.0, at(node) - max(ready, slot)))
    return out


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def run_dag(home: Path, shape: str, n: int) -> Figures:
    """Submit one generated DAG and drive it with a fresh Controller + LocalExecutor."""
    from chute.config import load_settings
    from chute.engine.controller import Controller
    from chute.engine.submit import submit
    from chute.executors.local import LocalExecutor
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store

    doc, deps = generate(shape, n)
    settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
    store = open_store(settings)
    row = submit(store, load_resource(doc))
    # the submit ran here, in the controller's process (in use it runs in the CLI's or the
    # server's): collect its garbage now, so that its debt is not a collection of all
    # generations (~0.3 s under load) charged to the run's first launches
    gc.collect()
    executor = TimedExecutor(LocalExecutor().start())
    ctl = Controller(store, settings, executor)
    sampler = RssSampler()
    sampler.start()
    proc = psutil.Process()
    cpu0, thread0, t0 = proc.cpu_times(), time.thread_time(), time.perf_counter()
    try:
        ctl.run_until_done([row.uid], timeout=600)
    finally:
        wall = time.perf_counter() - t0
        thread_cpu = time.thread_time() - thread0
        cpu1 = proc.cpu_times()
        peak = sampler.stop()
        ctl.close()
        executor.close()
    with store.read() as s:
        wf = q.get_workflow(s, row.uid)
        pods = {x.display_name: x for x in q.nodes_of(s, row.uid) if x.type == "Pod"}
    store.dispose()
    # thousands of step directories: remove them now, not at some later pytest session
    # (the base temp directory is shared by every session of this user)
    shutil.rmtree(home, ignore_errors=True)
    assert len(pods) == n and all(p.phase == "Succeeded" for p in pods.values())
    lat = latencies(pods, deps, wf.started_at, ctl.max_running, executor.launched)
    started = latencies(pods, deps, wf.started_at, ctl.max_running)
    return Figures(
        shape=shape, nodes=n, phase=wf.phase, wall_s=round(wall, 2),
        cpu_s=round((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system), 3),
        driver_cpu_s=round(thread_cpu, 3),
        p50_ms=round(1000 * percentile(lat, 0.50), 1),
        p99_ms=round(1000 * percentile(lat, 0.99), 1),
        max_ms=round(1000 * max(lat), 1),
        start_p99_ms=round(1000 * percentile(started, 0.99), 1), peak_rss_mb=round(peak / 2**20, 1))


def check(figures: list[Figures], *, full: bool) -> None:
    """D-5's pass criteria over a set of runs (CPU and latency growth compared within
    each shape). ``full``: the CPU slack of the full trial, else CI's."""
    for f in figures:
        print("D-5", json.dumps(f.as_dict()), flush=True)
    for f in figures:
        assert f.phase == "Succeeded", f
        assert f.p99_ms <= 1000 * P99_LIMIT, f"{f.shape} {f.nodes}: p99 {f.p99_ms} ms"
        assert f.peak_rss_mb * 2**20 <= RSS_LIMIT, f
    for shape in {f.shape for f in figures}:
        runs = sorted((f for f in figures if f.shape == shape), key=lambda f: f.nodes)
        base = runs[0]
        for f in runs[1:]:
            slack = CPU_SLACK if full else CI_CPU_SLACK
            limit = slack * (f.nodes / base.nodes) * base.cpu_s
            assert f.cpu_s <= limit, (
                f"{shape}: {f.nodes} nodes took {f.cpu_s} s CPU, more than "
                f"{slack} x {f.nodes // base.nodes} x {base.cpu_s} s at {base.nodes}")
            assert f.p99_ms <= max(1000 * P99_LIMIT, 2 * base.p99_ms), (
                f"{shape}: p99 grew from {base.p99_ms} ms at {base.nodes} nodes "
                f"to {f.p99_ms} ms at {f.nodes}")


def test_generated_shapes():
    doc, deps = generate("layered", 1000)
    tasks = doc["spec"]["templates"][0]["dag"]["tasks"]
    assert len(tasks) == 1000 and len({t["name"] for t in tasks}) == 1000
    index = {t: i for i, t in enumerate(deps)}
    assert all(index[d] < index[t] for t, ds in deps.items() for d in ds)  # acyclic
    assert sum(1 for d in deps.values() if not d) >= 50  # a first layer
    assert all(1 <= len(d) <= 3 for d in deps.values() if d)
    assert generate("fanout", 5)[1] == {"t0": [], **{f"t{i}": ["t0"] for i in range(1, 5)}}
    assert generate("chain", 3)[1] == {"t0": [], "t1": ["t0"], "t2": ["t1"]}


def test_latency_accounts_for_dependencies_and_slots():
    class N:
        def __init__(self, name, start, end):
            self.node_id = self.display_name = name
            self.started_at, self.finished_at = start, end

    nodes = {"a": N("a", 1.0, 2.0), "b": N("b", 1.1, 3.0), "c": N("c", 2.5, 4.0)}
    # c depends on a (done at 2.0) but waited for one of 2 slots: free at 2.0 as well
    assert latencies(nodes, {"a": [], "b": [], "c": ["a"]}, 0.9, 2) == pytest.approx(
        [0.1, 0.2, 0.5])
    # with one slot, b could start only when a finished (2.0): it started early, so 0
    assert latencies(nodes, {"a": [], "b": [], "c": ["b"]}, 0.9, 1)[1:] == [0.0, 0.0]
    # launch times given: they are what is measured, and they set the order
    got = latencies(nodes, {"a": [], "b": [], "c": ["a"]}, 0.9, 2,
                    {"a": 0.95, "b": 1.05, "c": 2.1})
    assert got == pytest.approx([0.05, 0.15, 0.1])


@pytest.fixture
def scratch(tmp_path):
    """Where the chute homes go: a tmpfs (/dev/shm) when there is one, else tmp_path.

    Thousands of step directories are made and removed per run; on a disk shared with
    other jobs that costs more than the runs themselves (7 s to remove 1k steps under
    load), and it is the disk, not the scheduler, that it would measure.
    ``CHUTE_D5_DIR`` chooses another place (a disk, to include it)."""
    base = os.environ.get("CHUTE_D5_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm")
                                               and os.access("/dev/shm", os.W_OK) else None)
    if base is None:
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="chute-d5-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_d5_large_dag_scaling_ci(scratch):
    """CI sizes: every shape at 1k, and the fan-out at 5k against its 1k."""
    figures = [run_dag(scratch / f"{s}-1000", s, 1000) for s in ("chain", "fanout", "layered")]
    figures.append(run_dag(scratch / "fanout-5000", "fanout", 5000))
    check(figures, full=False)


@pytest.mark.heavy
def test_d5_large_dag_scaling_full(scratch):
    """The full trial: 1k, 5k and 10k nodes of each shape."""
    figures = [run_dag(scratch / f"{s}-{n}", s, n)
               for s in ("chain", "fanout", "layered") for n in (1000, 5000, 10000)]
    check(figures, full=True)
