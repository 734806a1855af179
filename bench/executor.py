"""Benchmark: LocalExecutor launch-to-result overhead per step over a bare process spawn.

Run: ``.venv/bin/python bench/executor.py [--steps 200] [--poll 0.0005] [--dir DIR]``

The results are waited for as the controller does: ``wait()`` until the supervisor
reports the end on the notify pipe, then ``poll()`` of the attempts reported
(``--poll`` only matters for an executor without ``wait``: it is then polled that often).

For no-op ``sh -c true`` steps it prints, for steps run one after another and two at a
time (and one after another with a private ``/tmp``):

* wall ms per step of a bare ``subprocess.run(['sh', '-c', 'true'])`` and of
  launch -> poll -> result through the executor (mean, and median of launch-to-result),
  and the difference of the means (the overhead);
* how long ``launch()`` blocks;
* CPU ms per step spent by the executor's machinery: the controller's ``launch`` and
  ``poll`` calls, the fork server, and the step's supervisor (from ``status.json``'s
  ``usage``). On a busy machine wall times swing with the load; CPU time does not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.executors.base import LaunchSpec
from chute.executors.local import LocalExecutor


def bare(n: int, width: int) -> float:
    """Mean wall seconds per bare ``sh -c true``, ``width`` at a time."""
    t = time.perf_counter()
    for _ in range(0, n, width):
        procs = [subprocess.Popen(["sh", "-c", "true"]) for _ in range(width)]
        for p in procs:
            p.wait()
    return (time.perf_counter() - t) / n


def make(root: Path, i: int, private: bool) -> LaunchSpec:
    extra = {"private_paths": ["/tmp/out.txt"], "output_paths": ["/tmp/out.txt"]} if private else {}
    return LaunchSpec(
        "bench",
        f"n{i}",
        0,
        root / f"s{i}",
        root / "logs" / f"n{i}.log",
        ["sh", "-c", "true"],
        **extra,
    )


def _cpu_of(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def executor_run(
    ex: LocalExecutor, root: Path, n: int, width: int, poll: float, private: bool = False
) -> dict[str, float]:
    """Per-step means (seconds) for ``n`` steps, ``width`` at a time."""
    launch_wall: list[float] = []
    batches: list[float] = []  # launch-to-last-result of each batch of ``width`` steps
    launch_cpu = 0.0
    poll_cpu = 0.0
    server_pid = ex.start()._server.proc.pid
    server_cpu0 = _cpu_of(server_pid)
    t = time.perf_counter()
    i = 0
    dirs = []
    while i < n:
        handles = []
        for _ in range(min(width, n - i)):
            spec = make(root, i, private)
            dirs.append(spec.step_dir)
            c0, t0 = time.process_time(), time.perf_counter()
            handles.append(ex.launch(spec))
            launch_wall.append(time.perf_counter() - t0)
            launch_cpu += time.process_time() - c0
            i += 1
        pending = list(handles)
        started = time.perf_counter()
        pushed = hasattr(ex, "wait")
        while pending:
            c0 = time.process_time()
            ended = ex.finished() if pushed else None
            pending = [h for h in pending
                       if (ended is not None and h.step_dir not in ended) or ex.poll(h) is None]
            poll_cpu += time.process_time() - c0
            if pending:
                if pushed:
                    ex.wait(1.0)
                else:
                    time.sleep(poll)
        batches.append(time.perf_counter() - started + launch_wall[-1])
    wall = (time.perf_counter() - t) / n
    server_cpu = _cpu_of(server_pid) - server_cpu0
    sup_cpu = [json.loads((d / "status.json").read_text())["usage"]["supervisor_cpu"] for d in dirs]
    return {
        "wall": wall,
        "launch": statistics.mean(launch_wall),
        "cpu_launch": launch_cpu / n,
        "cpu_poll": poll_cpu / n,
        "cpu_server": server_cpu / n,
        "cpu_supervisor": statistics.mean(sup_cpu),
        "median": statistics.median(batches) / width,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.0005, help="poll interval, seconds")
    ap.add_argument(
        "--dir",
        default=str(Path.home()),
        help="where step directories go (default: home, like CHUTE_HOME; /tmp is much "
        "slower at creating files on some machines)",
    )
    args = ap.parse_args()
    n = args.steps
    rows = []
    with tempfile.TemporaryDirectory(dir=args.dir) as d, LocalExecutor() as ex:
        root = Path(d)
        executor_run(ex, root / "warm", 20, 1, args.poll)  # start the fork server, warm caches
        for label, width, private in (
            ("sequential", 1, False),
            ("parallel x2", 2, False),
            ("sequential, private /tmp", 1, True),
        ):
            b = bare(n, width)
            r = executor_run(
                ex,
                root / label.split(",")[0].replace(" ", "_") / str(private),
                n,
                width,
                args.poll,
                private,
            )
            rows.append((label, b, r))
    print(
        f"{n} no-op steps (sh -c true), poll every {args.poll * 1000:.1f} ms, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    head = (
        "mode",
        "bare",
        "executor",
        "median",
        "overhead",
        "launch()",
        "cpu launch",
        "cpu poll",
        "cpu server",
        "cpu superv.",
        "cpu total",
    )
    print(f"{head[0]:26}" + "".join(f"{h:>12}" for h in head[1:]) + "   (ms per step)")
    for label, b, r in rows:
        cpu = [r["cpu_launch"], r["cpu_poll"], r["cpu_server"], r["cpu_supervisor"]]
        vals = [b, r["wall"], r["median"], r["wall"] - b, r["launch"], *cpu, sum(cpu)]
        print(f"{label:26}" + "".join(f"{v * 1e3:12.2f}" for v in vals))


if __name__ == "__main__":
    main()
