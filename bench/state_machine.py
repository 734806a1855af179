"""The engine's state machine alone (not a test): CPU microseconds per step of a
:class:`~chute.engine.state.RunState` driven without a store, an executor or a controller.

    .venv/bin/python bench/state_machine.py [--steps 1000] [--repeat 5] [SHAPE ...]

Shapes: ``chain``, ``dag``, ``fanout`` (``bench/engine.py``'s ``sh -c true`` containers)
and ``sdkchain``, ``sdkdag``, ``sdkfan`` (``bench/sdk.py``'s compiled SDK pipelines with
reused workers: script templates with an 11 KB source). Each run starts the state, then
until the workflow ends: drain, mark the launched pods Running, feed each a success. The
controller's turn budget (32 callbacks a pass) applies, as in a controller. Printed per
shape: min and median over ``--repeat`` runs of the thread's CPU per pod (one process,
the first run warms it up and is not counted).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import engine as plain  # bench/engine.py's shapes
import sdk  # bench/sdk.py's pipelines

from chute.engine.plan import build_plan
from chute.engine.pod import PodOutcome
from chute.engine.state import RunState
from chute.spec.loader import load_resource, to_dict

SHAPES = {
    "chain": lambda n: plain.chain(n), "dag": lambda n: plain.dag(n),
    "fanout": lambda n: plain.fanout(n),
    "sdkchain": lambda n: sdk.compile_pipeline(sdk.chain_pipeline(n, True)),
    "sdkdag": lambda n: sdk.compile_pipeline(sdk.dag_pipeline(n, True)),
    "sdkfan": lambda n: sdk.compile_pipeline(sdk.fanout_pipeline(n, True)),
}


def run_once(resource: dict) -> tuple[float, int]:
    """One run to the end: CPU seconds of this thread, and pods run."""
    st = RunState(build_plan(resource, uid="bench-uid", created_at=1.0e9), now=1.0e9)
    st.budget = 32
    now, pods = 1.0e9, 0
    c0 = time.thread_time()
    st.start()
    while not st.done:
        d = st.drain()
        if not d.launches:
            if not st.pending:
                raise RuntimeError("the run stalled")
            st.proceed()
            continue
        for req in d.launches:
            st.mark_running(req.node_id, f"/steps/{req.node_id}-{req.attempt}", now)
        st.drain()
        for req in d.launches:
            now += 0.001
            st.pod_finished(req.node_id, PodOutcome("Succeeded", 0, "", now - 0.0005, now, ""),
                            now)
            pods += 1
            while st.pending:
                st.proceed()
    return time.thread_time() - c0, pods


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shapes", nargs="*", metavar="SHAPE", help=f"of {', '.join(SHAPES)} (all)")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    unknown = set(args.shapes) - set(SHAPES)
    if unknown:
        ap.error(f"unknown shape(s): {', '.join(sorted(unknown))}")
    for shape in args.shapes or SHAPES:
        doc = SHAPES[shape](args.steps)
        doc["metadata"] = {"name": "bench-x1y2z"}
        resource = to_dict(load_resource(doc))
        per_pod = []
        for i in range(args.repeat + 1):
            gc.collect()
            gc.freeze()  # as a controller does before its first run
            cpu, pods = run_once(resource)
            if i:
                per_pod.append(cpu / pods * 1e6)
        print(f"{shape:9} {pods:6d} pods  us/pod min {min(per_pod):7.1f}  "
              f"median {statistics.median(per_pod):7.1f}", flush=True)


if __name__ == "__main__":
    main()
