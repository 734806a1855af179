"""Fork floor (not a test): what one process per warm step costs before chute does anything.

    .venv/bin/python bench/fork_floor.py [-n 300]

Forks ``n`` children one after another from a process that imported what a warm zygote
imports for a no-op SDK step (chute's executor modules and the step runtime's modules,
``gc.freeze()``-d as the zygote does), each child doing only ``os._exit(0)`` (``bare``),
or also running a compiled no-op step's script in a fresh ``__main__`` (``script``);
and prints CPU and minor page faults per fork, in the parent and in the child (its whole
life: Python's at-fork handlers, the step, its exit). A warm step's supervisor and step
process cannot cost less than the ``bare`` figures; the difference between their figures
in ``bench/sdk.py``'s status usage and these is chute's own work.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chute.executors import warm_worker


def measure(n: int, child) -> tuple[float, float, float, float]:
    """(parent µs, parent faults, child µs, child faults) per fork."""
    def usage(who):
        r = resource.getrusage(who)
        return r.ru_utime + r.ru_stime, r.ru_minflt

    p0, c0 = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        pid = os.fork()
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
    warm_worker.preload(list(warm_worker.RUNTIME_MODULES))
    from chute.dsl import component
    from chute.dsl.script import build_source

    @component
    def noop() -> None:
        """Nothing at all."""

    code = compile(build_source(noop), "/tmp/script", "exec", dont_inherit=True)
    null = os.open(os.devnull, os.O_WRONLY)

    def script():
        os.dup2(null, 1)
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = __builtins__
        exec(code, main.__dict__)  # noqa: S102 - chute's own generated no-op step

    gc.collect()
    gc.freeze()
    rss = Path("/proc/self/status").read_text().split("RssAnon:")[1].split("\n")[0].strip()
    print(f"parent: {rss} anonymous memory, {len(sys.modules)} modules; per fork:")
    for name, child in (("bare", lambda: None), ("script", script)):
        pu, pf, cu, cf = measure(args.n, child)
        print(f"  {name:7s} parent {pu:6.0f} us {pf:4.0f} faults   child {cu:6.0f} us "
              f"{cf:4.0f} faults   total {pu + cu:6.0f} us")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
