"""A chain step's controller window (not a test): the controller thread's CPU
(``thread_time``) and wall from reading a reused worker's reply to writing the next
step's request, median over the steps of an SDK chain of reused-worker steps.

    PYTHONPATH=<tree> .venv/bin/python <tree>/bench/chain_window.py [--steps 400] [--repeat 3]

Only ``WorkerProc.read`` and ``WorkerProc.write`` are wrapped (a wrapper per function on
the path, as a finer timeline has, costs a few us each with the caches cold). Printed
per run: wall and controller CPU per step (the whole run), and the window's medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import sdk  # bench/sdk.py's pipelines

from chute.config import load_settings
from chute.engine.controller import Controller
from chute.engine.submit import submit
from chute.executors import worker_proc
from chute.executors.python import PythonExecutor
from chute.spec.loader import load_resource
from chute.store.db import open_store

READS: list[tuple[float, float]] = []  # (wall, thread CPU) as a read returned lines
WRITES: list[tuple[float, float]] = []  # as a write began


def _instrument() -> None:
    read, write = worker_proc.WorkerProc.read, worker_proc.WorkerProc.write

    def timed_read(self):
        at = (time.perf_counter(), time.thread_time())
        lines = read(self)
        if lines:
            READS.append(at)
        return lines

    def timed_write(self, data):
        WRITES.append((time.perf_counter(), time.thread_time()))
        return write(self, data)

    worker_proc.WorkerProc.read, worker_proc.WorkerProc.write = timed_read, timed_write


def _windows() -> tuple[list[float], list[float]]:
    """(CPU, wall) seconds from each read to the first write after it."""
    cpu, wall, j = [], [], 0
    for t, c in READS:
        while j < len(WRITES) and WRITES[j][0] < t:
            j += 1
        if j < len(WRITES):
            wall.append(WRITES[j][0] - t)
            cpu.append(WRITES[j][1] - c)
    return cpu, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    _instrument()
    settings = load_settings({"CHUTE_HOME": tempfile.mkdtemp()}).ensure()
    store = open_store(settings)
    executor = PythonExecutor().start()
    ctl = Controller(store, settings, executor)
    try:  # a first step brings the worker up: not timed
        warm = sdk.compile_pipeline(sdk.chain_pipeline(1, True))
        ctl.run_until_done([submit(store, load_resource(warm)).uid])
        for _ in range(args.repeat):
            doc = sdk.compile_pipeline(sdk.chain_pipeline(args.steps, True))
            row = submit(store, load_resource(doc))
            READS.clear()
            WRITES.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            ctl.run_until_done([row.uid])
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            wcpu, wwall = _windows()
            print(f"wall {wall / args.steps * 1000:.2f} ms/step, controller cpu "
                  f"{cpu / args.steps * 1000:.2f} ms/step; window median: cpu "
                  f"{statistics.median(wcpu) * 1000:.3f} ms, wall "
                  f"{statistics.median(wwall) * 1000:.3f} ms (n={len(wcpu)})", flush=True)
    finally:
        ctl.close()
        executor.close()


if __name__ == "__main__":
    main()
