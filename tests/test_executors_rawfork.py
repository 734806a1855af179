"""Warm steps are forked without CPython's after-fork work (chute.executors.rawfork), with
the same result as ``os.fork``: the at-fork callbacks run where they would, ``random`` is
fresh in every step, threads work, and it stands aside wherever it is not equivalent.

The fork tests run in a fresh interpreter each (``record`` patches ``os`` for good).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from chute.dsl import component
from chute.executors import rawfork
from chute.executors.base import SUCCEEDED
from chute.executors.python import PythonExecutor
from tests.conftest import REPO
from tests.test_executors_python import read_outputs, run, step, zygote_of

FORKS = textwrap.dedent(
    """
    import json, os, random, sys
    from chute.executors import rawfork
    print(json.dumps({"recorded": rawfork.record(), "active": rawfork.active()}))
    log = []
    def note(what):
        return lambda: log.append(what)
    def boom():
        raise RuntimeError("an at-fork callback failing is ignored, as by os.fork")
    os.register_at_fork(before=note("before-1"), after_in_parent=note("parent-1"),
                        after_in_child=note("child-1"))
    os.register_at_fork(before=note("before-2"), after_in_child=boom)
    os.register_at_fork(after_in_child=note("child-3"))
    if sys.argv[1:] == ["thread"]:  # a second thread: rawfork must stand aside
        import threading, time
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    sys.addaudithook(lambda event, _: event == "os.fork" and log.append("audit"))
    fork = rawfork.fork if sys.argv[1:] != ["os"] else os.fork
    for _ in range(3):
        r, w = os.pipe()
        pid = fork()
        if pid == 0:
            os.write(w, json.dumps({"log": log, "random": random.random()}).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        child = json.loads(os.read(r, 65536))
        os.close(r)
        print(json.dumps({"parent": log, **child}))
        log.clear()
    """
)


def forks(*args: str, env: dict | None = None) -> tuple[list[dict], str]:
    out = subprocess.run(
        # (3.12+ warns about os.fork with a thread running: not what this checks)
        [sys.executable, "-W", "ignore::DeprecationWarning", "-c", FORKS, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )
    return [json.loads(line) for line in out.stdout.splitlines()], out.stderr


def test_a_direct_fork_runs_the_callbacks_as_os_fork_does():
    (raw, raw_err), (by_os, os_err) = forks(), forks("os")
    assert raw[0] == {"recorded": True, "active": True}
    # os.fork: before-callbacks in reverse order of registration, then each side's in order
    expected_parent = ["audit", "before-2", "before-1", "parent-1"]
    expected_child = ["audit", "before-2", "before-1", "child-1", "child-3"]
    for runs in (raw, by_os):
        for r in runs[1:]:
            assert r["parent"] == expected_parent and r["log"] == expected_child
    # random is reseeded for each child, as its own after-fork callback would
    values = [r["random"] for r in raw[1:]]
    assert len(set(values)) == len(values)
    # the failing callback is reported as os.fork reports it, in the child (3 forks)
    strip = [line for line in os_err.splitlines() if not line.startswith("Exception ignored")]
    assert raw_err.count("RuntimeError: an at-fork callback failing") == 3
    assert [line for line in raw_err.splitlines()
            if not line.startswith("Exception ignored")] == strip


def test_threading_and_random_imported_later_are_stood_in_for():
    """A zygote records before its preloads import random (threading comes with chute):
    their callbacks are recognised, not run in the child, and random is still fresh."""
    code = textwrap.dedent(
        """
        import json, os, sys
        from chute.executors import rawfork
        assert rawfork.record()
        import random, threading
        os.register_at_fork(after_in_child=random.Random().seed)  # not the module's own
        values = []
        for _ in range(3):
            r, w = os.pipe()
            pid = rawfork.fork()
            if pid == 0:
                os.write(w, repr(random.random()).encode())
                os._exit(0)
            os.close(w)
            os.waitpid(pid, 0)
            values.append(float(os.read(r, 100)))
        print(json.dumps({"handlers": len(rawfork._handlers), "values": values}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    data = json.loads(out.stdout)
    assert data["handlers"] == 1  # only the stray generator's seed, run as any callback
    assert len(set(data["values"])) == 3


def test_after_seal_a_module_imported_means_os_fork(tmp_path):
    """seal() gives os.register_at_fork back; a module imported after it may register a
    callback rawfork cannot see, so the process forks with os.fork from then on."""
    (tmp_path / "chute_test_late.py").write_text(
        "import os\nLOG = []\nos.register_at_fork(after_in_child=lambda: LOG.append('late'))\n"
    )
    code = textwrap.dedent(
        """
        import json, os, sys
        from chute.executors import rawfork
        assert rawfork.record()
        rawfork.seal()
        builtin = type(os.register_at_fork).__name__ == "builtin_function_or_method"
        before = rawfork.active()
        import chute_test_late
        r, w = os.pipe()
        pid = rawfork.fork()
        if pid == 0:
            os.write(w, json.dumps(chute_test_late.LOG).encode())
            os._exit(0)
        os.close(w)
        os.waitpid(pid, 0)
        print(json.dumps({"builtin": builtin, "before": before, "after": rawfork.active(),
                          "child": json.loads(os.read(r, 1000))}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    assert json.loads(out.stdout) == {"builtin": True, "before": True, "after": False,
                                      "child": ["late"]}


def test_with_a_second_thread_it_is_os_fork():
    runs, _ = forks("thread")
    for r in runs[1:]:  # os.fork ran the callbacks, once each: rawfork did not again
        assert r["parent"] == ["audit", "before-2", "before-1", "parent-1"]
        assert r["log"] == ["audit", "before-2", "before-1", "child-1", "child-3"]
    assert len({r["random"] for r in runs[1:]}) == 3


def test_it_can_be_turned_off():
    runs, _ = forks(env={rawfork.RAW_FORK_ENV: "0"})
    assert runs[0] == {"recorded": False, "active": False}
    assert runs[1]["log"] == ["audit", "before-2", "before-1", "child-1", "child-3"]


def test_not_used_when_an_unknown_callback_came_before_record():
    code = "import logging\nfrom chute.executors import rawfork\nprint(rawfork.record())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False"


def test_a_zygote_imports_only_modules_whose_callbacks_rawfork_knows():
    """What a zygote imports before it calls record() registers only threading's and
    random's callbacks, which rawfork stands in for; any other would be missed."""
    code = textwrap.dedent(
        """
        import os, sys
        real, seen = os.register_at_fork, set()
        def spy(**kw):
            seen.add(sys._getframe(1).f_globals.get("__name__"))
            real(**kw)
        os.register_at_fork = spy
        import chute.executors.warm_worker
        print(",".join(sorted(seen)))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert set(out.stdout.strip().split(",")) <= rawfork.KNOWN


@component
def fork_probe() -> str:
    import json
    import os
    import random
    import threading

    import chute_test_forkmod

    done = []
    t = threading.Thread(target=lambda: done.append(random.random()))  # not a daemon
    t.start()
    t.join()
    alive = threading.Thread(target=lambda: done.append(1))
    alive.start()  # joined by the interpreter's shutdown, as in a cold run
    import inspect

    return json.dumps(
        {
            "register_at_fork": inspect.isbuiltin(os.register_at_fork),
            "callback_ran_here": chute_test_forkmod.CHILD == os.getpid(),
            "random": random.random(),
            "thread": len(done) >= 1,
            "main": threading.current_thread() is threading.main_thread(),
        }
    )


def test_warm_steps_run_preloaded_modules_callbacks_and_get_fresh_random(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "chute_test_forkmod.py").write_text(
        "import os\nCHILD = None\n"
        "def _child():\n    global CHILD\n    CHILD = os.getpid()\n"
        "os.register_at_fork(after_in_child=_child)\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(lib), os.environ.get("PYTHONPATH", "")]))
    seen = []
    with PythonExecutor() as ex:
        for i in range(3):
            s = step(tmp_path, fork_probe, name=f"s{i}")
            r = run(ex, s)
            assert r.outcome == SUCCEEDED, r
            assert zygote_of(s)  # forked warm, from the zygote that imported the module
            seen.append(json.loads(next(iter(read_outputs(r).values()))))
    for probe in seen:
        assert probe["callback_ran_here"] and probe["thread"] and probe["main"]
        assert probe["register_at_fork"]  # the interpreter's own, not the zygote's recorder
    assert len({p["random"] for p in seen}) == 3
