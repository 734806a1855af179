"""A run's first step on a reused worker (not a test): how long it waits to start.

    .venv/bin/python bench/first_step.py [-n 30] [--gap 0.1]

Through the engine (Controller, PythonExecutor, a chute home from ``tempfile.mkdtemp()``,
under ``/tmp`` as in the benchmark and tests): after a warm-up run that brings up the
reused workers, ``n`` one-step pipelines one after another, ``--gap`` seconds apart. For
each run's (only) step: from the controller's write of the request to the step's start
(the reply's ``started_at``), the step's own start to end, and from the write to the
controller's read of the reply, in ms (median, p90, max). A run's first step is where a
reused worker changes the directory it binds into its private /tmp (the run's steps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]

from sdk import chain_pipeline, compile_pipeline, dag_pipeline

from chute.config import load_settings
from chute.engine import controller
from chute.engine.submit import submit
from chute.executors import worker_proc
from chute.executors.python import PythonExecutor
from chute.spec.loader import load_resource
from chute.store.db import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("--gap", type=float, default=0.1)
    args = ap.parse_args()
    sends: list[float] = []
    replies: list[tuple[float, float, float]] = []  # (read at, started_at, finished_at)
    write, read = worker_proc.WorkerProc.write, worker_proc.WorkerProc.read

    def timed_write(self, data):
        sends.append(time.time())
        return write(self, data)

    def timed_read(self):
        out = read(self)
        replies.extend((time.time(), d["started_at"], d["finished_at"])
                       for d in out or () if "started_at" in d)
        return out

    worker_proc.WorkerProc.write, worker_proc.WorkerProc.read = timed_write, timed_read
    settings = load_settings({"CHUTE_HOME": tempfile.mkdtemp()}).ensure()
    store = open_store(settings)
    executor = PythonExecutor().start()
    ctl = controller.Controller(store, settings, executor)
    warm = load_resource(compile_pipeline(dag_pipeline(2, True, 2)))
    ctl.run_until_done([submit(store, warm).uid])
    time.sleep(1)  # (a worker it started may still be importing)
    start, inside, total = [], [], []
    for _ in range(args.n):
        sends.clear()
        replies.clear()
        row = submit(store, load_resource(compile_pipeline(chain_pipeline(1, True))))
        ctl.run_until_done([row.uid])
        (sent,), ((got, started, finished),) = sends, replies
        start.append((started - sent) * 1e3)
        inside.append((finished - started) * 1e3)
        total.append((got - sent) * 1e3)
        time.sleep(args.gap)
    ctl.close()
    executor.close()

    def q(xs: list[float]) -> str:
        return (f"med {statistics.median(xs):.2f} p90 {sorted(xs)[int(0.9 * len(xs))]:.2f} "
                f"max {max(xs):.2f}")
    print(f"first step of {args.n} runs, ms: write -> start {q(start)} | start -> end "
          f"{q(inside)} | write -> reply read {q(total)}")


if __name__ == "__main__":
    main()
