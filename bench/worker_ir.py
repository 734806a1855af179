"""Instructions a reused worker executes per step (not a test): callgrind, not the clock.

    .venv/bin/python bench/worker_ir.py [--root /tmp] [--output]

Wall and CPU time on a shared 2-core machine vary by 2x between runs; the count of
instructions executed in user space does not (the kernel's work and cache misses are not
in it). One :mod:`chute.executors.reused_worker` process under ``valgrind
--tool=callgrind`` runs 50 compiled no-op SDK steps, another 250 (``--output``: steps
that return an int); the difference of their totals over 200 is printed: a step's
instructions from its request to its reply and the work after the reply, the protocol's
JSON included, the worker's start-up not. Needs ``valgrind``; takes ~40 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker_pool import noop, one  # bench/worker_pool.py's steps

from chute.dsl.script import build_source
from chute.executors.base import LaunchSpec
from chute.executors.warm_worker import preload_modules


def instructions(n: int, source: str, outs: list[str], root: str) -> int:
    """Callgrind's total for a worker that runs ``n`` steps."""
    home = Path(tempfile.mkdtemp(prefix="chute-ir-", dir=root))
    steps = home / "steps" / "wf"
    steps.mkdir(parents=True)
    # written by the worker at its exit: outside /tmp (its private /tmp hides the host's)
    out = Path("/var/tmp") / f"chute-ir-{os.getpid()}-{n}.callgrind"
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
           "-m", "chute.executors.reused_worker", *preload_modules(source)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        assert json.loads(proc.stdout.readline()).get("ready")
        for i in range(n):
            spec = LaunchSpec(workflow_uid="wf", node_id=f"s{i}", attempt=0,
                              step_dir=steps / f"s{i}", log_path=steps / f"s{i}.log",
                              argv=["python3"], script_source=source,
                              output_paths=outs).to_json()
            spec.pop("script_source")
            req = {"spec": spec, "source_id": 1}
            if i == 0:
                req.update(source=source, env=env)
            if i == n - 1:
                req["last"] = True
            proc.stdin.write(json.dumps(req).encode() + b"\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            assert reply.get("exit_code") == 0, reply
        proc.wait(timeout=120)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError("no total in callgrind's output")
    finally:
        proc.kill()
        shutil.rmtree(home, ignore_errors=True)
        out.unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="/tmp", help="where the step directories go")
    ap.add_argument("--output", action="store_true")
    args = ap.parse_args()
    source = build_source(one if args.output else noop)
    outs = ["/tmp/outputs/parameters/Output"] if args.output else []
    a = instructions(50, source, outs, args.root)
    b = instructions(250, source, outs, args.root)
    what = "one-output" if args.output else "no-op"
    print(f"{what} steps, step dirs in {args.root}: {(b - a) / 200:,.0f} instructions "
          f"per step (user space)")


if __name__ == "__main__":
    main()
