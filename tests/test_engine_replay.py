"""R-6, the replay-compatibility corpus: runs recorded by each chute release
(``tests/corpus/replay/<release>/``, made by ``make_corpus.py``) load into this build and
its in-flight runs finish (Temporal's ``replaytests`` pattern).

Each release's dump is loaded into a fresh database at the schema revision it was
recorded at, then migrated to head (how a new build meets an old database), on SQLite
and, for one release, on the real PostgreSQL fixture. Then:

- every run loads: ``chute list -o json`` names them all, ``chute get -o json`` renders each;
- a run whose recorded state format is newer than this build reads is refused by name
  (IncompatibleRunError), left untouched, and the standalone controller runs the others;
- the standalone ``chute controller`` adopts the in-flight runs (after the test resumes the
  suspended ones), and each reaches the phase recorded in the manifest;
- completed runs are exactly as they were; every step that succeeded before adoption keeps
  its node, and no step that ran before runs again (``ran.log``), unless its own process was
  lost (``rerun_ok``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.fixtures.postgres import postgres_server, postgres_url  # noqa: F401

CORPUS = REPO / "tests" / "corpus" / "replay"
RELEASES = sorted((p for p in CORPUS.iterdir() if (p / "manifest.json").is_file()),
                  key=lambda p: tuple(int(x) for x in p.name.split(".")))
TERMINAL = ("Succeeded", "Failed", "Error")
VICTIM = "f-pending"  # the run the test pretends a newer chute recorded


# ---------------------------------------------------------------- loading a release


def _substitute(value, placeholder: str, home: str):
    if isinstance(value, str):
        return value.replace(placeholder, home)
    if isinstance(value, dict):
        return {k: _substitute(v, placeholder, home) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, placeholder, home) for v in value]
    return value


def load_release(release: Path, home: Path, url: str | None) -> dict:
    """Load ``release``'s dump into a fresh store for ``home`` (and ``url``): the schema at
    the recorded revision, its rows, then every migration since; its files into ``home``
    with their recorded age. Returns the manifest."""
    from sqlalchemy import Integer, MetaData, text

    from chute.config import load_settings
    from chute.store.db import make_engine, upgrade

    manifest = json.loads((release / "manifest.json").read_text())
    ph = manifest["placeholder"]
    env = {"CHUTE_HOME": str(home), **({"CHUTE_DATABASE_URL": url} if url else {})}
    settings = load_settings(env).ensure()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine, settings, revision=manifest["alembic_revision"])
        tables = _substitute(json.loads((release / "db.json").read_text())["tables"], ph,
                             str(home))
        meta = MetaData()
        meta.reflect(engine)
        with engine.begin() as conn:
            for table in meta.sorted_tables:
                if tables.get(table.name):
                    conn.execute(table.insert(), tables[table.name])
            if engine.dialect.name == "postgresql":  # explicit ids do not move sequences
                for table in meta.sorted_tables:
                    for col in table.primary_key.columns:
                        if isinstance(col.type, Integer) and tables.get(table.name):
                            conn.execute(text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', "
                                f"'{col.name}'), (SELECT max({col.name}) FROM {table.name}))"))
        assert set(tables) <= {t.name for t in meta.sorted_tables}, "tables the schema lacks"
        upgrade(engine, settings)  # every migration since the release
        _assert_rows_kept(engine, tables)
    finally:
        engine.dispose()
    files = release / "files"
    age = manifest["recorded_at"]
    for src in files.rglob("*"):
        if not src.is_file():
            continue
        dest = home / src.relative_to(files)
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = src.read_bytes()
        try:
            data = data.decode("utf-8").replace(ph, str(home)).encode("utf-8")
        except UnicodeDecodeError:
            pass
        dest.write_bytes(data)
        dest.chmod(src.stat().st_mode & 0o777)
        os.utime(dest, (age, age))  # launch.json's age tells "never started" from "starting"
    return manifest


def _assert_rows_kept(engine, tables: dict[str, list[dict]]) -> None:
    """Every recorded row is still there after the migrations, with the values it had."""
    from sqlalchemy import MetaData, select

    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        for name, rows in tables.items():
            table = meta.tables[name]
            order = list(table.primary_key.columns) or list(table.columns)
            now = [dict(r._mapping) for r in conn.execute(select(table).order_by(*order))]
            assert len(now) == len(rows), name
            for old, new in zip(rows, now):
                assert {k: new.get(k) for k in old} == old, (name, old)


# ---------------------------------------------------------------- helpers


@pytest.fixture(params=[(r.name, "sqlite") for r in RELEASES]
                + [(RELEASES[0].name, "postgres")], ids=lambda p: f"{p[0]}-{p[1]}")
def corpus(request, tmp_path, monkeypatch) -> tuple[dict, Path, str | None]:
    """A release loaded into a fresh home (and database); CHUTE_* point the CLI at it.
    PostgreSQL gets the oldest release: the longest way through the migrations."""
    release, db = request.param
    url = None
    if db == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("postgres_url")
    home = tmp_path / "home"
    t0 = time.monotonic()
    manifest = load_release(CORPUS / release, home, url)
    print(f"{release} on {db}: {len(manifest['runs'])} runs loaded in "
          f"{time.monotonic() - t0:.1f} s")
    monkeypatch.setenv("CHUTE_HOME", str(home))
    monkeypatch.setenv("CHUTE_LEASE_TTL", "2")
    monkeypatch.delenv("CHUTE_SERVER", raising=False)
    monkeypatch.delenv("CHUTE_TOKEN", raising=False)  # the API check makes its own
    if url:
        monkeypatch.setenv("CHUTE_DATABASE_URL", url)
    else:
        monkeypatch.delenv("CHUTE_DATABASE_URL", raising=False)
    return manifest, home, url


def _cli(capsys, *args: str) -> tuple[int, str, str]:
    from chute.cli.app import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def _get(capsys, name: str) -> dict:
    code, out, err = _cli(capsys, "get", name, "-o", "json")
    assert code == 0, (name, err)
    doc = json.loads(out)
    assert doc["kind"] == "Workflow" and doc["metadata"]["name"] == name
    assert doc["status"]["phase"] in ("Pending", "Running", *TERMINAL)
    for node in doc["status"].get("nodes", {}).values():
        assert {"id", "name", "displayName", "type", "phase"} <= set(node), node
    return doc


def _store():
    from chute.config import load_settings
    from chute.store.db import open_store

    return open_store(load_settings())


def _set_format(store, name: str, fmt: int) -> None:
    from chute.store import queries as q

    with store.write() as s:
        q.update_workflow(s, q.get_workflow(s, name).uid, state_format=fmt)


def _phases(store, names) -> dict[str, str]:
    from chute.store import queries as q

    with store.read() as s:
        return {n: q.get_workflow(s, n).phase for n in names}


def _ran(home: Path) -> list[str]:
    path = home / "ran.log"
    return path.read_text().split() if path.exists() else []


def _unordered(node: dict) -> dict:
    return {**node, "children": sorted(node.get("children") or [])}


def _pods(doc: dict) -> dict[str, dict]:
    return {n["id"]: n for n in doc["status"].get("nodes", {}).values() if n["type"] == "Pod"}


# ---------------------------------------------------------------- the test


def test_every_release_loads_and_its_in_flight_runs_finish(corpus, capsys):
    from chute.engine import control
    from chute.engine.controller import Controller
    from chute.engine.state_format import STATE_FORMAT
    from chute.errors import IncompatibleRunError

    manifest, home, _ = corpus
    runs = {r["name"]: r for r in manifest["runs"]}
    inflight = [n for n, r in runs.items() if r["kind"] == "in-flight"]
    assert len(runs) >= 20 and inflight and VICTIM in inflight

    # 100 % load: the list names every run, each renders in Argo's shape
    code, out, err = _cli(capsys, "list", "-o", "json")
    assert code == 0, err
    assert sorted(r["name"] for r in json.loads(out)) == sorted(runs)
    before = {name: _get(capsys, name) for name in runs}
    for name, r in runs.items():
        if r["kind"] == "completed":
            assert before[name]["status"]["phase"] == r["expect"], name
        else:
            assert before[name]["status"]["phase"] in ("Pending", "Running"), name
    ran_before = _ran(home)

    # a run recorded in a state format newer than this build reads: refused by name
    store = _store()
    _set_format(store, VICTIM, STATE_FORMAT + 1)
    ctl = Controller(store, _settings(), executor=None, owner="replay-test")
    uid = before[VICTIM]["metadata"]["uid"]
    with pytest.raises(IncompatibleRunError, match=rf"workflow '{VICTIM}' was recorded by "
                       rf"chute state format {STATE_FORMAT + 1}; this build reads"):
        ctl.adopt(uid)
    code, _, err = _cli(capsys, "wait", VICTIM)
    assert code == 2 and f"state format {STATE_FORMAT + 1}" in err, err
    with pytest.raises(IncompatibleRunError):  # nor are its nodes rewritten by a retry
        control.retry(store, VICTIM)

    # what an operator does before adopting: resume the suspended runs
    for name, r in runs.items():
        if (r.get("replay") or {}).get("resume") is not None:
            control.resume(store, name, r["replay"]["resume"] or None)

    # the standalone controller of this build adopts the rest
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "chute.cli.app", "controller"],
                            env=dict(os.environ), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    others = [n for n in inflight if n != VICTIM]
    try:
        deadline = time.monotonic() + 150
        while True:
            phases = _phases(store, others)
            if all(p in TERMINAL for p in phases.values()):
                break
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, {n: p for n, p in phases.items()
                                                 if p not in TERMINAL}
            time.sleep(0.2)
        took = time.monotonic() - t0
        assert _get(capsys, VICTIM) == before[VICTIM]  # left exactly as it was
    finally:
        proc.send_signal(signal.SIGTERM)
        _, log = proc.communicate(timeout=30)
    assert "IncompatibleRunError" in log or f"workflow '{VICTIM}' was recorded" in log, log

    # once this build can read it, it is adopted like any other
    _set_format(store, VICTIM, STATE_FORMAT)
    code, out, err = _cli(capsys, "wait", VICTIM)
    assert (code, out.strip()) == (0, f"{VICTIM} Succeeded"), err

    after = {name: _get(capsys, name) for name in runs}
    ran_after = _ran(home)
    assert ran_after[:len(ran_before)] == ran_before  # ran.log only grew
    again = ran_after[len(ran_before):]
    for name, r in runs.items():
        doc = after[name]
        if r["kind"] == "completed":
            assert doc == before[name], f"{name}: a completed run changed"
            continue
        status = doc["status"]
        assert status["phase"] == r["expect"], (name, status.get("message"))
        stuck = [n["displayName"] for n in status["nodes"].values()
                 if n["phase"] in ("Pending", "Running")]
        assert not stuck, (name, stuck)
        # a step that succeeded before adoption keeps its node as it was (the order of
        # its children aside: 0.1.0 linked DAG dependants in set order)
        pods = _pods(doc)
        for nid, node in _pods(before[name]).items():
            if node["phase"] == "Succeeded":
                assert _unordered(pods[nid]) == _unordered(node), (name, node["displayName"])
        # no step that ran before adoption ran again (unless its process was lost)
        for line in again:
            wf, _, step = line.partition("/")
            if wf == name and step.rsplit("-", 1)[0] not in r.get("rerun_ok", []):
                assert line not in ran_before, f"{line} ran again"
        assert len([x for x in again if x.startswith(f"{name}/")]) == \
            len({x for x in again if x.startswith(f"{name}/")}), (name, again)
        for step, text in (r.get("logs") or {}).items():
            code, out, err = _cli(capsys, "logs", name, step)
            assert code == 0 and text in out, (name, step, out, err)
    _api_shows_all(sorted(runs))
    print(f"{manifest['release']}: {len(runs)} runs loaded ({len(runs) - len(inflight)} "
          f"completed, {len(inflight)} in flight); in-flight runs finished in {took:.1f} s")
    store.dispose()


def _api_shows_all(names: list[str]) -> None:
    """The server lists every run and serves each one, its nodes and its metrics."""
    from fastapi.testclient import TestClient

    from chute.server.app import create_app

    app = create_app(_settings())
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.ctx.new_token}"}) as c:
        page = c.get("/api/v1/runs", params={"limit": 1000}).json()
        assert sorted(item["name"] for item in page["items"]) == names
        for name in names:
            for path in (f"/api/v1/runs/{name}", f"/api/v1/runs/{name}/nodes",
                         f"/api/v1/runs/{name}/metrics"):
                resp = c.get(path)
                assert resp.status_code == 200, (path, resp.text)


def _settings():
    from chute.config import load_settings

    return load_settings()


def test_formats_outside_what_this_build_reads_are_refused(monkeypatch):
    """The format check on its own: older formats stay readable until a build drops them;
    a newer one asks for a newer chute, a dropped one for an older release."""
    from chute.engine import state_format as F
    from chute.errors import ConflictError, IncompatibleRunError

    F.check_replayable("old", None)  # a row from before the column: format 1
    F.check_replayable("now", F.STATE_FORMAT)
    with pytest.raises(IncompatibleRunError, match="upgrade chute") as exc:
        F.check_replayable("new", F.STATE_FORMAT + 1)
    assert isinstance(exc.value, ConflictError)  # CLI exit 2, HTTP 409
    assert (exc.value.name, exc.value.recorded) == ("new", F.STATE_FORMAT + 1)
    monkeypatch.setattr(F, "STATE_FORMAT", 3)
    monkeypatch.setattr(F, "OLDEST_READABLE", 2)
    F.check_replayable("two", 2)
    with pytest.raises(IncompatibleRunError, match=r"reads format 2\.\.3 \(finish it with an "
                       r"older chute release\)"):
        F.check_replayable("one", 1)
