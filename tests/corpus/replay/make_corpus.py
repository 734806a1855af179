"""Record the replay-compatibility corpus of one chute release (R-6). Run by hand, not CI.

    PYTHONPATH=<checkout of the release> python tests/corpus/replay/make_corpus.py 0.1.0

records every run of ``scenarios.py`` with the chute on PYTHONPATH, in a fresh chute home:
completed runs are driven to their end; in-flight ones have their controller SIGKILLed at
a chosen point (a child process that kills itself there, so the point is exact), or never
get one. Then it writes ``tests/corpus/replay/<release>/``:

``manifest.json``  the release, its schema revision, the placeholder, and each run: kind,
                   expected final phase, what the test must do before adopting it
``db.json``        every row of every table, as JSON (portable to SQLite and PostgreSQL)
``files/``         the chute home's logs, artifacts, ``ran.log`` and flag files, and the
                   step directories of in-flight runs (what adoption reads)

Paths are relocatable: the recording's home is rewritten to ``@CHUTE_HOME@`` everywhere
(rows and text files), and the test substitutes its own. The pids in ``supervisor.pid``
and ``step.pid`` are rewritten above Linux's pid_max: those processes are long gone, and
no live process of the machine replaying the corpus can be taken for them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PLACEHOLDER = "@CHUTE_HOME@"
PID_BASE = 1 << 22  # 4194304: above any Linux pid_max, so no live process has these pids
LEASE_TTL = 2.0
SKIP_TABLES = {"alembic_version", "leases"}


# ---------------------------------------------------------------- conditions on a run


def _started(node) -> bool:
    """The pod's step process started (its supervisor wrote step.pid)."""
    return bool(node.step_dir) and (Path(node.step_dir) / "step.pid").exists()


def holds(cond: str, nodes: list, suspended: bool = False) -> bool:
    """Whether condition ``cond`` (see scenarios.py) holds for ``nodes`` (Node or NodeRow)."""
    pods = [n for n in nodes if n.type == "Pod"]
    if cond.startswith("succeeded>="):
        return sum(n.phase == "Succeeded" for n in pods) >= int(cond.split(">=")[1])
    if cond.startswith("running-pods>="):
        return sum(n.phase == "Running" and _started(n) for n in pods) >= int(cond.split(">=")[1])
    if cond == "suspend-running":
        return any(n.type == "Suspend" and n.phase == "Running" for n in nodes)
    if cond == "suspended-idle":
        return suspended and not any(n.phase == "Running" for n in pods)
    if cond == "exit-running":
        return any(".onExit" in n.name and n.phase == "Running" and _started(n) for n in pods)
    if cond == "retry-waiting":
        by_id = {getattr(n, "id", None) or n.node_id: n for n in nodes}
        for n in nodes:
            if n.type == "Retry" and n.phase == "Running":
                kids = [by_id[c] for c in n.children or [] if c in by_id]
                if kids and all(k.phase in ("Failed", "Error") for k in kids):
                    return True
        return False
    raise ValueError(f"unknown condition {cond!r}")


# ---------------------------------------------------------------- the child: one controller


def child(cfg: dict) -> None:
    """Submit (or adopt) one run and drive it; SIGKILL this process at ``cfg["kill"]``."""
    import yaml

    from chute.config import load_settings
    from chute.engine.controller import Controller, _owner_id
    from chute.engine.submit import submit
    from chute.spec.loader import load_resource
    from chute.store import queries as q
    from chute.store.db import open_store

    settings = load_settings({"CHUTE_HOME": cfg["home"]}).ensure()
    store = open_store(settings)
    owner = _owner_id()
    if cfg.get("adopt"):
        with store.read() as s:
            uid = q.get_workflow(s, cfg["adopt"]).uid
    else:
        if cfg.get("sdk"):
            from chute.dsl.compiler import compile_pipeline
            from chute.dsl.loader import load_pipeline

            doc = compile_pipeline(load_pipeline(str(REPO / cfg["sdk"])))
            doc["metadata"] = {"name": cfg["name"]}
        else:
            doc = yaml.safe_load(cfg["spec"])
        row = submit(store, load_resource(doc), cfg.get("params") or {},
                     owner=None if cfg.get("submit_only") else owner, lease_ttl=LEASE_TTL)
        uid = row.uid
        if cfg.get("submit_only"):
            return
    if cfg.get("sdk"):
        from chute.executors.python import PythonExecutor

        executor = PythonExecutor().start()
    else:
        from chute.executors.local import LocalExecutor

        executor = LocalExecutor().start()
    ctl = Controller(store, settings, executor, owner=owner, lease_ttl=LEASE_TTL)
    kill = cfg.get("kill")

    def due() -> bool:
        run = ctl.runs.get(uid)
        if run is None:
            return False
        nodes = list(run.state.nodes.values())
        return all(holds(c, nodes, run.state.suspended) for c in kill["when"])

    def die() -> None:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)

    if kill and kill["at"] == "launch":
        launch = ctl._launch

        def _launch(run, req):
            if due():
                die()
            launch(run, req)
        ctl._launch = _launch
    elif kill and kill["at"] == "send":
        from chute.executors import local

        send = local._ForkServer.send

        def _send(self, step_dir, env):
            if due():
                die()
            send(self, step_dir, env)
        local._ForkServer.send = _send
    elif kill and kill["at"] == "turn":
        turn = ctl.turn

        def _turn():
            busy = turn()
            if due():
                die()
            return busy
        ctl.turn = _turn
    ctl.run_until_done([uid], timeout=120)
    ctl.close()
    executor.close()
    if kill:
        raise SystemExit(f"{cfg['name']}: finished before its kill point {kill}")


