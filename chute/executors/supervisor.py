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

The step-directory files are read back by :mod:`chute.executors.local`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from chute.executors import proctree, sandbox
from chute.executors.base import CANCELLED, ERROR, FAILED, SUCCEEDED, TIMEOUT, StepResult
from chute.executors.logsink import LogSink

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
LEFTOVER_DRAIN = 2.0  # seconds to wait for pipe EOF once the step's processes are gone

LAUNCH, STATUS, PIDFILE, STEPFILE, CANCELFILE = (
    "launch.json",
    "status.json",
    "supervisor.pid",
    "step.pid",
    "cancel.json",
)


# ---------------------------------------------------------------- step-directory files


def write_json_atomic(path: Path, data: dict, *, sync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically: temp file, rename, then fsync.

    Readers never see a partial file (the rename is atomic), whatever process dies when.
    The fsync (if ``sync``) comes *after* the rename on purpose: it costs 1-15 ms on an
    ordinary disk and the result should be visible at once. Durability: a killed process
    loses nothing (the page cache is the kernel's, so the renamed file is there for the
    next reader); only a power cut or kernel crash can leave an empty or missing file,
    which readers treat as absent (for status.json: "supervisor lost", so the engine's
    retry policy decides).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
        os.replace(tmp, path)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it does not exist (or is not JSON)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def result_to_json(result: StepResult) -> dict:
    """Plain-JSON form of a StepResult (status.json). Shallow (the outputs dict is shared):
    ``dataclasses.asdict`` deep-copies, which costs more than the rest of writing it."""
    return {f: getattr(result, f) for f in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(StepResult.__dataclass_fields__)


def result_from_json(data: dict) -> StepResult:
    """Inverse of :func:`result_to_json`, ignoring unknown keys (newer writers)."""
    known = StepResult.__dataclass_fields__
    return StepResult(**{k: v for k, v in data.items() if k in known})


def resolve_argv(argv: list[str]) -> list[str]:
    """Map ``python``/``python3`` to the running interpreter (images call it by that name)."""
    if argv and argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return list(argv)


# ---------------------------------------------------------------- the supervisor


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
        if (self.step_dir / CANCELFILE).exists():  # cancelled before we were even signalled
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
        data["usage"] = _usage()  # not part of StepResult: for benchmarks and the curious
        # not fsynced: what a killed controller (or supervisor) leaves behind is in the page
        # cache, which the next controller reads; only a power cut or kernel crash can lose
        # it, and then the step ends as "supervisor lost" and its retry policy decides, as
        # it would for the store's own last commits (SQLite WAL with synchronous=NORMAL).
        # An fsync here cost 1-10 ms per step, more than all the rest of the supervision.
        write_json_atomic(self.step_dir / STATUS, data, sync=False)
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
        argv = resolve_argv(list(spec["argv"]))
        if spec.get("script_source") is not None:
            script = self.step_dir / "script"
            _write_file(script, spec["script_source"].encode(), 0o755)  # as Argo's: `command:
            argv.append(str(script))  # [sh, -c]` runs the file itself
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

        log_path = Path(spec["log_path"])
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:  # its directory is there, but for the first step of a workflow run bare
            log_fd = os.open(log_path, flags, 0o644)
        except FileNotFoundError:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_fd = os.open(log_path, flags, 0o644)
        sink = LogSink(log_fd, self.step_dir / "stdout", list(spec.get("secret_values") or []))
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
        """Start the step in a new session; returns an exec error message, or None.

        Without a private view this is ``posix_spawn`` (vfork + exec inside libc: no copy
        of the supervisor's memory and little Python); the step's working directory is
        set by changing the supervisor's own (it uses absolute paths only). A private view
        needs code in the forked child, so it goes through ``Popen(preexec_fn=...)``.
        """
        if plan.enabled:
            try:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=self.devnull,
                    stdout=out_w,
                    stderr=err_w,
                    env=env,
                    start_new_session=True,
                    close_fds=True,
                    # the supervisor is single-threaded, so preexec_fn is safe here
                    preexec_fn=functools.partial(_enter_private_view, plan, working_dir,  # noqa: PLW1509
                                                 self.ignored),
                )
            except subprocess.SubprocessError as e:  # the preexec_fn failed
                return f"could not start step: {e}"
            except OSError as e:
                return _exec_error(argv[0], e)
            self.step_pid = self.proc.pid
            try:  # hold the step's mount namespace: its teardown (slow: RCU grace periods)
                # then happens after the result is written, not in the step's exit
                self.ns_fd = os.open(f"/proc/{self.step_pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                pass
        else:
            try:
                # relative to the step directory, never to where the last step left us
                cwd = os.path.join(self.step_dir, working_dir or plan.default_cwd)
                try:
                    os.chdir(cwd)
                except FileNotFoundError:
                    os.makedirs(cwd, exist_ok=True)
                    os.chdir(cwd)
            except OSError as e:
                return f"working directory {working_dir}: {e.strerror or e}"
            path = argv[0]
            if "/" not in path:
                path = shutil.which(path, path=env.get("PATH", os.defpath)) or ""
                if not path:
                    return _exec_error(argv[0], FileNotFoundError())
            try:
                self.step_pid = os.posix_spawn(
                    path,
                    argv,
                    env,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                        (os.POSIX_SPAWN_DUP2, out_w, 1),
                        (os.POSIX_SPAWN_DUP2, err_w, 2),
                    ],
                    setsid=True,
                    setsigdef=self.ignored,
                )
            except OSError as e:
                return _exec_error(argv[0], e)
        _write_small(
            self.step_dir / STEPFILE,
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


_last_usage = [0.0, 0.0, 0, 0]


def _usage() -> dict:
    """CPU seconds (and page faults) this supervisor and the step's processes used for this
    step (a process may run several steps one after another); descendants count once
    reaped, which every one of them is by now. ``step_max_rss_kb`` is the largest of any
    step so far. Faults say where a step's cost goes even on a loaded machine (most of a
    no-op step is copy-on-write faults after the fork)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    now = [me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime,
           me.ru_minflt, kids.ru_minflt]
    used = [n - last for n, last in zip(now, _last_usage, strict=True)]
    _last_usage[:] = now
    return {"supervisor_cpu": round(used[0], 6), "step_cpu": round(used[1], 6),
            "step_max_rss_kb": kids.ru_maxrss,
            "supervisor_faults": used[2], "step_faults": used[3]}


def claim(step_dir: Path, data: dict) -> bool:
    """Create ``step_dir/supervisor.pid`` with ``data`` unless it exists; whether we did."""
    try:
        fd = os.open(step_dir / PIDFILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)
    return True


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Create (or truncate) ``path`` with ``data`` and exactly ``mode`` (umask aside)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _write_small(path: Path, data: dict) -> None:
    """Write a small JSON file in one ``write`` (readers treat bad JSON as absent)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)


def _exec_error(argv0: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f'exec: "{argv0}": executable file not found in $PATH'
    if isinstance(e, PermissionError):
        return f'exec: "{argv0}": permission denied'
    return f'exec: "{argv0}": {e.strerror or e}'


def _enter_private_view(plan: sandbox.Plan, working_dir: str | None, ignored=()) -> None:
    """preexec_fn of a sandboxed step: default signals, mount namespace, chroot, then the
    working dir."""
    for s in ignored:
        signal.signal(s, signal.SIG_DFL)
    plan.enter()
    if working_dir:
        os.makedirs(working_dir, exist_ok=True)
    os.chdir(working_dir or plan.default_cwd)


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
