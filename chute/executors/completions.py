"""The controller's end of the notify pipe: which step attempts were reported ended.

Completion is pushed, not polled for: right after it renames ``status.json`` into place a
supervisor (of the fork server or of any zygote) writes its step directory on this pipe,
inherited through the fork server; a reused worker's reply on its own pipe is a source
watched beside it (:meth:`Completions.watch`). The controller blocks in
:meth:`Completions.wait` and takes the reports with :meth:`Completions.take`, then polls
only the attempts that ended.

Separate from :mod:`chute.executors.local` because every executor shares one: the
:class:`~chute.executors.local.LocalExecutor`, the zygotes of
:class:`~chute.executors.python.PythonExecutor` and the reused workers of
:class:`~chute.executors.worker_pool.WorkerPool` all report on the one the controller
waits on.
"""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterable
from pathlib import Path


class Completions:
    """The controller's end of the notify pipe: step directories whose attempt was reported
    ended (by a supervisor of the fork server or of any zygote, or by this process), and of
    the *sources* watched beside it (a :class:`~chute.executors.worker_pool.WorkerPool`'s
    worker replies).

    Read by the controller's own thread in :meth:`wait` and :meth:`take`: a report wakes
    it straight from the supervisor or the worker, with no thread or process in between.
    """

    def __init__(self) -> None:
        self._r: int | None = None
        self._w: int | None = None
        self._partial = b""
        self._dirs: set[Path] = set()
        self._ep: select.epoll | None = None  # the pipe and the sources' fds, for wait
        self._sources: dict[int, Callable[[], Iterable[Path]]] = {}

    def write_fd(self) -> int:
        """The write end, to pass to a fork server (opened on first use)."""
        if self._w is None:
            self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            if self._ep is not None:
                self._ep.register(self._r, select.EPOLLIN)
        return self._w

    def add(self, step_dir: Path) -> None:
        """Report ``step_dir`` ended, from this process (any thread)."""
        try:
            os.write(self.write_fd(), os.fsencode(step_dir) + b"\n")
        except OSError:
            pass  # full: the controller's periodic poll of every attempt finds it

    def watch(self, fd: int, drain: Callable[[], Iterable[Path]]) -> None:
        """Wake :meth:`wait` when ``fd`` is readable, and call ``drain`` there and in every
        :meth:`take`: it reads what is ready (never blocking) and returns the step
        directories that ended. Ends it notices elsewhere (another thread) it must
        :meth:`add` instead: nothing else wakes a waiting controller."""
        self._sources[fd] = drain
        if self._ep is not None:
            self._ep.register(fd, select.EPOLLIN)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed)."""
        if self._sources.pop(fd, None) is not None and self._ep is not None:
            try:
                self._ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def _read(self) -> None:
        if self._r is None:
            return
        data = self._partial
        try:
            while chunk := os.read(self._r, 65536):
                data += chunk
        except (BlockingIOError, InterruptedError):
            pass
        *lines, self._partial = data.split(b"\n")
        self._dirs.update(Path(os.fsdecode(line)) for line in lines if line)

    def take(self) -> set[Path]:
        """The step directories reported since the last call."""
        self._read()
        for drain in list(self._sources.values()):
            self._dirs.update(drain())
        dirs, self._dirs = self._dirs, set()
        return dirs

    def wait(self, timeout: float) -> None:
        """Block until a report is pending or ``timeout`` seconds passed."""
        if self._dirs:
            return
        if self._ep is None:
            self._ep = select.epoll()
            if self._r is None:
                self.write_fd()  # registers it
            else:
                self._ep.register(self._r, select.EPOLLIN)
            for fd in list(self._sources):
                self._ep.register(fd, select.EPOLLIN)
        end = time.monotonic() + timeout
        while True:
            try:
                # (epoll counts in int milliseconds: a longer wait is no wait's end)
                events = self._ep.poll(max(timeout, 0.0) if timeout < 1e6 else -1)
            except InterruptedError:
                events = []
            woke = False
            for fd, _ in events:
                drain = self._sources.get(fd)
                if drain is None:
                    woke = True  # the pipe: take reads it
                else:
                    self._dirs.update(drain())
            # a source's wake-up that ended nothing (a worker said it is ready, or another
            # thread read the reply first) is no reason for a turn: wait for the rest
            if woke or self._dirs or not events:
                return
            timeout = end - time.monotonic()
            if timeout <= 0:
                return

    def close(self) -> None:
        """Close both ends and stop watching (reopened if used again)."""
        for fd in (self._r, self._w):
            if fd is not None:
                os.close(fd)
        if self._ep is not None:
            self._ep.close()
        self._r = self._w = self._ep = None
        self._partial = b""
        self._sources.clear()