# ---------------------------------------------------------------- the recorder


class Recorder:
    """Records the scenarios in a fresh chute home and dumps it."""

    def __init__(self, home: Path):
        from chute.config import load_settings
        from chute.store.db import open_store

        self.home = home
        (home / "flags").mkdir(parents=True)
        self.settings = load_settings({"CHUTE_HOME": str(home)}).ensure()
        self.store = open_store(self.settings)

    def nodes(self, name: str) -> tuple[object, list]:
        from chute.store import queries as q

        with self.store.read() as s:
            row = q.get_workflow(s, name)
            return row, q.nodes_of(s, row.uid)

    def spawn(self, cfg: dict) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, __file__, "--child", json.dumps(cfg)],
                                env=dict(os.environ, CHUTE_HOME=str(self.home)))

    def record(self, sc) -> None:
        from chute.engine import control

        spec = sc.spec.replace("HOME", str(self.home)) if sc.spec else ""
        cfg = {"home": str(self.home), "name": sc.name, "spec": spec, "sdk": sc.sdk,
               "params": sc.params, "kill": sc.kill, "submit_only": sc.submit_only}
        proc = self.spawn(cfg)
        if sc.during:
            self._wait(sc.name, lambda nodes: holds(sc.during["when"], nodes), proc)
            do = sc.during["do"]
            if do == "resume":
                control.resume(self.store, sc.name, sc.during.get("values"))
            elif do == "suspend":
                control.suspend(self.store, sc.name)
            else:
                control.stop(self.store, sc.name, terminate=do == "terminate")
        rc = proc.wait(timeout=180)
        if sc.kill:
            assert rc == -signal.SIGKILL, f"{sc.name}: controller ended with {rc}, not killed"
        else:
            assert rc == 0, f"{sc.name}: recording failed ({rc})"
        if sc.down:
            if sc.down["do"] == "lose":
                self._lose(sc.name)
            elif sc.down["do"] == "resume":
                control.resume(self.store, sc.name, sc.down.get("values"))
            elif sc.down["do"] == "stop":
                control.stop(self.store, sc.name)
        if sc.after == "retry":
            control.retry(self.store, sc.name)
            done = self.spawn({**cfg, "adopt": sc.name, "kill": None})
            assert done.wait(timeout=180) == 0
        row, _ = self.nodes(sc.name)
        if sc.kind == "completed":
            assert row.phase == sc.expect, f"{sc.name}: {row.phase}, expected {sc.expect}"
        else:
            assert row.phase in ("Pending", "Running"), f"{sc.name}: {row.phase}"
        print(f"{sc.name:24} {row.phase}", flush=True)

    def _wait(self, name: str, cond, proc: subprocess.Popen, timeout: float = 120) -> None:
        from chute.errors import NotFoundError

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if cond(self.nodes(name)[1]):
                    return
            except NotFoundError:
                pass
            assert proc.poll() is None, f"{name}: the controller ended early"
            time.sleep(0.05)
        raise TimeoutError(name)

    def _lose(self, name: str) -> None:
        """SIGKILL the supervisors and steps of the run's running pods (no status.json)."""
        _, nodes = self.nodes(name)
        for n in nodes:
            if n.type != "Pod" or n.phase != "Running":
                continue
            d = Path(n.step_dir)
            sup = json.loads((d / "supervisor.pid").read_text())["pid"]
            step = json.loads((d / "step.pid").read_text())["pid"]
            os.kill(sup, signal.SIGKILL)
            os.killpg(step, signal.SIGKILL)

    def settle(self, timeout: float = 120) -> None:
        """Wait until no supervisor of any run is alive (steps finished while down)."""
        from chute.executors import proctree

        end = time.monotonic() + timeout
        for pidfile in self.home.glob("steps/*/*/supervisor.pid"):
            data = json.loads(pidfile.read_text() or "{}")
            while proctree.same_process(data.get("pid"), data.get("create_time")):
                assert time.monotonic() < end, pidfile
                time.sleep(0.1)
        time.sleep(0.5)  # the warm zygotes and fork servers of killed controllers exit

    # -- the dump --------------------------------------------------------------------------

    def dump(self, out: Path, release: str, scenarios: list) -> None:
        from sqlalchemy import MetaData, select

        from chute.store.db import current_revision

        if out.exists():
            shutil.rmtree(out)
        (out / "files").mkdir(parents=True)
        engine = self.store.engine
        meta = MetaData()
        meta.reflect(engine)
        tables = {}
        with engine.connect() as conn:
            for t in meta.sorted_tables:
                if t.name in SKIP_TABLES:
                    continue
                order = list(t.primary_key.columns) or list(t.columns)
                rows = [dict(r._mapping) for r in conn.execute(select(t).order_by(*order))]
                tables[t.name] = self._relocate(rows)
        (out / "db.json").write_text(json.dumps(
            {"tables": tables}, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        inflight = {}
        with self.store.read() as s:
            from chute.store import queries as q

            for sc in scenarios:
                if sc.kind == "in-flight":
                    inflight[q.get_workflow(s, sc.name).uid] = sc.name
        self._copy_files(out / "files", set(inflight))
        manifest = {
            "release": release,
            "alembic_revision": current_revision(engine),
            "placeholder": PLACEHOLDER,
            "recorded_at": round(time.time()),
            "runs": [{k: v for k, v in {
                "name": sc.name, "kind": sc.kind, "what": sc.what, "expect": sc.expect,
                "replay": sc.replay, "rerun_ok": sc.rerun_ok, "logs": sc.logs,
            }.items() if v not in (None, [], {})} for sc in scenarios],
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")

    def _relocate(self, value):
        if isinstance(value, str):
            return value.replace(str(self.home), PLACEHOLDER)
        if isinstance(value, dict):
            return {k: self._relocate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._relocate(v) for v in value]
        return value

    def _copy_files(self, dest: Path, inflight: set[str]) -> None:
        pids: dict[int, int] = {}
        for src in sorted(self.home.rglob("*")):
            rel = src.relative_to(self.home)
            top = rel.parts[0]
            if src.is_dir() or src.is_symlink() or not src.is_file():
                continue
            if top not in ("logs", "artifacts", "steps", "flags", "ran.log"):
                continue
            if top == "steps" and rel.parts[1] not in inflight:
                continue  # adoption reads step directories of running workflows only
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            data = src.read_bytes()
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                target.write_bytes(data)
                continue
            if src.name in ("supervisor.pid", "step.pid") and text.strip():
                doc = json.loads(text)
                if doc.get("pid"):
                    doc["pid"] = pids.setdefault(doc["pid"], PID_BASE + len(pids) + 1)
                text = json.dumps(doc)
            target.write_text(text.replace(str(self.home), PLACEHOLDER), encoding="utf-8")
            target.chmod(src.stat().st_mode & 0o777)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("release", nargs="?")
    parser.add_argument("--child")
    parser.add_argument("--only", nargs="*", help="record only these scenarios (a trial)")
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    sys.path.insert(0, str(HERE))
    from scenarios import LIBRARY, scenarios

    chosen = [s for s in scenarios() if not args.only or s.name in args.only]
    base = Path(tempfile.mkdtemp(prefix="chute-corpus-"))
    rec = Recorder(base / "recording-home")
    import yaml

    from chute.engine.submit import store_template
    from chute.spec.loader import load_resource

    store_template(rec.store, load_resource(yaml.safe_load(
        LIBRARY.replace("HOME", str(rec.home)))))
    t0 = time.monotonic()
    for sc in chosen:
        rec.record(sc)
    rec.settle()
    out = HERE / (args.release or "trial")
    rec.dump(out, args.release or "trial", chosen)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{len(chosen)} runs recorded in {time.monotonic() - t0:.0f} s: {out} "
          f"({size / 1024:.0f} KiB)")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
