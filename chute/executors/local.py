"""LocalExecutor: each step attempt runs as host processes under a detached supervisor.

``launch`` writes ``launch.json`` into the step directory and asks the fork server
(:mod:`chute.executors.forkserver`, started lazily, restarted if it died) to hand the
attempt to a supervisor process (:mod:`chute.executors.supervisor`). It does not wait for
the answer: launches are pipelined, and a reader thread notes each supervisor's pid as the
replies arrive. Everything else goes through files in the step directory, so any
controller — this one, or one started after this one was killed — can ``poll``,
``cancel`` or ``reattach``:

``launch.json``     the LaunchSpec (its age tells "still starting" from "never started")
``supervisor.pid``  pid and create time of the supervisor (written before the step starts)
``step.pid``        pid and create time of the step's first process (its session id)
``cancel.json``     why the attempt was cancelled (the supervisor reads it on CANCEL_SIGNAL
                    and when it starts)
``status.json``     the StepResult

The step's environment is the controller's environment at launch time, updated with
``LaunchSpec.env``.

Completion is pushed, not polled for: right after it renames ``status.json`` into place a
supervisor writes the step directory on the controller's notify pipe
(:class:`~chute.executors.completions.Completions`, inherited through the fork server),
and :meth:`LocalExecutor.finished` / :meth:`LocalExecutor.wait` hand those reports to the
controller, which then polls only the attempts that ended (and all of them now and then,
for supervisors that died without a word and attempts adopted from an earlier controller,
whose notify pipe is gone).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

from chute.errors import ExecutionError
from chute.executors import proctree
from chute.executors.base import CANCELLED, ERROR, LaunchSpec, StepHandle, StepResult
from chute.executors.completions import Completions
from chute.executors.forkserver import NOTIFY_ENV
from chute.executors.stepfiles import (
    CANCELFILE,
    LAUNCH,
    PIDFILE,
    STATUS,
    STEPFILE,
    claim,
    read_json,
    result_from_json,
    result_to_json,
    write_json_atomic,
)
from chute.executors.supervisor import CANCEL_SIGNAL

LOST_MESSAGE = "supervisor lost"
NEVER_STARTED = "supervisor never started"
STARTUP_WINDOW = 5.0  # seconds from launch.json to supervisor.pid, at the very most
NEVER_MARK = {"pid": 0, "never_started": True}  # supervisor.pid of a fenced step directory


class _ForkServer:
    """The controller's end of the fork-server pipes, with a thread reading the replies."""

    def __init__(self, python: str, on_reply, notify_fd: int):
        self.proc = subprocess.Popen(
            [python, "-m", "chute.executors.forkserver"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the controller must not reach it
            close_fds=True,
            pass_fds=(notify_fd,),
            env=_forkserver_env(notify_fd),
        )
        self._reader = threading.Thread(
            target=self._read, args=(on_reply,), name="chute-forkserver-replies", daemon=True
        )
        self._reader.start()

    def _read(self, on_reply) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            try:
                on_reply(json.loads(line))
            except Exception:  # noqa: BLE001, S112 - a bad reply must not stop the reader
                continue

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, step_dir: Path, env: bytes | dict, spec: bytes | None = None) -> None:
        """Send a launch request. ``env`` and ``spec`` (launch.json's bytes, which the
        supervisor then need not read back) may be JSON already."""
        assert self.proc.stdin
        if isinstance(env, dict):
            env = json.dumps(env).encode()
        self.proc.stdin.write(b'{"step_dir": ' + json.dumps(str(step_dir)).encode()
                              + b', "env": ' + env
                              + (b', "spec": ' + spec if spec is not None else b"") + b"}\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()  # EOF: the fork server exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5)


def _forkserver_env(notify_fd: int) -> dict[str, str]:
    """The controller's environment, with chute importable by the fork server."""
    env = dict(os.environ)
    env[NOTIFY_ENV] = str(notify_fd)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


_env_cache: list = [None, b"{}"]  # os.environ as last seen, and its JSON


def _environ_json() -> bytes:
    """The controller's environment as JSON, encoded again only when it changed (it is
    sent with every launch, and is most of the request)."""
    # a C-level copy of the private mapping os.environ keeps: no public way is cheap
    # (dict(os.environ) or os.environ.copy() decode every variable: ~50 us a launch with
    # 35 variables, against 0.6 us; this runs on the controller's thread for every step)
    data = dict(os.environ._data)  # type: ignore[attr-defined]
    if data != _env_cache[0]:
        _env_cache[:] = [data, json.dumps(dict(os.environ)).encode()]
    return _env_cache[1]


_source_json: dict[str, bytes] = {}  # script sources as JSON strings, by source


def _spec_json(spec: LaunchSpec) -> bytes:
    """launch.json's bytes. The script source, most of it and the same for every step of
    a template, is JSON-encoded once (~60 us for an SDK step's, on the controller)."""
    data = spec.to_json()
    source = data.pop("script_source")
    if source is None:
        return json.dumps({**data, "script_source": None}).encode()
    encoded = _source_json.get(source)
    if encoded is None:
        encoded = json.dumps(source).encode()
        if len(source) <= 1 << 16:  # a few SDK-sized sources, not any size
            if len(_source_json) >= 64:
                _source_json.clear()
            _source_json[source] = encoded
    return json.dumps(data).encode()[:-1] + b', "script_source": ' + encoded + b"}"


def _wait_for(path: Path, seconds: float) -> dict | None:
    end = time.monotonic() + seconds
    while True:
        data = read_json(path)
        if data is not None or time.monotonic() > end:
            return data
        time.sleep(0.01)


def _age(path: Path) -> float | None:
    """Seconds since ``path`` was written, or None if it does not exist."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None


class LocalExecutor:
    """Runs step attempts as host processes, each under a supervisor that outlives us."""

    def __init__(self, python: str | None = None, completions: Completions | None = None):
        self.python = python or sys.executable
        self._server: _ForkServer | None = None
        self._lock = threading.Lock()
        self._pids: dict[Path, dict] = {}  # step_dir -> supervisor pid of running attempts
        self._own_completions = completions is None
        self.completions = completions or Completions()

    # -- lifecycle of the fork server

    def start(self) -> LocalExecutor:
        """Start the fork server now (otherwise the first launch does)."""
        with self._lock:
            self._ensure_server()
        return self

    def close(self) -> None:
        """Stop the fork server. Running supervisors and steps are not affected."""
        with self._lock:
            if self._server is not None:
                self._server.close()
                self._server = None
            if self._own_completions:
                self.completions.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_server(self) -> _ForkServer:
        if self._server is None or not self._server.alive():
            if self._server is not None:
                self._server.close()
            self._server = _ForkServer(self.python, self._on_reply, self.completions.write_fd())
        return self._server

    def _on_reply(self, reply: dict) -> None:
        """A fork-server reply (reader thread): note the pid, or record the failure."""
        step_dir = Path(reply.get("step_dir") or "")
        if not reply.get("step_dir"):
            return
        if "pid" in reply:
            self._pids.setdefault(
                step_dir, {"pid": reply["pid"], "create_time": reply.get("create_time")}
            )
        elif not (step_dir / PIDFILE).exists() and not (step_dir / STATUS).exists():
            message = f"could not start supervisor: {reply.get('error')}"
            write_json_atomic(
                step_dir / STATUS,
                result_to_json(StepResult(ERROR, None, message, finished_at=time.time())),
            )
            self.completions.add(step_dir)

    # -- the Executor protocol

    def finished(self) -> set[Path]:
        """Step directories of attempts reported ended since the last call (a hint: only
        :meth:`poll` says how, and attempts whose supervisor died unreported are not here)."""
        return self.completions.take()

    def wait(self, timeout: float) -> None:
        """Block until an attempt is reported ended, or for ``timeout`` seconds."""
        self.completions.wait(timeout)

    def launch(self, spec: LaunchSpec) -> StepHandle:
        """Write launch.json and hand the attempt to a supervisor; returns at once.

        The attempt's fate then shows in :meth:`poll` (an attempt whose supervisor never
        came up ends as ERROR "supervisor never started" after ``STARTUP_WINDOW``).
        """
        # the supervisor runs elsewhere (and changes directory): absolute paths only
        step_dir = Path(spec.step_dir).absolute()
        if step_dir != spec.step_dir or not Path(spec.log_path).is_absolute():
            spec = dataclasses.replace(
                spec, step_dir=step_dir, log_path=Path(spec.log_path).absolute()
            )
        try:
            os.mkdir(step_dir)  # new (the usual case): nothing was launched there
        except FileNotFoundError:
            step_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            if (step_dir / STATUS).exists():
                raise ExecutionError(f"{step_dir}: this attempt was already launched") from None
            if (step_dir / PIDFILE).exists():
                if not (read_json(step_dir / PIDFILE) or {}).get("never_started"):
                    raise ExecutionError(
                        f"{step_dir}: this attempt was already launched") from None
                # reattach() found it never started and fenced it: launch it again now
                (step_dir / PIDFILE).unlink(missing_ok=True)
        self._pids.pop(step_dir, None)
        # written in place: a torn launch.json (controller killed right here) is never
        # read, since no request was sent and reattach then answers "never started"
        # owner-only: it holds the step's environment and secret values while it runs
        data = _spec_json(spec)
        fd = os.open(step_dir / LAUNCH, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        # the request carries the spec too: the supervisor need not read launch.json back
        env = _environ_json()
        with self._lock:
            try:
                self._ensure_server().send(step_dir, env, data)
            except (BrokenPipeError, ConnectionError, ValueError):
                # the fork server died: start another and ask again, unless the request
                # got through before it died (never launch twice)
                self._server = None
                if _wait_for(step_dir / PIDFILE, 0.25) is None:
                    try:
                        self._ensure_server().send(step_dir, env, data)
                    except (BrokenPipeError, ConnectionError, ValueError):
                        raise ExecutionError(f"{step_dir}: the fork server keeps dying") from None
        return StepHandle(step_dir=step_dir)

    def poll(self, handle: StepHandle) -> StepResult | None:
        """The result if the attempt ended; None while it is starting or its supervisor lives."""
        step_dir = Path(handle.step_dir)
        data = read_json(step_dir / STATUS)
        if data is not None:
            self._pids.pop(step_dir, None)
            return result_from_json(data)
        sup = self._supervisor(step_dir, handle)
        if sup == "starting":
            return None  # handed to the fork server, not started yet
        if sup is None or sup.get("never_started"):
            return self._lost(step_dir, NEVER_STARTED)
        self._pids[step_dir] = sup  # fixed for the attempt: read it once
        if proctree.same_process(sup["pid"], sup.get("create_time")):
            return None
        # it may have written the status just before it exited
        self._pids.pop(step_dir, None)
        data = read_json(step_dir / STATUS)
        if data is not None:
            return result_from_json(data)
        return self._lost(step_dir, LOST_MESSAGE)

    def _supervisor(self, step_dir: Path, handle: StepHandle | None = None):
        """The attempt's supervisor.pid data; ``"starting"`` while it may still come; None
        once it cannot any more (this call then fences the step directory, so that a late
        supervisor finds it taken and does not run the step)."""
        sup = self._pids.get(step_dir) or read_json(step_dir / PIDFILE)
        if sup is None and handle is not None and handle.pid is not None:
            sup = {"pid": handle.pid, "create_time": None}
        if sup is not None:
            return sup
        pid_age = _age(step_dir / PIDFILE)
        if pid_age is not None:  # there, but not filled in yet (or never will be)
            return "starting" if pid_age < STARTUP_WINDOW else {"pid": 0, "create_time": None}
        age = _age(step_dir / LAUNCH)
        if age is not None and age < STARTUP_WINDOW:
            return "starting"
        if not step_dir.is_dir():
            return None  # nothing was ever launched there
        if claim(step_dir, NEVER_MARK):
            return None
        return read_json(step_dir / PIDFILE) or "starting"  # a supervisor won the race

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """Ask the supervisor to stop the step (TERM, KILL after the grace period).

        Returns at once; the CANCELLED result arrives through :meth:`poll`. A supervisor
        that has not started yet finds ``cancel.json`` when it does and starts nothing. If
        the supervisor is gone, the step's processes are killed here and the result written.
        """
        step_dir = Path(handle.step_dir)
        if (step_dir / STATUS).exists() or not step_dir.is_dir():
            return
        write_json_atomic(step_dir / CANCELFILE, {"reason": reason or "cancelled"}, sync=False)
        sup = self._supervisor(step_dir, handle)
        if sup == "starting":
            return  # the supervisor reads cancel.json first thing
        if sup is not None and proctree.same_process(sup.get("pid"), sup.get("create_time")):
            try:
                os.kill(sup["pid"], CANCEL_SIGNAL)
                return
            except ProcessLookupError:
                pass
        if not (step_dir / STATUS).exists():
            self._kill_orphaned_step(step_dir)
            write_json_atomic(
                step_dir / STATUS,
                result_to_json(
                    StepResult(CANCELLED, None, reason or "cancelled", finished_at=time.time())
                ),
            )
            self.completions.add(step_dir)

    def reattach(self, step_dir: Path) -> StepHandle | None:
        """A handle for an attempt an earlier controller launched; None if it never started."""
        step_dir = Path(step_dir)
        if (step_dir / STATUS).exists():
            return StepHandle(step_dir=step_dir)
        if not (step_dir / LAUNCH).exists():
            return None
        # a supervisor writes supervisor.pid before it starts the step, within milliseconds
        # of launch.json; only after STARTUP_WINDOW is "no pid file" proof that the step
        # never started, and then the directory is fenced so that it never will
        sup = self._supervisor(step_dir)
        while sup == "starting":
            time.sleep(0.01)
            sup = self._supervisor(step_dir)
        if sup is None or sup.get("never_started"):
            return StepHandle(step_dir) if (step_dir / STATUS).exists() else None
        return StepHandle(step_dir=step_dir, pid=sup.get("pid"))

    # -- lost supervisors

    def _lost(self, step_dir: Path, message: str) -> StepResult:
        """Record the end of an attempt whose supervisor died (or never came) without one."""
        self._kill_orphaned_step(step_dir)
        cancel = read_json(step_dir / CANCELFILE)
        if cancel is not None and message == NEVER_STARTED:
            result = StepResult(
                CANCELLED, None, cancel.get("reason") or "cancelled", finished_at=time.time()
            )
        else:
            result = StepResult(ERROR, None, message, finished_at=time.time())
        data = read_json(step_dir / STATUS)  # a racing writer wins
        if data is not None:
            return result_from_json(data)
        if step_dir.is_dir():
            write_json_atomic(step_dir / STATUS, result_to_json(result))
        return result

    @staticmethod
    def _kill_orphaned_step(step_dir: Path) -> None:
        """Kill what is left of a step whose supervisor is gone (by its session id)."""
        step = read_json(step_dir / STEPFILE)
        if not step or not step.get("pid"):
            return
        sid, started = int(step["pid"]), step.get("create_time")
        now = proctree.create_time(sid)
        if now is not None and started is not None and not proctree.same_start(now, started):
            return  # the pid now belongs to an unrelated process and session
        # with the leader gone, only the step's own processes can still carry its session id
        proctree.kill_step(sid, give_up=2.0)
