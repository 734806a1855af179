"""The per-attempt supervisor: runs one step, streams its logs, writes how it ended.

The supervisor is forked (by :mod:`chute.executors.forkserver`) into its own session so
that it outlives the controller. It

1. becomes a child subreaper, so everything the step spawns stays its descendant;
2. starts the step in a new session and process group (and, when the step has private
   paths, in a private mount namespace: :mod:`chute.executors.sandbox`);
3. copies stdout and stderr line by line (:mod:`chute.executors.logsink`) to ``log_path`` as
   ``<RFC 3339 UTC> <stdout|stderr> <text>``, each batch of complete lines written with
   one ``write`` as soon as it is read, so nothing is held back in user space;
4. enforces the deadline and answers cancellation (``CANCEL_SIGNAL`` after ``cancel.json``
   is written, or SIGTERM): SIGTERM to the whole step, SIGKILL after the grace period,
   until nothing of it is alive;
5. when the step's main process exits, kills whatever it left behind (as a container's
   end does), collects output paths and writes ``status.json`` atomically.

How the step's process is started is :mod:`chute.executors.spawn`'s; the step-directory
files (``supervisor.pid``, ``step.pid``, ``status.json``) are written with
:mod:`chute.executors.stepfiles` and read back by :mod:`chute.executors.local`.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from chute.executors import proctree, sandbox, spawn
from chute.executors.base import CANCELLED, ERROR, FAILED, SUCCEEDED, TIMEOUT, StepResult
from chute.executors.logsink import LogSink
from chute.executors.stepfiles import (
    CANCELFILE,
    LAUNCH,
    STATUS,
    STEPFILE,
    claim,
    read_json,
    result_to_json,
    usage,
    write_json_atomic,
    write_small,
)

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
LEFTOVER_DRAIN = 2.0  # seconds to wait for pipe EOF once the step's processes are gone
CANCEL_SIGNAL = signal.SIGUSR1  # "read your cancel.json"; SIGTERM means "terminate"
IGNORED = (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE)  # by a supervisor


class Supervisor:
    """Runs step attempts, one at a time, each described by ``step_dir/launch.json``.

    Construction prepares the process (subreaper, signal handlers); a spare supervisor
    does that while it waits for a step, off the launch's critical path. :meth:`run`
    then runs one step; the fork server may hand the same process further steps.

    Signals: ``CANCEL_SIGNAL`` (SIGUSR1) cancels the running step if its directory holds
    ``cancel.json`` (so a late signal meant for an earlier step is ignored); it must be
    blocked outside :meth:`run`, which unblocks it once it knows its step, so an early
    cancel is held, not lost. SIGTERM cancels the running step and retires the process.
    """

    def __init__(self) -> None:
        self.subreaper = proctree.become_subreaper()
        self.wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(CANCEL_SIGNAL, self._on_cancel)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the poll loop
        for s in IGNORED:
            signal.signal(s, signal.SIG_IGN)
        # exec passes ignoring on: a process step gets these back to default, so that it
        # starts as in a container (e.g. `yes | head` ends by SIGPIPE, not by an error);
        # ours, Python's own (SIGPIPE, SIGXFSZ) and any the controller inherited
        self.ignored = tuple(s for s in signal.valid_signals()
                             if signal.getsignal(s) == signal.SIG_IGN)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        me = os.getpid()
        self.me = {"pid": me, "create_time": proctree.create_time(me)}  # for supervisor.pid
        self.active = False  # a step is being run
        self.retire = False  # exit after this step (SIGTERM), do not take another
        # called as soon as a step's status.json is written (the fork server's worker
        # tells the controller); must not raise
        self.on_status: Callable[[Path], None] | None = None
        self._reset(Path("."))

    def _reset(self, step_dir: Path) -> None:
        self.step_dir = step_dir
        # the same as a string: the files of a step are named by joining to it, not with
        # pathlib (each Path made costs microseconds and, after a fork, page faults)
        self.sd = str(step_dir)
        self.spec: dict = {}
        self.step_pid: int | None = None
        self.step_status: int | None = None
        self.stop_outcome: str | None = None  # TIMEOUT or CANCELLED once we start killing
        self.stop_message = ""
        self.kill_at: float | None = None
        self.started_at: float | None = None
        self.proc: subprocess.Popen | None = None
        self.plan: sandbox.Plan | None = None
        self.ns_fd: int | None = None

    # -- lifecycle

    def run(self, step_dir: str | Path, base_env: dict[str, str] | None = None,
            spec: dict | None = None) -> int:
        """Run one step to its end and write its status.json; 0 if that was written.
        ``spec`` is the content of its launch.json, if the caller has it already."""
        self._reset(Path(step_dir).absolute())
        # before anything else, and exclusively: "supervisor.pid exists" means "the step
        # may have started", and only the one supervisor that created it runs the step (a
        # late duplicate request, or a controller that gave up waiting, find it taken)
        if not claim(self.step_dir, self.me):
            return 0
        self.spec = spec if spec is not None else read_json(self.step_dir / LAUNCH) or {}
        self.active = True
        _drain(self.wake_r)
        # a cancel that came meanwhile is delivered now; the step must not inherit the mask
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {CANCEL_SIGNAL})
        if os.path.exists(f"{self.sd}/{CANCELFILE}"):  # cancelled before we were signalled
            self._on_cancel()
        try:
            result = self._run(dict(os.environ if base_env is None else base_env))
        except Exception as e:  # noqa: BLE001 - anything unexpected still ends as an ERROR
            _log_traceback(self.step_dir)
            self._cleanup_after_error()
            result = StepResult(
                ERROR,
                None,
                f"supervisor failed: {type(e).__name__}: {e}",
                started_at=self.started_at,
                finished_at=time.time(),
            )
        # from here a cancel signal is for a later step (or too late): hold it
        signal.pthread_sigmask(signal.SIG_BLOCK, {CANCEL_SIGNAL})
        # nothing recorded may carry a secret: the message can quote the command or env
        secrets = self.spec.get("secret_values")
        if secrets:
            masker = LogSink(-1, self.step_dir / "stdout", list(secrets))
            result = dataclasses.replace(
                result,
                message=masker.mask(result.message.encode()).decode(errors="replace"),
                result=None if result.result is None
                else masker.mask(result.result.encode()).decode(),
            )
        data = result_to_json(result)
        data["usage"] = usage()  # not part of StepResult: for benchmarks and the curious
        # not fsynced: what a killed controller (or supervisor) leaves behind is in the page
        # cache, which the next controller reads; only a power cut or kernel crash can lose
        # it, and then the step ends as "supervisor lost" and its retry policy decides, as
        # it would for the store's own last commits (SQLite WAL with synchronous=NORMAL).
        # An fsync here cost 1-10 ms per step, more than all the rest of the supervision.
        write_json_atomic(f"{self.sd}/{STATUS}", data, sync=False)
        if self.on_status is not None:
            self.on_status(self.step_dir)  # tell the controller at once (never raises)
        self.active = False  # only now may SIGTERM end the process without a record
        if self.ns_fd is not None:
            os.close(self.ns_fd)
            self.ns_fd = None
        if self.plan is not None:
            self.plan.cleanup()  # after the result: removing files can be slow
        return 0

    def _cleanup_after_error(self) -> None:
        if self.step_pid:
            proctree.kill_step(
                self.step_pid, root=os.getpid(), scan=not self.subreaper, reap=self._reap
            )

    def _run(self, env: dict[str, str]) -> StepResult:
        spec = self.spec
        if not spec:
            return StepResult(
                ERROR, None, "launch.json missing or unreadable", finished_at=time.time()
            )
        argv = spawn.command(spec, self.step_dir)
        if not argv:
            return StepResult(ERROR, None, "empty command", finished_at=time.time())
        env.update(spec.get("env") or {})
        plan = self.plan = sandbox.plan_for(spec, env, argv)
        try:
            plan.prepare()
        except OSError as e:
            return StepResult(
                ERROR, None, f"could not prepare step files: {e}", finished_at=time.time()
            )

        log_path = spec["log_path"]
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:  # its directory is there, but for the first step of a workflow run bare
            log_fd = os.open(log_path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            log_fd = os.open(log_path, flags, 0o644)
        sink = LogSink(log_fd, f"{self.sd}/stdout", list(spec.get("secret_values") or []))
        if plan.private_tops and not plan.enabled:
            sink.feed(b"stderr", b"chute: no mount namespaces here; private paths are shared\n")
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)

        if self.stop_outcome is not None:  # cancelled before the step started: do not start it
            for fd in (out_r, out_w, err_r, err_w, log_fd):
                os.close(fd)
            return StepResult(self.stop_outcome, None, self.stop_message, finished_at=time.time())
        self.started_at = time.time()
        exec_error = self._spawn(argv, env, spec.get("working_dir"), plan, out_w, err_w)
        os.close(out_w)
        os.close(err_w)
        if exec_error:
            sink.feed(b"stderr", exec_error.encode() + b"\n")
            for fd in (out_r, err_r, log_fd):
                os.close(fd)
            sink.close()
            return StepResult(
                ERROR, None, exec_error, started_at=self.started_at, finished_at=time.time()
            )
        if self.stop_outcome is not None:  # cancelled while the step was being started
            proctree.signal_step(
                self.step_pid, signal.SIGTERM, root=os.getpid(), scan=not self.subreaper
            )

        self._loop(sink, {out_r: b"stdout", err_r: b"stderr"}, spec.get("deadline"))
        for fd in (out_r, err_r, log_fd):
            os.close(fd)
        sink.close()
        return self._result(plan, sink)

    def _spawn(self, argv, env, working_dir, plan, out_w, err_w) -> str | None:
        """Start the step in a new session (:mod:`chute.executors.spawn`) and write
        step.pid; returns an exec error message, or None. Warm supervisors override it."""
        try:
            if plan.enabled:
                self.proc = spawn.popen_private(argv, env, working_dir, plan, self.devnull,
                                                out_w, err_w, self.ignored)
                self.step_pid = self.proc.pid
                self.ns_fd = spawn.hold_mount_ns(self.step_pid)
            else:
                # relative to the step directory, never to where the last step left us
                cwd = os.path.join(self.step_dir, working_dir or plan.default_cwd)
                self.step_pid = spawn.posix_spawn_step(argv, env, cwd, working_dir,
                                                       self.devnull, out_w, err_w, self.ignored)
        except spawn.SpawnError as e:
            return str(e)
        write_small(
            f"{self.sd}/{STEPFILE}",
            {"pid": self.step_pid, "create_time": proctree.create_time(self.step_pid)},
        )
        return None

    # -- the event loop

    def _on_cancel(self, *_):
        if self.active and self.stop_outcome is None:
            cancel = read_json(self.step_dir / CANCELFILE)
            if cancel is not None:  # otherwise: a late signal meant for an earlier step
                self._begin_stop(CANCELLED, cancel.get("reason") or "cancelled")

    def _on_term(self, *_):
        self.retire = True
        if not self.active:
            os._exit(0)  # idle: nothing to record
        if self.stop_outcome is None:
            reason = (read_json(self.step_dir / CANCELFILE) or {}).get("reason")
            self._begin_stop(CANCELLED, reason or "supervisor terminated")

    def _begin_stop(self, outcome: str, message: str) -> None:
        self.stop_outcome, self.stop_message = outcome, message
        grace = float(self.spec.get("grace_seconds") or 0.0)
        if self.step_pid:
            proctree.signal_step(
                self.step_pid, signal.SIGTERM, root=os.getpid(), scan=not self.subreaper
            )
        self.kill_at = time.time() + max(grace, 0.0)

    def _reap(self) -> None:
        """Reap every exited child (re-parented orphans too), noting the step's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.step_pid:
                self.step_status = status
                if self.proc is not None:  # so that Popen never waits for it itself
                    self.proc.returncode = os.waitstatus_to_exitcode(status)

    def _loop(self, sink: LogSink, streams: dict[int, bytes], deadline: float | None) -> None:
        """Copy output to the log until the step's processes are gone and pipes closed."""
        wake_r = self.wake_r
        poller = select.poll()
        for fd in streams:
            poller.register(fd, select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        open_fds = set(streams)
        drain_until: float | None = None
        while True:
            self._reap()
            now = time.time()
            if self.step_status is not None and drain_until is None:
                # the main process ended: kill what it left behind, then drain the pipes
                proctree.kill_step(
                    self.step_pid, root=os.getpid(), scan=not self.subreaper, reap=self._reap
                )
                drain_until = now + LEFTOVER_DRAIN
            if drain_until is not None and (not open_fds or now > drain_until):
                break
            if self.stop_outcome is None and deadline is not None and now >= deadline:
                self._begin_stop(TIMEOUT, DEADLINE_MESSAGE)
            if self.kill_at is not None and now >= self.kill_at and self.step_status is None:
                proctree.kill_step(
                    self.step_pid, root=os.getpid(), scan=not self.subreaper, reap=self._reap
                )
                self.kill_at = None
            timeout = 1.0
            for t in (deadline if self.stop_outcome is None else None, self.kill_at, drain_until):
                if t is not None:
                    timeout = min(timeout, max(t - now, 0.0))
            try:
                events = poller.poll(timeout * 1000 + 1)
            except InterruptedError:
                continue
            for fd, _ in events:
                if fd == wake_r:
                    _drain(wake_r)
                    continue
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if data:
                    sink.feed(streams[fd], data)
                else:
                    sink.feed(streams[fd], b"", final=True)
                    poller.unregister(fd)
                    open_fds.discard(fd)
        for stream in streams.values():
            sink.feed(stream, b"", final=True)

    # -- the result

    def _result(self, plan: sandbox.Plan, sink: LogSink) -> StepResult:
        status = self.step_status
        code: int | None = None
        sig: int | None = None
        if status is not None:
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                code = 128 + sig
            else:
                code = os.waitstatus_to_exitcode(status)
        if self.stop_outcome is not None:
            outcome, message = self.stop_outcome, self.stop_message
        elif code == 0:
            outcome, message = SUCCEEDED, ""
        else:
            outcome, message = FAILED, f"Error (exit code {code})"
        outputs = plan.collect(self.spec.get("output_paths") or [])
        return StepResult(
            outcome,
            code,
            sink.mask(message.encode()).decode(errors="replace"),
            started_at=self.started_at,
            finished_at=time.time(),
            signal=sig,
            result=sink.result(),
            outputs=outputs,
        )


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _log_traceback(step_dir: Path) -> None:
    import traceback

    try:
        with open(step_dir / "supervisor.log", "a") as f:
            traceback.print_exc(file=f)
    except OSError:
        pass


def detach_stdio() -> None:
    """Point stdin/stdout/stderr at /dev/null: a supervisor has no terminal and no reader."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def run_logged(sup: Supervisor, step_dir: str | Path, base_env: dict[str, str] | None,
               spec: dict | None = None) -> int:
    """``sup.run(...)``; a crash of the supervisor itself leaves a traceback in
    ``step_dir/supervisor.log`` (the file exists only then: creating files costs)."""
    try:
        return sup.run(step_dir, base_env, spec)
    except BaseException:  # noqa: BLE001 - last resort: record why, for whoever looks
        _log_traceback(Path(step_dir))
        return 1
