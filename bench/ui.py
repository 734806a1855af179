"""Time to first render of the run page for a 1,000-node run, in headless Chromium.

A run with N step nodes is written to a fresh store (a prepare step, a fan-out of N - 2
loop items in step groups, a collect step: Argo's node tree shape, all Succeeded), the
server (``create_app``, uvicorn on 127.0.0.1) serves it, and Debian's Chromium opens
``/runs/<name>`` after logging in. The page records ``performance.now()`` at the first
paint of the graph (``window.__chuteRunRendered``: milliseconds since navigation start,
so it includes loading the bundle, fetching the run, the dagre layout and the canvas
draw) and the layout time alone. Prints each trial and the median.

    .venv/bin/python bench/ui.py                 # 1,000 nodes, 5 trials
    .venv/bin/python bench/ui.py --nodes 3000 --trials 3

Needs the built UI (``make ui``) and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def make_run(store, name: str, steps: int, shape: str = "fanout") -> None:
    """Write a finished workflow whose node tree has ``steps`` step nodes.

    ``fanout``: prepare -> N - 2 loop items -> collect. ``chains``: prepare -> loop items
    whose body is a chain of 4 steps -> collect (siblings differ, so no grid applies)."""
    from chute.store import queries
    from chute.store.models import WorkflowRow

    uid = str(uuid.uuid4())
    now = time.time() - 60
    row = WorkflowRow(uid=uid, name=name, namespace="default", kind="Workflow",
                      spec={"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                            "metadata": {"name": name}, "spec": {"entrypoint": "main"}},
                      arguments={}, phase="Succeeded", created_at=now, started_at=now,
                      finished_at=now + 50, suspended=False, labels={}, outputs={})
    nodes = []

    def node(nid, display, typ, children, phase="Succeeded"):
        nodes.append({"node_id": nid, "name": f"{name}.{display}", "display_name": display,
                      "type": typ, "template_name": "step", "phase": phase,
                      "boundary_id": name, "parent_id": None, "children": children,
                      "inputs": {}, "outputs": {}, "exit_code": 0, "message": None,
                      "started_at": now, "finished_at": now + 1, "attempt": 0,
                      "step_dir": None, "cached": False})

    fan = steps - 2
    if shape == "chains":
        fan = (steps - 2) // 4
    items = [f"{name}-item-{i}" for i in range(fan)]
    node(name, name, "Steps", [f"{name}-g0"])
    node(f"{name}-g0", "[0]", "StepGroup", [f"{name}-prepare"])
    node(f"{name}-prepare", "prepare", "Pod", [f"{name}-g1"])
    node(f"{name}-g1", "[1]", "StepGroup", items)
    for i, nid in enumerate(items):
        if shape == "chains":
            chain = [nid] + [f"{nid}-s{k}" for k in range(1, 4)]
            for k, cid in enumerate(chain):
                nxt = [chain[k + 1]] if k + 1 < len(chain) else [f"{name}-g2"]
                node(cid, f"item({i}).step{k}", "Pod", nxt)
            continue
        node(nid, f"train({i})", "Pod", [f"{name}-g2"], "Failed" if i % 97 == 5 else "Succeeded")
    node(f"{name}-g2", "[2]", "StepGroup", [f"{name}-collect"])
    node(f"{name}-collect", "collect", "Pod", [])
    with store.write() as s:
        queries.create_workflow(s, row)
        queries.insert_nodes(s, uid, nodes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="step nodes in the run")
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--shape", choices=("fanout", "chains"), default="fanout")
    args = parser.parse_args()

    import uvicorn
    from playwright.sync_api import sync_playwright

    home = tempfile.mkdtemp(prefix="chute-bench-ui-")
    token = "bench-" + uuid.uuid4().hex
    os.environ.update(CHUTE_HOME=home, CHUTE_TOKEN=token)
    os.environ.pop("CHUTE_DATABASE_URL", None)
    from chute.config import load_settings
    from chute.server.app import create_app

    app = create_app(load_settings())
    make_run(app.state.ctx.store, "big-run", args.nodes, args.shape)
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        ctx = browser.new_context(viewport={"width": 1400, "height": 900})
        page = ctx.new_page()
        page.goto(url + "/login")
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_url(url + "/")
        for trial in range(args.trials):
            page.goto(url + "/runs/big-run")
            page.wait_for_selector("#dag[data-rendered='1']", timeout=60_000)
            r = page.evaluate("() => window.__chuteRunRendered")
            results.append(r)
            print(f"trial {trial + 1}: first render {r['ms']:.0f} ms "
                  f"(layout {r['layoutMs']:.0f} ms, {r['nodes']} nodes drawn)")
        shots = REPO / "test-artifacts" / "ui"
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "bench-1000-nodes.png"))
        browser.close()
    server.should_exit = True
    med = statistics.median(r["ms"] for r in results)
    lay = statistics.median(r["layoutMs"] for r in results)
    print(f"run page, {args.shape}, {args.nodes} step nodes ({results[0]['nodes']} graph nodes): "
          f"median time to first render {med:.0f} ms, median layout {lay:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
