"""A reused worker's output plumbing: fds 1-2 pumped into the running step's log.

A process step's stdout and stderr are pipes its supervisor reads; in a reused worker
(:mod:`chute.executors.reused_worker`) fds 1 and 2 of the worker itself are such pipes,
read for its whole life by one :class:`Pump` thread that feeds the current step's
:class:`LazyLog` (a :class:`~chute.executors.logsink.LogSink`): what the step prints,
what a subprocess it runs writes and what C code writes all reach the step's log, in
order within each stream. Also the per-step ``sys.std*`` objects (:func:`fresh_stdio`)
and what happens when the controller goes away (:func:`die`).
"""

from __future__ import annotations

import io
import os
import select
import signal
import threading

from chute.executors import proctree
from chute.executors.logsink import LogSink


class Pump:
    """Copies what is written on fds 1 and 2 (pipes) to the current step's sink.

    One thread for the worker's life: it also watches the request pipe, whose closing
    means the controller is gone, and then kills this process and its children."""

    def __init__(self, out_r: int, err_r: int, watch_fd: int) -> None:
        self.lock = threading.Lock()
        self.sink: LogSink | None = None
        self.streams = {out_r: b"stdout", err_r: b"stderr"}
        self.watch_fd = watch_fd
        self.pending = select.poll()  # (drain(): one poll, not a failed read per pipe)
        for fd in self.streams:
            self.pending.register(fd, select.POLLIN)
        self.thread = threading.Thread(target=self._run, name="chute-worker-pump", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        poller = select.poll()
        for fd in self.streams:
            poller.register(fd, select.POLLIN)
        poller.register(self.watch_fd, 0)  # POLLHUP only: no writer left
        while True:
            try:
                events = poller.poll()
            except InterruptedError:
                continue
            for fd, ev in events:
                if fd == self.watch_fd:
                    if ev & (select.POLLHUP | select.POLLERR):
                        die()
                    continue
                with self.lock:
                    self._read(fd)
                if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    poller.unregister(fd)  # a step closed fd 1 or 2: its worker retires

    def _read(self, fd: int) -> None:
        while True:
            try:
                data = os.read(fd, 65536)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            if self.sink is not None:  # between steps: nobody's (the worker retires anyway)
                self.sink.feed(self.streams[fd], data)

    def drain(self) -> None:
        """Feed everything written so far (the step and its children have ended)."""
        with self.lock:
            for fd, _ in self.pending.poll(0):
                self._read(fd)


class LazyLog(LogSink):
    """A LogSink whose log file is created with its first line: a step that writes
    nothing costs no file (readers of logs take a missing file as an empty log)."""

    def __init__(self, path: str, stdout_path: str, secrets: list[str]) -> None:
        self.path = path
        self._fd: int | None = None
        super().__init__(-1, stdout_path, secrets)  # type: ignore[arg-type] - os.open takes it

    @property  # type: ignore[override]
    def log_fd(self) -> int:
        if self._fd is None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
            try:
                self._fd = os.open(self.path, flags, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._fd = os.open(self.path, flags, 0o644)
        return self._fd

    @log_fd.setter
    def log_fd(self, value: int) -> None:
        pass  # LogSink.__init__'s -1: opened on first use instead

    def end(self) -> None:
        """The step ended: log what is left of unfinished lines, then close."""
        for stream, rest in self.partial.items():
            if rest:
                self.feed(stream, b"", final=True)
        self.close()

    def close(self) -> None:
        super().close()
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None


def fresh_stdio(enc: str, unbuffered: bool) -> tuple:
    """New sys.stdin/stdout/stderr on fds 0-2, as a fresh interpreter's with these fds."""
    stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=enc)
    stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                              encoding=enc, errors="strict", write_through=unbuffered)
    stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                              encoding=enc, errors="backslashreplace", line_buffering=True,
                              write_through=True)
    return stdin, stdout, stderr


def die() -> None:
    """The controller is gone: so are we, and whatever the running step started."""
    for _ in range(3):
        for pid in proctree.live_descendants(os.getpid()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    os.kill(os.getpid(), signal.SIGKILL)
