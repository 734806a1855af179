"""A reused worker's private /tmp (chute/executors/worker_tmp.py): mounted once per
worker, emptied into each step's directory, never seen by the next step.

Real worker processes; step directories under the host's /tmp (as pytest's tmp_path)
and outside it (/var/tmp: no host path then needs binding into a step's /tmp).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from chute.dsl import Dataset, Input, component
from chute.dsl.script import ART_IN_DIR, PARAM_OUT_DIR
from chute.executors.base import SUCCEEDED
from chute.executors.python import PythonExecutor
from chute.executors.worker_tmp import WORKERS_DIR
from tests.fixtures.executor import wait_for_file
from tests.test_executors_python import log_lines, run, step

OUT = f"{PARAM_OUT_DIR}/Output"


@component
def litter(tag: str) -> str:
    import json
    import os

    seen = sorted(os.listdir("/tmp"))
    with open("/tmp/leftover.txt", "w") as fh:
        fh.write(tag)
    os.makedirs("/tmp/junk/deep")
    print(f"step {tag}")
    return json.dumps({"pid": os.getpid(), "seen": seen, "cwd": os.getcwd(), "tag": tag})


@component
def read_input(data: Input[Dataset]) -> str:
    import json
    import os

    with open(data.path) as fh:
        return json.dumps({"pid": os.getpid(), "text": fh.read(), "path": data.path})


@component
def look(path: str) -> str:
    import json
    import os

    return json.dumps({"pid": os.getpid(), "exists": os.path.lexists(path),
                       "seen": sorted(os.listdir("/tmp"))})


@component
def mounts() -> str:
    import json
    import os

    with open("/proc/self/mountinfo") as fh:
        points = [line.split()[4] for line in fh]
    return json.dumps({"pid": os.getpid(), "mounts": len(points),
                       "tmp": [p for p in points if p.startswith("/tmp")]})


@pytest.fixture
def var_tmp():
    """A directory outside the host's /tmp (as a chute home is)."""
    d = Path(tempfile.mkdtemp(prefix="chute-test-", dir="/var/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["under /tmp", "/var/tmp"])
def root(request, tmp_path, var_tmp) -> Path:
    """Where the step directories go: both places must work."""
    return (tmp_path if request.param == "under /tmp" else var_tmp) / "steps"


def out(result) -> dict:
    return json.loads(Path(result.outputs[OUT]).read_text())


def worker_tmp(ex) -> str:
    """The (one) worker's own directory (the pool removes it when the worker is gone)."""
    (w,) = [w for ws in ex.pool._workers.values() for w in ws if not w.gone]
    return w.tmp


def scratch_of(ex) -> Path:
    """The host directory the (one) worker shows as /tmp."""
    return Path(worker_tmp(ex)) / "tmp"


def tmp_mount(pid: int) -> tuple[str, str]:
    """(mount id, root) of the worker's /tmp mount, from its mountinfo."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    (line,) = [x for x in lines if x.split()[4] == "/tmp"]
    return line.split()[0], line.split()[3]


def test_a_steps_leftovers_go_to_its_step_dir_not_to_the_next_step(root):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        specs = [step(root, litter, name=n, inputs={"tag": n}) for n in ("one", "two")]
        first, second = (run(ex, s) for s in specs)
        assert first.outcome == second.outcome == SUCCEEDED
        a, b = out(first), out(second)
        assert a["pid"] == b["pid"]  # one worker ran both
        for seen in (a["seen"], b["seen"]):  # an empty /tmp (bar a host path bound in)
            assert "leftover.txt" not in seen and "junk" not in seen and "outputs" not in seen
        for s, tag in zip(specs, ("one", "two"), strict=True):
            kept = s.step_dir / "root" / "tmp"  # the step's /tmp, as a process step's
            assert (kept / "leftover.txt").read_text() == tag
            assert (kept / "junk" / "deep").is_dir()
            assert ("stdout", f"step {tag}") in log_lines(s)
        # emptied after each step, but for the mount point of the step dirs' parent if it
        # is under the host's /tmp (bound once for all the steps there)
        left = {str(p.relative_to(scratch_of(ex))) for p in scratch_of(ex).rglob("*")}
        chain = root.relative_to("/tmp").parts if root.is_relative_to("/tmp") else ()
        assert left == {"/".join(chain[:i]) for i in range(1, len(chain) + 1)}


def test_outputs_of_consecutive_steps_land_in_their_own_step_dirs(root):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        specs = [step(root, litter, name=f"s{i}", inputs={"tag": f"t{i}"}) for i in range(3)]
        results = [run(ex, s) for s in specs]
        assert len({out(r)["pid"] for r in results}) == 1
        for s, r, i in zip(specs, results, range(3), strict=True):
            assert r.outputs == {OUT: str(s.step_dir / "root" / OUT.lstrip("/"))}
            assert out(r)["tag"] == f"t{i}"
            assert out(r)["cwd"] == str(s.step_dir)  # its step directory, seen from the step


def test_an_input_is_at_its_path_and_gone_for_the_next_step(root):
    src = root.parent / "data.txt"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_text("payload")
    dest = f"{ART_IN_DIR}/data"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        r = run(ex, step(root, read_input, name="reads", input_files={dest: str(src)}))
        assert r.outcome == SUCCEEDED
        got = out(r)
        assert (got["text"], got["path"]) == ("payload", dest)
        nxt = run(ex, step(root, look, name="next", inputs={"path": dest}))
        assert nxt.outcome == SUCCEEDED
        seen = out(nxt)
        assert seen["pid"] == got["pid"] and seen["exists"] is False
        assert "inputs" not in seen["seen"]
    assert src.read_text() == "payload"  # a copy was placed, the source untouched


def test_no_mount_per_step_outside_tmp_and_the_directory_goes_with_the_worker(var_tmp):
    root = var_tmp / "steps"
    stale = var_tmp / WORKERS_DIR / "4194999-gone"  # a dead worker's (no such pid)
    stale.mkdir(parents=True)
    (stale / "x").write_text("left by a killed worker")
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = run(ex, step(root, litter, name="s0", inputs={"tag": "a"}))
        pid = out(first)["pid"]
        scratch = worker_tmp(ex)
        assert Path(scratch).parent == var_tmp / WORKERS_DIR  # beside the step dirs
        assert not stale.exists()  # swept when the scratch was made
        mount = tmp_mount(pid)
        assert mount[1].endswith(f"/{os.path.basename(scratch)}/tmp")
        count = len(Path(f"/proc/{pid}/mountinfo").read_text().splitlines())
        for i in range(1, 4):
            assert run(ex, step(root, litter, name=f"s{i}", inputs={"tag": "b"})).outcome \
                == SUCCEEDED
        assert tmp_mount(pid) == mount  # the same mount all along: none made per step
        assert len(Path(f"/proc/{pid}/mountinfo").read_text().splitlines()) == count
        during = out(run(ex, step(root, mounts, name="m")))  # nor while a step runs
        assert during["pid"] == pid and during["mounts"] == count and during["tmp"] == ["/tmp"]
    assert not os.path.exists(scratch)


def test_a_host_path_under_tmp_given_to_a_step_is_seen_for_that_step_only(var_tmp, tmp_path):
    host = tmp_path / "hostfile"
    host.write_text("on the host")
    root = var_tmp / "steps"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        given = step(root, look, name="given", inputs={"path": str(host)})
        seen = out(run(ex, given))
        assert seen["exists"] is True  # bound into its /tmp at the same path
        after = out(run(ex, step(root, look, name="after", inputs={"path": str(host)})))
        assert after["pid"] == seen["pid"]
        after = out(run(ex, step(root, look, name="other", inputs={"path": "/tmp/chute-test-not-there"})))
        assert after["seen"] == []  # no mount point left behind in the next step's /tmp
        assert not (given.step_dir / "root" / "tmp" / host.parts[2]).exists()  # nor kept
    assert host.read_text() == "on the host"


def test_a_deleted_private_tmp_is_made_again(root):
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = run(ex, step(root, litter, name="s0", inputs={"tag": "a"}))
        old = worker_tmp(ex)
        # e.g. its parent directory deleted from outside; the worker may still be making
        # the next step's directory there (after its reply): again until it is gone
        end = time.monotonic() + 10
        while os.path.exists(old):
            shutil.rmtree(old, ignore_errors=time.monotonic() < end)
        s = step(root, litter, name="s1", inputs={"tag": "b"})
        second = run(ex, s)
        assert second.outcome == SUCCEEDED and out(second)["pid"] == out(first)["pid"]
        assert out(second)["tag"] == "b" and (s.step_dir / "root/tmp/leftover.txt").exists()
        assert worker_tmp(ex) != old and os.path.isdir(worker_tmp(ex))


def test_step_dirs_under_tmp_are_bound_once_per_parent(tmp_path):
    roots = [tmp_path / "run1", tmp_path / "run2"]
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        seen = [out(run(ex, step(roots[i % 2], mounts, name=f"m{i}"))) for i in range(4)]
        seen += [out(run(ex, step(roots[1], mounts, name=f"again{i}"))) for i in range(2)]
        assert len({s["pid"] for s in seen}) == 1
        for i, s in enumerate(seen):  # its /tmp, and its run's steps bound in
            assert s["tmp"] == ["/tmp", str(roots[i % 2] if i < 4 else roots[1])]
        assert seen[4]["mounts"] == seen[5]["mounts"] == seen[0]["mounts"]
        left = {str(p.relative_to(scratch_of(ex))) for p in scratch_of(ex).rglob("*")}
        assert not any(x.endswith("run1") for x in left)  # the last parent's chain only
        assert any(x.endswith("run2") for x in left)


def test_the_next_runs_steps_reuse_the_mount_points_chain_and_another_chain_is_removed(
        tmp_path):
    home = tmp_path / "home"
    roots = [home / "run1", home / "run2", tmp_path / "other" / "deep" / "run3"]
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        seen = [out(run(ex, step(roots[0], mounts, name="m0")))]
        scratch = scratch_of(ex)
        chain = scratch / home.relative_to("/tmp")
        os.setxattr(chain, "user.chute-test", b"mark")  # (gone if the chain is made anew)
        # a run beside the last one: its mount point is the last one's, renamed, in the
        # same chain of directories (no rmdir, mkdir, or new watch on the step's path)
        seen.append(out(run(ex, step(roots[1], mounts, name="m1"))))
        assert os.getxattr(chain, "user.chute-test") == b"mark"
        assert sorted(p.name for p in chain.iterdir()) == ["run2"]
        # another chain: the old one is moved out of the scratch at once, removed after
        # the reply (never seen by a step, never left behind)
        seen.append(out(run(ex, step(roots[2], mounts, name="m2"))))
        left = {str(p.relative_to(scratch)) for p in scratch.rglob("*")}
        rel = roots[2].relative_to("/tmp").parts
        assert left == {"/".join(rel[:i]) for i in range(1, len(rel) + 1)}
        own = Path(worker_tmp(ex))
        end = time.monotonic() + 5
        while any(p.name.startswith("stale") for p in own.iterdir()) and time.monotonic() < end:
            time.sleep(0.01)
        assert sorted(p.name for p in own.iterdir()) == ["next", "tmp"]
        assert len({s["pid"] for s in seen}) == 1
        assert [s["tmp"] for s in seen] == [["/tmp", str(r)] for r in roots]  # its run's only
        assert seen[0]["mounts"] == seen[1]["mounts"] == seen[2]["mounts"]


@component
def write_beside() -> str:
    import json
    import os

    # two levels up from its step directory: not a path it was handed, so not re-shared
    path = os.path.join(os.path.dirname(os.path.dirname(os.getcwd())), "stray.txt")
    seen = os.path.lexists(path)
    with open(path, "w") as fh:
        fh.write("stray")
    return json.dumps({"pid": os.getpid(), "seen": seen})


def test_a_write_beside_the_bound_step_dirs_stays_private(tmp_path):
    root = tmp_path / "run"
    stray = tmp_path / "stray.txt"  # in /tmp, beside the bound parent: private
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = step(root, write_beside, name="w0")
        a = out(run(ex, first))
        b = out(run(ex, step(root, write_beside, name="w1")))
        assert a["pid"] == b["pid"] and a["seen"] is False and b["seen"] is False
        kept = first.step_dir / "root" / str(stray).lstrip("/")  # with the rest of its /tmp
        assert kept.read_text() == "stray"
    assert not stray.exists()  # never the host's


@component
def tagged(tag: str) -> str:
    import json
    import os

    return json.dumps({"pid": os.getpid(), "tag": tag, "cwd": os.getcwd()})


def test_a_steps_directory_is_the_one_made_ahead_and_made_anew_elsewhere(var_tmp):
    root = var_tmp / "steps"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = out(run(ex, step(root, tagged, name="s0", inputs={"tag": "a"})))
        ahead = Path(worker_tmp(ex)) / "next"
        # made after the reply, before the next request is read; with root/tmp, as the
        # step before left something in its /tmp (its output)
        wait_for_file(ahead / "root" / "tmp")
        made, made_tmp = ahead.stat(), (ahead / "root" / "tmp").stat()
        s = step(root, tagged, name="s1", inputs={"tag": "b"})
        second = out(run(ex, s))
        assert second["pid"] == first["pid"] and second["tag"] == "b"
        assert second["cwd"] == str(s.step_dir)
        got = s.step_dir.stat()  # the directory made ahead, renamed into place
        assert (got.st_ino, got.st_dev) == (made.st_ino, made.st_dev)
        mine = var_tmp / "mine"
        mine.mkdir()  # the mode a mkdir gives here: the same umask as the worker's
        assert got.st_mode == mine.stat().st_mode
        assert (s.step_dir / "root/tmp/outputs").is_dir()  # its /tmp moved in, as before
        assert (s.step_dir / "root/tmp").stat().st_ino == made_tmp.st_ino
        # a directory there already and empty (a launch that made it): used all the same
        empty = step(root, tagged, name="s2", inputs={"tag": "c"})
        empty.step_dir.mkdir()
        assert out(run(ex, empty))["tag"] == "c"
        # a step directory on another file system: made there (no rename), /tmp with it
        if os.path.isdir("/dev/shm") and os.stat("/dev/shm").st_dev != made.st_dev:
            shm = Path(tempfile.mkdtemp(prefix="chute-test-", dir="/dev/shm"))
            try:
                other = step(shm / "steps", tagged, name="s3", inputs={"tag": "d"})
                r = run(ex, other)
                assert r.outcome == SUCCEEDED and out(r)["tag"] == "d"
                assert out(r)["pid"] == first["pid"]
                assert Path(worker_tmp(ex)).parent == shm / WORKERS_DIR
                back = step(root, tagged, name="s4", inputs={"tag": "e"})
                assert out(run(ex, back))["tag"] == "e"
            finally:
                shutil.rmtree(shm, ignore_errors=True)
    assert not os.listdir(var_tmp / WORKERS_DIR)  # nothing left once the worker is gone


# ---------------------------------------------------------------- held binds


@component
def write_to(path: str, text: str) -> str:
    import json
    import os

    with open(path, "w") as fh:
        fh.write(text)
    with open("/tmp/own.txt", "w") as fh:
        fh.write("mine")
    return json.dumps({"pid": os.getpid(), "seen": sorted(os.listdir("/tmp"))})


@pytest.fixture
def env_dir(monkeypatch):
    """A host directory right below /tmp that the controller's environment names (as a
    shell that was there leaves ``OLDPWD``)."""
    d = Path(tempfile.mkdtemp(prefix="chute-env-", dir="/tmp"))
    (d / "there.txt").write_text("on the host")
    monkeypatch.setenv("OLDPWD", str(d))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def binds(pid: int, path: Path) -> list[str]:
    """The mount ids at ``path`` in the worker's mountinfo."""
    lines = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    return [x.split()[0] for x in lines if x.split()[4] == str(path)]


def test_a_tmp_directory_the_environment_names_is_bound_once_for_every_step(
        env_dir, var_tmp):
    root = var_tmp / "steps"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = out(run(ex, step(root, look, name="l0", inputs={"path": str(env_dir / "there.txt")})))
        assert first["exists"] is True  # as a process step: the env's path is re-shared
        pid = first["pid"]
        (mount,) = binds(pid, env_dir)  # still bound between steps
        w = step(root, write_to, name="w", inputs={"path": str(env_dir / "new.txt"), "text": "x"})
        wrote = out(run(ex, w))
        assert wrote["pid"] == pid and wrote["seen"] == [env_dir.name, "own.txt"]
        assert (env_dir / "new.txt").read_text() == "x"  # written on the host
        # the step's own leftovers go to its step directory; the bound directory stays
        assert sorted(os.listdir(w.step_dir / "root" / "tmp")) == ["outputs", "own.txt"]
        during = out(run(ex, step(root, mounts, name="m")))
        assert during["tmp"] == ["/tmp", str(env_dir)]
        assert binds(pid, env_dir) == [mount]  # the same bind all along: none per step
    assert sorted(os.listdir(env_dir)) == ["new.txt", "there.txt"]  # nothing moved away


def test_a_held_directory_is_let_go_of_when_not_named_gone_or_private(
        env_dir, var_tmp, monkeypatch):
    root = var_tmp / "steps"

    def seen(name: str, **kw) -> list[str]:
        """What a step (named nothing under /tmp by its own texts) finds in /tmp."""
        spec = step(root, look, name=name, inputs={"path": "/tmp/chute-none"}, **kw)
        found = out(run(ex, spec))
        assert found["pid"] == pid  # one worker all along
        return found["seen"]

    with PythonExecutor(reuse=True, pool_size=1) as ex:
        pid = out(run(ex, step(root, look, name="l0", inputs={"path": "/"})))["pid"]
        assert seen("l1") == [env_dir.name] and len(binds(pid, env_dir)) == 1
        # a step with a private path in it: not re-shared for that step (as sandbox)
        assert seen("p", private_paths=[str(env_dir / "mine")]) == []
        assert seen("l2") == [env_dir.name]
        # the step's own variable replaces the one that named it
        over = step(root, look, name="o", inputs={"path": "/tmp/chute-none"})
        over.env["OLDPWD"] = "/"
        assert out(run(ex, over))["seen"] == []
        assert seen("l3") == [env_dir.name]
        monkeypatch.setenv("OLDPWD", "/")  # the environment no longer names it
        assert seen("l4") == [] and binds(pid, env_dir) == []
        monkeypatch.setenv("OLDPWD", str(env_dir))
        assert seen("l5") == [env_dir.name]
        shutil.rmtree(env_dir)  # deleted on the host
        assert seen("l6") == [] and binds(pid, env_dir) == []


def test_step_dirs_in_a_held_directory_are_seen_through_it(env_dir):
    """Step directories right in the held directory (the worker's own then in
    /tmp/.chute-workers): no kept bind of their own; the steps see them and their
    leftovers still go to them."""
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        specs = [step(env_dir, litter, name=f"s{i}", inputs={"tag": str(i)}) for i in range(3)]
        seen = [out(run(ex, s)) for s in specs]
        pid = seen[0]["pid"]
        assert {s["pid"] for s in seen} == {pid} and len(binds(pid, env_dir)) == 1
        assert ex.pool._workers and worker_tmp(ex).startswith(f"/tmp/{WORKERS_DIR}/")
        for s, found in zip(specs, seen):
            assert found["cwd"] == str(s.step_dir) and found["seen"] == [env_dir.name]
            assert (s.step_dir / "root/tmp/leftover.txt").read_text() == found["tag"]
        assert {p.name for p in env_dir.iterdir()} >= {"there.txt", "s0", "s1", "s2"}


@component
def touch_and_list(top: str, rel: str) -> str:
    import json
    import os

    top = "/tmp/" + top  # (made here: a path in the step's texts is bound for it)
    with open(os.path.join(top, rel), "w") as fh:
        fh.write("the step's")
    found = []
    for d, dirs, files in os.walk(top):
        found += [os.path.relpath(os.path.join(d, n), top) for n in dirs + files]
    return json.dumps({"pid": os.getpid(), "found": sorted(found)})


def test_a_deeper_path_the_environment_names_is_held_and_let_go_if_its_skeleton_is_touched(
        env_dir, var_tmp, monkeypatch):
    """OLDPWD=/tmp/x/sub/dir (x: the step's own, but for the bound dir): held; a step that
    writes into x has it let go of after it, its file moved to its step dir as any."""
    deep = env_dir / "sub" / "dir"
    deep.mkdir(parents=True)
    (deep / "in.txt").write_text("host")
    monkeypatch.setenv("OLDPWD", str(deep))
    root = var_tmp / "steps"

    def touch(name: str, rel: str):
        spec = step(root, touch_and_list, name=name, inputs={"top": env_dir.name, "rel": rel})
        return spec, out(run(ex, spec))

    with PythonExecutor(reuse=True, pool_size=1) as ex:
        spec, first = touch("a", "sub/dir/new.txt")
        pid = first["pid"]
        # the step sees the bound directory, not the host's other entries of x
        assert first["found"] == ["sub", "sub/dir", "sub/dir/in.txt", "sub/dir/new.txt"]
        assert len(binds(pid, deep)) == 1  # held between steps
        assert (deep / "new.txt").read_text() == "the step's"  # on the host
        assert not (spec.step_dir / "root/tmp" / env_dir.name).exists()  # nothing moved
        spec, second = touch("b", "own.txt")
        assert second["pid"] == pid and "own.txt" in second["found"]
        assert not (env_dir / "own.txt").exists()  # the step's own /tmp, not the host's
        moved = spec.step_dir / "root/tmp" / env_dir.name
        assert (moved / "own.txt").read_text() == "the step's"  # moved out as any entry
        assert binds(pid, deep) == []  # let go of: its skeleton was touched
        _, third = touch("c", "sub/dir/c.txt")
        assert third["pid"] == pid and "own.txt" not in third["found"]  # gone from /tmp
        assert len(binds(pid, deep)) == 1  # held anew
        assert sorted(os.listdir(deep)) == ["c.txt", "in.txt", "new.txt"]


def test_an_interpreter_under_tmp_is_bound_once(var_tmp, tmp_path, monkeypatch):
    """A file the environment names deep under /tmp (a venv's python there) is held."""
    tool = tmp_path / "venv" / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    monkeypatch.setenv("CHUTE_TEST_TOOL", str(tool))
    root = var_tmp / "steps"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        seen = [out(run(ex, step(root, look, name=f"l{i}", inputs={"path": str(tool)})))
                for i in range(3)]
        pid = seen[0]["pid"]
        assert all(s["pid"] == pid and s["exists"] for s in seen)
        assert len(binds(pid, tool)) == 1  # held, not bound per step


def test_two_deeper_paths_in_one_entry_of_tmp_are_bound_per_step(env_dir, var_tmp,
                                                                monkeypatch):
    for name in ("a", "b"):
        (env_dir / name).mkdir()
    monkeypatch.setenv("OLDPWD", str(env_dir / "a"))
    monkeypatch.setenv("CHUTE_TEST_OTHER", str(env_dir / "b"))
    root = var_tmp / "steps"
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        for i in range(2):
            found = out(run(ex, step(root, touch_and_list, name=f"s{i}",
                                     inputs={"top": env_dir.name, "rel": f"b/{i}.txt"})))
            assert found["found"] == ["a", "b", *(f"b/{j}.txt" for j in range(i + 1))]
            assert binds(found["pid"], env_dir / "a") == binds(found["pid"], env_dir / "b") == []


def test_step_dirs_beside_a_deeper_held_path_take_its_entry_of_tmp(var_tmp, tmp_path,
                                                                  monkeypatch):
    """A held /tmp/x/.../deep, then a run whose step directories are under /tmp/x too:
    the kept step directories' bind takes x (the held one is let go of, and bound for each
    step instead); the steps see both."""
    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "in.txt").write_text("host")
    monkeypatch.setenv("OLDPWD", str(deep))
    with PythonExecutor(reuse=True, pool_size=1) as ex:
        first = out(run(ex, step(var_tmp / "steps", look, name="v",
                                 inputs={"path": "/tmp/none"})))
        pid = first["pid"]
        assert len(binds(pid, deep)) == 1
        for i in range(2):
            spec = step(tmp_path / "steps", litter, name=f"s{i}", inputs={"tag": str(i)})
            found = out(run(ex, spec))
            assert found["pid"] == pid and found["cwd"] == str(spec.step_dir)
            assert (spec.step_dir / "root/tmp/leftover.txt").read_text() == str(i)
            assert binds(pid, deep) == []  # bound for the step only, as any handed path
        seen = out(run(ex, step(tmp_path / "steps", look, name="l",
                                inputs={"path": str(deep / "in.txt")})))
        assert seen["pid"] == pid and seen["exists"] and seen["seen"] == [tmp_path.parts[2]]
        assert binds(pid, deep) == []
        assert (deep / "in.txt").read_text() == "host" and sorted(os.listdir(deep)) == ["in.txt"]
