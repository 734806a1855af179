"""Warm steps one at a time (not a test): a no-op SDK step's supervisor and step process.

    .venv/bin/python bench/warm_steps.py [-n 200]

Runs ``n`` no-op SDK steps (``bench/sdk.py``'s ``noop`` component, compiled) one after
another on a :class:`~chute.executors.python.PythonExecutor`, after 20 untimed ones, with
no engine, and prints the medians of what each step's ``status.json`` says in ``usage``:
the CPU and minor page faults of its supervisor and of its step process. One step at a
time, so the figures are a step's own, not shared with concurrent ones.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk import noop

from chute.dsl.script import build_source
from chute.executors.base import SUCCEEDED, LaunchSpec
from chute.executors.python import PythonExecutor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200)
    args = ap.parse_args()
    source = build_source(noop)
    root = Path(tempfile.mkdtemp(prefix="chute-warm-steps-"))
    try:
        with PythonExecutor() as ex:
            for i in range(-20, args.n):
                spec = LaunchSpec("bench", f"n{i}", 0, root / "steps" / f"s{i}",
                                  root / "logs" / f"n{i}.log", ["python3"],
                                  script_source=source)
                handle = ex.launch(spec)
                while (result := ex.poll(handle)) is None:
                    ex.wait(0.05)
                assert result.outcome == SUCCEEDED, result
        usage = [json.loads((root / "steps" / f"s{i}" / "status.json").read_text())["usage"]
                 for i in range(args.n)]
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(key: str) -> float:
        return statistics.median(u[key] for u in usage)

    print(f"{args.n} steps, medians: supervisor {1e3 * med('supervisor_cpu'):.2f} ms CPU "
          f"{med('supervisor_faults'):.0f} faults; step process {1e3 * med('step_cpu'):.2f} ms "
          f"CPU {med('step_faults'):.0f} faults; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
