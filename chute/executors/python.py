"""PythonExecutor: compiled SDK steps on warm zygotes, every other step on LocalExecutor.

A compiled SDK step (``python3`` running the script :mod:`chute.dsl.script` generated)
goes to a *zygote* (:mod:`chute.executors.warm_worker`): a fork server that imported the
step's modules once — one zygote per distinct set of modules, chosen by parsing the
step's source with :mod:`ast` (the controller never runs it). A zygote is a
:class:`~chute.executors.local.LocalExecutor` fork server in every other respect, so
step directories, supervisors, ``poll``, ``cancel`` and ``reattach`` are the same files
and the same code: an attempt launched warm is polled, cancelled or adopted after a
controller restart exactly like a process step (``reattach`` needs no zygote at all).

Zygotes are started on first use and kept (at most :data:`MAX_ZYGOTES`; the least
recently used is closed beyond that: its busy supervisors finish their steps). A zygote
that cannot start, does not become ready within :data:`READY_TIMEOUT`, or whose imports
left a Python thread running (a fork would copy whatever lock it holds) is not used:
steps needing those modules run cold on the LocalExecutor instead. ``CHUTE_WARM_STEPS=0``
in the environment runs every step cold.

Opt-in, a compiled SDK step runs in a *reused worker* instead
(:mod:`chute.executors.worker_pool`): a long-lived process that runs one step after
another with no fork and no supervisor, at a fraction of a warm step's cost. A step goes
there when ``PythonExecutor(reuse=True)``, or ``CHUTE_WARM_STEPS=reuse`` in the
environment, or (``reuse`` left None) its config asks for it (``@component(
reuse_worker=True)``: :func:`~chute.executors.warm_worker.wants_reuse`); never a step
with ``packages``, one whose private paths are not all under ``/tmp``
(:func:`~chute.executors.worker_pool.eligible`), nor where mount namespaces are missing:
those take the zygote path as before.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Self

from chute.executors.base import LaunchSpec, StepHandle, StepResult
from chute.executors.completions import Completions
from chute.executors.local import LocalExecutor, _ForkServer, _forkserver_env
from chute.executors.warm_worker import (
    declares_packages,
    is_sdk_step,
    preload_modules,
    wants_reuse,
)
from chute.executors.worker_pool import WorkerPool, eligible

MAX_ZYGOTES = 4
WARM_ENV = "CHUTE_WARM_STEPS"
READY_TIMEOUT = 60.0  # seconds a zygote may take to import its modules (sklearn: ~1 s)


def _path(p) -> Path:
    """``p`` as a Path, without parsing it again if it is one (several times a step)."""
    return p if isinstance(p, Path) else Path(p)


class _Zygote(_ForkServer):
    """The controller's end of a zygote: a fork server started with modules to import."""

    def __init__(self, python: str, on_reply, modules: tuple[str, ...], notify_fd: int):
        self.ready = threading.Event()
        self.modules: list[str] = []
        self.python_threads = 1
        self.proc = subprocess.Popen(
            [python, "-m", "chute.executors.warm_worker", *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the controller must not reach it
            close_fds=True,
            pass_fds=(notify_fd,),
            env=_forkserver_env(notify_fd),
        )

        def reply(data: dict) -> None:
            if data.get("ready"):
                self.modules = list(data.get("modules") or [])
                self.python_threads = int(data.get("python_threads") or 1)
                self.ready.set()
            else:
                on_reply(data)

        self._reader = threading.Thread(
            target=self._read, args=(reply,), name="chute-zygote-replies", daemon=True
        )
        self._reader.start()


class _ZygoteExecutor(LocalExecutor):
    """A LocalExecutor whose fork server is a zygote for one set of modules."""

    def __init__(self, python: str | None, modules: tuple[str, ...], completions: Completions):
        super().__init__(python, completions)
        self.modules = modules

    def _ensure_server(self) -> _ForkServer:
        if self._server is None or not self._server.alive():
            if self._server is not None:
                self._server.close()
            self._server = _Zygote(self.python, self._on_reply, self.modules,
                                   self.completions.write_fd())
        return self._server

    def ready(self, timeout: float) -> bool:
        """Start the zygote if needed and wait until it has imported its modules; False
        if it did not, or if an import left a Python thread running (forking it is unsafe)."""
        with self._lock:
            server = self._ensure_server()
        assert isinstance(server, _Zygote)
        return server.ready.wait(timeout) and server.alive() and server.python_threads <= 1


class PythonExecutor:
    """The Executor for SDK pipelines: warm zygotes for Python steps, processes otherwise."""

    def __init__(self, python: str | None = None, *, max_zygotes: int = MAX_ZYGOTES,
                 warm: bool | None = None, reuse: bool | None = None,
                 pool_size: int | None = None):
        self.python = python
        # CHUTE_WARM_STEPS=0: every step cold (to compare, or to rule the zygotes out)
        self.warm = os.environ.get(WARM_ENV, "1") != "0" if warm is None else warm
        # CHUTE_WARM_STEPS=reuse: every SDK step that can in a reused worker
        if reuse is None and os.environ.get(WARM_ENV) == "reuse":
            reuse = True
        self.reuse = reuse
        self.pool_size = pool_size
        self.pool: WorkerPool | None = None
        self.completions = Completions()  # one for all: the controller waits on it
        self.local = LocalExecutor(python, self.completions)
        self.max_zygotes = max_zygotes
        self._zygotes: OrderedDict[tuple[str, ...], _ZygoteExecutor] = OrderedDict()
        self._owners: dict[Path, LocalExecutor] = {}
        self._cold: set[tuple[str, ...]] = set()  # module sets whose zygote was unusable
        self._lock = threading.Lock()

    # -- lifecycle

    def start(self) -> PythonExecutor:
        """Start the plain fork server now (zygotes start on first use)."""
        self.local.start()
        return self

    def close(self) -> None:
        """Stop the fork server and the zygotes; running steps are not affected."""
        with self._lock:
            zygotes, self._zygotes = list(self._zygotes.values()), OrderedDict()
        for z in zygotes:
            z.close()
        if self.pool is not None:
            self.pool.close()
        self.local.close()
        self.completions.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def zygote_pids(self) -> dict[tuple[str, ...], int]:
        """Pid of each running zygote by its module set (for tests and benchmarks)."""
        with self._lock:
            return {
                k: z._server.proc.pid
                for k, z in self._zygotes.items()
                if z._server is not None and z._server.alive()
            }

    def _zygote(self, modules: tuple[str, ...]) -> _ZygoteExecutor | None:
        """The ready zygote for ``modules`` (one that imported a superset will do); None if
        these steps must run cold."""
        with self._lock:
            if modules in self._cold:
                return None
            z = self._zygotes.get(modules)
            if z is None:
                wanted = set(modules)
                z = next((z for k, z in self._zygotes.items() if wanted <= set(k)), None)
            if z is None:
                z = self._zygotes[modules] = _ZygoteExecutor(self.python, modules,
                                                             self.completions)
                while len(self._zygotes) > self.max_zygotes:
                    _, old = self._zygotes.popitem(last=False)
                    old.close()
            self._zygotes.move_to_end(next(k for k, v in self._zygotes.items() if v is z))
        if z.ready(READY_TIMEOUT):
            return z
        with self._lock:
            for k in [k for k, v in self._zygotes.items() if v is z]:
                del self._zygotes[k]
            self._cold.add(modules)
        z.close()
        return None

    # -- the Executor protocol

    def launch(self, spec: LaunchSpec) -> StepHandle:
        """Launch a compiled SDK step on a zygote, anything else on the LocalExecutor."""
        target: LocalExecutor | WorkerPool = self.local
        if self.warm and is_sdk_step(spec.argv, spec.script_source):
            source = spec.script_source or ""
            modules = preload_modules(source)
            if self._reused(spec, source) and self._pool().ready(modules):
                target = self._pool()
            else:
                target = self._zygote(modules) or self.local
        handle = target.launch(spec)
        self._owners[_path(handle.step_dir)] = target
        return handle

    def launch_ephemeral(self, spec: LaunchSpec) -> StepHandle | None:
        """Launch the step now if nothing of it can outlive this process: a step for a
        reused worker whose module set is up (the worker, and the step with it, dies with
        its controller). Else None, launching nothing: the controller launches it with
        :meth:`launch` once it has recorded the launch (a forked step outlives it)."""
        if self.pool is None or not self.warm or not is_sdk_step(spec.argv, spec.script_source):
            return None
        source = spec.script_source or ""
        if not self._reused(spec, source):
            return None
        key = preload_modules(source)
        if not self.pool.usable(key):
            return None  # (the first step of a module set waits for its worker in launch)
        handle = self.pool.launch(spec, key)
        self._owners[_path(handle.step_dir)] = self.pool
        return handle

    def _reused(self, spec: LaunchSpec, source: str) -> bool:
        """Whether this SDK step runs in a reused worker (see the module docstring)."""
        if self.reuse is None:
            return wants_reuse(source) and eligible(spec)
        return self.reuse and not declares_packages(source) and eligible(spec)

    def _pool(self) -> WorkerPool:
        if self.pool is None:
            self.pool = WorkerPool(self.python, self.completions, size=self.pool_size)
        return self.pool

    def _owner(self, handle: StepHandle) -> LocalExecutor | WorkerPool:
        step_dir = _path(handle.step_dir)
        owner = self._owners.get(step_dir)
        if owner is None and self.pool is not None and self.pool.owns(step_dir):
            return self.pool  # polled again after its result
        return owner or self.local

    def finished(self) -> set[Path]:
        """As LocalExecutor.finished, for the fork server and every zygote."""
        return self.completions.take()

    def wait(self, timeout: float) -> None:
        """As LocalExecutor.wait, for the fork server and every zygote."""
        self.completions.wait(timeout)

    def poll(self, handle: StepHandle) -> StepResult | None:
        """As LocalExecutor.poll (the executor that launched it knows its pid already)."""
        result = self._owner(handle).poll(handle)
        if result is not None:
            self._owners.pop(_path(handle.step_dir), None)
        return result

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """As LocalExecutor.cancel: TERM to the step's tree, KILL after the grace period."""
        self._owner(handle).cancel(handle, reason)

    def reattach(self, step_dir: Path) -> StepHandle | None:
        """As LocalExecutor.reattach: the step directory alone says where the attempt is."""
        return self.local.reattach(step_dir)
