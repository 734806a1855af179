"""Fork floor (not a test): what one process per warm step costs before chute does anything.

    .venv/bin/python bench/fork_floor.py [-n 300]

Forks ``n`` children one after another from a process set up as a warm zygote is (it
records at-fork callbacks as :func:`chute.executors.rawfork.record` does, imports chute's
executor modules and the step runtime's modules, runs the step runtime once, seals, and is
``gc.freeze()``-d; the no-op step's script is compiled by a separate process, so that
``chute.dsl`` is not in this one's memory), each child doing only ``os._exit(0)``
(``bare``) or also running the compiled no-op step as a warm step does (``script``:
its component part in the runtime's ``__main__``, then the interpreter's shutdown), each
with ``os.fork`` and with :func:`chute.executors.rawfork.fork` (no after-fork work in the
child); and prints CPU and minor page faults per fork, in the parent and in the child
(its whole life: at-fork handlers, the step, its exit). A warm step's supervisor and
step process cannot cost less than the ``bare`` figures; the difference between their
figures in ``bench/sdk.py``'s status usage and these is chute's own work.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chute.executors import rawfork  # first: it records at-fork callbacks

RAW = rawfork.record()

from chute.executors import warm_runtime, warm_step, warm_worker

# bench/sdk.py's no-op component, compiled (a component's source must be in a file)
NOOP = "import sdk\nfrom chute.dsl.script import build_source\nprint(build_source(sdk.noop), end='')"


def measure(n: int, fork, child) -> tuple[float, float, float, float]:
    """(parent µs, parent faults, child µs, child faults) per fork."""

    def usage(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime, r.ru_minflt

    p0, c0 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        pid = fork()
        if pid == 0:
            try:
                child()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    p1, c1 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
    return (1e6 * (p1[0] - p0[0]) / n, (p1[1] - p0[1]) / n,
            1e6 * (c1[0] - c0[0]) / n, (c1[1] - c0[1]) / n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=300)
    args = ap.parse_args()
    script_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    script = str(script_dir / f"fork-floor-{os.getpid()}.py")
    source = subprocess.run([sys.executable, "-c", NOOP], capture_output=True, check=True,
                            cwd=ROOT / "bench", env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
    Path(script).write_bytes(source)
    warm_worker.preload(list(warm_worker.RUNTIME_MODULES))
    warm_runtime.load()
    rawfork.seal()
    code, in_template = warm_worker._compile(source, script)
    null = os.open(os.devnull, os.O_WRONLY)

    def run_script():
        os.dup2(null, 1)
        warm_step.run_main(script, code, in_template)
        warm_step.finish(0)

    gc.collect()
    gc.freeze()
    rss = Path("/proc/self/status").read_text().split("RssAnon:")[1].split("\n")[0].strip()
    print(f"parent: {rss} anonymous memory, {len(sys.modules)} modules; rawfork "
          f"{'active' if rawfork.active() else 'not active'}; per fork:")
    try:
        for name, child in (("bare", lambda: None), ("script", run_script)):
            for how, fork in (("os.fork", os.fork), ("rawfork", rawfork.fork)):
                pu, pf, cu, cf = measure(args.n, fork, child)
                print(f"  {name:6s} {how:7s} parent {pu:6.0f} us {pf:4.0f} faults   child "
                      f"{cu:6.0f} us {cf:4.0f} faults   total {pu + cu:6.0f} us")
    finally:
        os.unlink(script)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
