"""One reused worker, driven straight over its protocol (not a test): where a step's CPU goes.

    .venv/bin/python bench/worker_step.py [-n 2000] [--root /var/tmp] [--gap 0.5] [--output]

Starts one :mod:`chute.executors.reused_worker` process (through this file, which times
its ``Worker.handle`` and ``Worker.after`` with ``time.thread_time`` and writes the figures
at its exit), sends it ``n`` compiled no-op SDK steps one at a time, as the pool does,
waiting ``--gap`` ms between a reply and the next request (what the controller takes to
turn a reply into the next launch; the worker's work after a reply overlaps it), and
prints per step, over all but the first 50:

* ``handle``: the worker's CPU from a request (decoded) to its reply: on the step's path;
* ``after``: its CPU after the reply, before the next request (absent in trees without it);
* ``total``: all its threads' CPU per step (``/proc/PID/task/*/schedstat``), the decoding
  and encoding of the protocol's lines included;
* ``round trip``: the median wall time from writing a request to reading its reply.

``--root``: where the step directories go (a file system's inode allocation is a large
part of a step's CPU: ``/dev/shm`` shows the rest). ``--output``: steps that return an int
(a file left in their private /tmp, moved to the step directory).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SKIP = 50


def _worker(modules: list[str]) -> None:
    """In the worker process: time handle() and after(), serve, write the times at exit."""
    import chute.executors.reused_worker as rw

    # opened now: once the worker has its private /tmp, the host's /tmp is not at /tmp
    out = os.open(os.environ.pop("BENCH_WORKER_TIMES"), os.O_WRONLY | os.O_CREAT, 0o644)
    times: dict[str, list[float]] = {"handle": [], "after": []}

    def timed(name: str) -> None:
        f = getattr(rw.Worker, name, None)
        if f is None:
            return

        def g(self, *a):
            t = time.thread_time()
            try:
                return f(self, *a)
            finally:
                times[name].append(time.thread_time() - t)
        setattr(rw.Worker, name, g)

    timed("handle")
    timed("after")
    real_exit = os._exit

    def _exit(code: int) -> None:
        os.write(out, json.dumps(times).encode())
        real_exit(code)
    os._exit = _exit  # the worker ends with os._exit after its last step
    rw.main(modules)


def _cpu(pid: int) -> float:
    """CPU seconds of all the threads of ``pid`` (schedstat: nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e9


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return _worker(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--root", default="/var/tmp")
    ap.add_argument("--gap", type=float, default=0.5, help="ms between a reply and the next")
    ap.add_argument("--output", action="store_true")
    args = ap.parse_args()
    from chute.dsl import component
    from chute.dsl.script import build_source
    from chute.executors.base import LaunchSpec
    from chute.executors.warm_worker import preload_modules

    @component
    def noop() -> None:
        """Nothing at all."""

    @component
    def one() -> int:
        """An output parameter, which the step writes in its private /tmp."""
        return 1

    source = build_source(one if args.output else noop)
    outs = ["/tmp/outputs/parameters/Output"] if args.output else []
    home = Path(tempfile.mkdtemp(prefix="chute-step-bench-", dir=args.root))
    steps = home / "steps" / "wf"
    steps.mkdir(parents=True)
    times = home / "times.json"
    env = {**os.environ, "BENCH_WORKER_TIMES": str(times)}
    proc = subprocess.Popen([sys.executable, __file__, "--worker",
                             *preload_modules(source)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, env=env, start_new_session=True)
    try:
        assert json.loads(proc.stdout.readline()).get("ready")
        walls, cpu0, cpu1 = [], 0.0, 0.0
        for i in range(args.n):
            spec = LaunchSpec(workflow_uid="wf", node_id=f"s{i}", attempt=0,
                              step_dir=steps / f"s{i}", log_path=steps / f"s{i}.log",
                              argv=["python3"], script_source=source,
                              output_paths=outs).to_json()
            spec.pop("script_source")
            parts = [b'{"spec": ', json.dumps(spec).encode(), b', "source_id": 1']
            if i == 0:
                parts += [b', "source": ', json.dumps(source).encode(), b', "env": ',
                          json.dumps(dict(os.environ)).encode()]
            if i == args.n - 1:
                parts.append(b', "last": true')
            time.sleep(args.gap / 1e3)
            if i == SKIP:
                cpu0 = _cpu(proc.pid)
            if i == args.n - 1:
                cpu1 = _cpu(proc.pid)
            t = time.perf_counter()
            proc.stdin.write(b"".join(parts) + b"}\n")
            proc.stdin.flush()
            reply = json.loads(proc.stdout.readline())
            walls.append(time.perf_counter() - t)
            assert reply.get("exit_code") == 0 and bool(reply["outputs"]) == args.output, reply
        proc.wait(timeout=30)
        got = json.loads(times.read_text())
    finally:
        proc.kill()
        shutil.rmtree(home, ignore_errors=True)
    n = args.n - 1 - SKIP

    def med(xs: list[float]) -> str:
        xs = xs[SKIP:]
        return f"{1e6 * statistics.median(xs):7.1f}" if xs else "      -"
    what = "one-output" if args.output else "no-op"
    print(f"{args.n} {what} steps, step dirs in {args.root}, {args.gap} ms between steps; "
          f"us per step (medians but total)")
    print(f"handle {med(got['handle'])}  after {med(got['after'])}  "
          f"total {1e6 * (cpu1 - cpu0) / n:7.1f}  round trip {med(walls)}  "
          f"load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
