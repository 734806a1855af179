"""Reused workers where no private mount namespace can be made (an unprivileged host, a
container without CAP_SYS_ADMIN): the pool gives up on its module set and its steps run
on the fork path, with the same results. The tests run as root, where namespaces work,
so the worker is started through a wrapper in which making one fails as it would there."""

from __future__ import annotations

import sys
from pathlib import Path

from chute.executors.base import SUCCEEDED
from chute.executors.python import PythonExecutor
from tests.test_executors_python import run, step
from tests.test_executors_reused import no_process_files, out, pid

WRAPPER = """#!{python}
import os, sys
if sys.argv[1:3] == ["-m", "chute.executors.reused_worker"]:
    from chute.executors import mounts

    def denied():
        raise PermissionError(1, "Operation not permitted")

    mounts.unshare_private = denied  # as unshare(CLONE_NEWNS) without the capability
    import runpy

    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module("chute.executors.reused_worker", run_name="__main__", alter_sys=True)
else:
    os.execv({python!r}, [{python!r}, *sys.argv[1:]])
"""


def _python_without_namespaces(tmp_path: Path) -> str:
    path = tmp_path / "python-no-namespaces"
    path.write_text(WRAPPER.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def test_without_mount_namespaces_reused_steps_run_on_the_fork_path(tmp_path):
    with PythonExecutor(python=_python_without_namespaces(tmp_path), reuse=True) as ex:
        specs = [step(tmp_path, pid, name=f"s{i}") for i in range(3)]
        results = [run(ex, s) for s in specs]
        assert [r.outcome for r in results] == [SUCCEEDED] * 3
        # each in a process of its own (forked from a zygote, as without reuse), with
        # the process step's files: the pool did not take them
        assert len({out(r) for r in results}) == 3
        assert not any(no_process_files(s) for s in specs)
        pool = ex.pool
        assert pool is not None and not pool.usable(next(iter(pool._broken)))
        # the worker that could not make its namespace said so, and was not kept
        assert all(not pids for pids in pool.worker_pids().values())
