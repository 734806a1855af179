"""Benchmark: LocalExecutor launch-to-result overhead per step over a bare process spawn.

Run: ``.venv/bin/python bench/executor.py [--steps 200] [--poll 0.0005]``

For no-op ``sh -c true`` steps it prints the mean wall time of a bare
``subprocess.run(['sh', '-c', 'true'])`` and of launch -> poll -> result through the
executor, for steps run one after another and two at a time, and the difference (the
executor's overhead per step). Also shown: the time ``launch()`` itself blocks, and the
cost of a step with a private path (mount namespace).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.executors.base import LaunchSpec
from chute.executors.local import LocalExecutor


def bare(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        subprocess.run(["sh", "-c", "true"], check=True)
    return (time.perf_counter() - t) / n


def bare_parallel(n: int, width: int) -> float:
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


def executor_run(
    ex: LocalExecutor, root: Path, n: int, width: int, poll: float, private: bool = False
) -> tuple[float, float]:
    """Mean seconds per step (wall, amortised over ``width`` at a time) and mean launch()."""
    launch_times = []
    t = time.perf_counter()
    i = 0
    while i < n:
        handles = []
        for _ in range(min(width, n - i)):
            t0 = time.perf_counter()
            handles.append(ex.launch(make(root, i, private)))
            launch_times.append(time.perf_counter() - t0)
            i += 1
        pending = list(handles)
        while pending:
            pending = [h for h in pending if ex.poll(h) is None]
            if pending:
                time.sleep(poll)
    return (time.perf_counter() - t) / n, statistics.mean(launch_times)


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
    with tempfile.TemporaryDirectory(dir=args.dir) as d, LocalExecutor() as ex:
        root = Path(d)
        executor_run(ex, root / "warm", 10, 1, args.poll)  # start the fork server, warm caches
        rows = []
        for label, width in (("sequential", 1), ("parallel x2", 2)):
            b = bare(n) if width == 1 else bare_parallel(n, width)
            e, launch = executor_run(ex, root / label.replace(" ", "_"), n, width, args.poll)
            rows.append((label, b, e, launch))
        bp = bare(n)
        ep, lp = executor_run(ex, root / "private", n, 1, args.poll, private=True)
        rows.append(("sequential, private /tmp", bp, ep, lp))
    print(f"{n} no-op steps (sh -c true), poll every {args.poll * 1000:.1f} ms")
    print(f"{'mode':28} {'bare ms':>8} {'executor ms':>12} {'overhead ms':>12} {'launch() ms':>12}")
    for label, b, e, launch in rows:
        print(
            f"{label:28} {b * 1e3:8.2f} {e * 1e3:12.2f} {(e - b) * 1e3:12.2f} {launch * 1e3:12.2f}"
        )


if __name__ == "__main__":
    main()
