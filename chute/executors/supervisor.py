"""The per-attempt supervisor: runs one step, streams its logs, writes how it ended.

The supervisor is forked (by :mod:`chute.executors.forkserver`) into its own session so
that it outlives the controller. It

1. becomes a child subreaper, so everything the step spawns stays its descendant;
2. starts the step in a new session and process group (and, when the step has private
   paths, in a private mount namespace: :mod:`chute.executors.sandbox`);
3. copies stdout and stderr line by line to ``log_path`` as
   ``<RFC 3339 UTC> <stdout|stderr> <text>``, each batch of complete lines written with
   one ``write`` as soon as it is read, so nothing is held back in user space;
4. enforces the deadline and answers cancellation (SIGTERM to the supervisor): SIGTERM to
   the whole step, SIGKILL after the grace period, until nothing of it is alive;
5. when the step's main process exits, kills whatever it left behind (as a container's
   end does), collects output paths and writes ``status.json`` atomically.

The step-directory files are read back by :mod:`chute.executors.local`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from chute.executors import proctree, sandbox
from chute.executors.base import CANCELLED, ERROR, FAILED, SUCCEEDED, TIMEOUT, StepResult

DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
RESULT_LIMIT = 256 * 1024  # Argo keeps only the last 256 kB of stdout as outputs.result
LINE_LIMIT = 1 << 20  # a "line" longer than this is cut into pieces rather than buffered
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
    """Write ``data`` as JSON to ``path`` via a temp file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None if it does not exist (or is not JSON)."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None


def result_to_json(result: StepResult) -> dict:
    """Plain-JSON form of a StepResult (status.json)."""
    return asdict(result)


def result_from_json(data: dict) -> StepResult:
    """Inverse of :func:`result_to_json`, ignoring unknown keys (newer writers)."""
    known = StepResult.__dataclass_fields__
    return StepResult(**{k: v for k, v in data.items() if k in known})


def rfc3339(ts: float) -> bytes:
    """``2026-01-02T03:04:05.123456Z`` for epoch seconds ``ts``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


def resolve_argv(argv: list[str]) -> list[str]:
    """Map ``python``/``python3`` to the running interpreter (images call it by that name)."""
    if argv and argv[0] in ("python", "python3"):
        return [sys.executable, *argv[1:]]
    return list(argv)


# ---------------------------------------------------------------- log streaming


class LogSink:
    """Turns the step's output into timestamped, masked log lines as it arrives."""

    def __init__(self, log_fd: int, stdout_fd: int, secrets: list[str]):
        self.log_fd = log_fd
        self.stdout_fd = stdout_fd
        # mask the longest secrets first so that one containing another is fully hidden;
        # a multi-line secret is masked line by line since logs are cut at newlines
        parts = {p for s in secrets if s for p in s.splitlines() if p.strip()}
        self.secrets = sorted((p.encode() for p in parts), key=len, reverse=True)
        self.partial = {b"stdout": b"", b"stderr": b""}

    def mask(self, data: bytes) -> bytes:
        for s in self.secrets:
            if s in data:
                data = data.replace(s, b"***")
        return data

    def feed(self, stream: bytes, data: bytes, *, final: bool = False) -> None:
        """Add bytes read from ``stream``; write every complete line at once."""
        buf = self.partial[stream] + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        if final and rest:
            lines.append(rest)
            rest = b""
        while len(rest) > LINE_LIMIT:
            lines.append(rest[:LINE_LIMIT])
            rest = rest[LINE_LIMIT:]
        self.partial[stream] = rest
        if not lines:
            return
        prefix = rfc3339(time.time()) + b" " + stream + b" "
        masked = [self.mask(line) for line in lines]
        _write_all(self.log_fd, b"".join(prefix + m + b"\n" for m in masked))
        if stream == b"stdout":
            _write_all(self.stdout_fd, b"".join(m + b"\n" for m in masked))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


# ---------------------------------------------------------------- the supervisor


class Supervisor:
    """Runs one attempt described by ``step_dir/launch.json``."""

    def __init__(self, step_dir: Path, base_env: dict[str, str] | None = None):
        self.step_dir = Path(step_dir)
        self.spec = read_json(self.step_dir / LAUNCH) or {}
        self.base_env = dict(os.environ if base_env is None else base_env)
        self.step_pid: int | None = None
        self.step_status: int | None = None
        self.stop_outcome: str | None = None  # TIMEOUT or CANCELLED once we start killing
        self.stop_message = ""
        self.kill_at: float | None = None
        self.started_at: float | None = None

    # -- lifecycle

    def run(self) -> int:
        """Run the step to its end and write status.json; returns 0 unless it could not."""
        try:
            result = self._run()
        except Exception as e:  # noqa: BLE001 - anything unexpected still ends as an ERROR
            self._cleanup_after_error()
            result = StepResult(
                ERROR,
                None,
                f"supervisor failed: {type(e).__name__}: {e}",
                started_at=self.started_at,
                finished_at=time.time(),
            )
        write_json_atomic(self.step_dir / STATUS, result_to_json(result))
        return 0

    def _cleanup_after_error(self) -> None:
        if self.step_pid:
            proctree.kill_step(self.step_pid, root=os.getpid(), reap=self._reap)

    def _run(self) -> StepResult:
        spec = self.spec
        if not spec:
            return StepResult(
                ERROR, None, "launch.json missing or unreadable", finished_at=time.time()
            )
        proctree.become_subreaper()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake the poll loop
        for s in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)

        argv = resolve_argv(list(spec["argv"]))
        if spec.get("script_source") is not None:
            script = self.step_dir / "script"
            script.write_text(spec["script_source"])
            argv.append(str(script))
        if not argv:
            return StepResult(ERROR, None, "empty command", finished_at=time.time())
        env = dict(self.base_env)
        env.update(spec.get("env") or {})
        plan = sandbox.plan_for(spec, env, argv)
        try:
            plan.prepare()
        except OSError as e:
            return StepResult(
                ERROR, None, f"could not prepare step files: {e}", finished_at=time.time()
            )

        log_path = Path(spec["log_path"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        stdout_fd = os.open(
            self.step_dir / "stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
        )
        sink = LogSink(log_fd, stdout_fd, list(spec.get("secret_values") or []))
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        exec_r, exec_w = os.pipe2(os.O_CLOEXEC)

        self.started_at = time.time()
        pid = os.fork()
        if pid == 0:  # the step: never returns
            _exec_step(argv, env, spec.get("working_dir"), plan, out_w, err_w, exec_w)
        self.step_pid = pid
        for fd in (out_w, err_w, exec_w):
            os.close(fd)
        write_json_atomic(
            self.step_dir / STEPFILE,
            {"pid": pid, "create_time": proctree.create_time(pid)},
            sync=False,
        )
        exec_error = _read_all(exec_r)
        os.close(exec_r)
        if exec_error:
            self._reap_until_step_gone()
            sink.feed(b"stderr", exec_error, final=True)
            return StepResult(
                ERROR,
                None,
                exec_error.decode(errors="replace"),
                started_at=self.started_at,
                finished_at=time.time(),
            )

        self._loop(
            sink,
            {out_r: b"stdout", err_r: b"stderr"},
            wake_r,
            spec.get("deadline"),
            float(spec.get("grace_seconds") or 0.0),
        )
        for fd in (out_r, err_r, log_fd, stdout_fd):
            os.close(fd)
        return self._result(plan, sink)

    # -- the event loop

    def _on_term(self, *_):
        if self.stop_outcome is None:
            reason = (read_json(self.step_dir / CANCELFILE) or {}).get("reason")
            self._begin_stop(CANCELLED, reason or "cancelled")

    def _begin_stop(self, outcome: str, message: str) -> None:
        self.stop_outcome, self.stop_message = outcome, message
        grace = float(self.spec.get("grace_seconds") or 0.0)
        if self.step_pid:
            proctree.signal_step(self.step_pid, signal.SIGTERM, root=os.getpid())
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

    def _reap_until_step_gone(self) -> None:
        while self.step_status is None:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            if pid == self.step_pid:
                self.step_status = status

    def _loop(
        self,
        sink: LogSink,
        streams: dict[int, bytes],
        wake_r: int,
        deadline: float | None,
        grace: float,
    ) -> None:
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
                proctree.kill_step(self.step_pid, root=os.getpid(), reap=self._reap)
                drain_until = now + LEFTOVER_DRAIN
            if drain_until is not None and (not open_fds or now > drain_until):
                break
            if self.stop_outcome is None and deadline is not None and now >= deadline:
                self._begin_stop(TIMEOUT, DEADLINE_MESSAGE)
            if self.kill_at is not None and now >= self.kill_at and self.step_status is None:
                proctree.kill_step(self.step_pid, root=os.getpid(), reap=self._reap)
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
            if not open_fds and self.step_status is None:
                # both pipes closed before the main process exited: wait for it
                poller.unregister(wake_r)
                poller.register(wake_r, select.POLLIN)
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
            result=self._stdout_result(sink),
            outputs=outputs,
        )

    def _stdout_result(self, sink: LogSink) -> str:
        path = self.step_dir / "stdout"
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size > RESULT_LIMIT + 1:
                f.seek(size - RESULT_LIMIT - 1)
            data = f.read()
        if data.endswith(b"\n"):
            data = data[:-1]  # Argo trims a single trailing newline
        return data[-RESULT_LIMIT:].decode(errors="replace")


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def _exec_step(argv, env, working_dir, plan, out_w, err_w, exec_w) -> None:
    """In the forked child: new session, private view, redirections, then exec."""
    try:
        os.setsid()
        for s in (signal.SIGTERM, signal.SIGCHLD, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        plan.enter()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        if working_dir:
            os.makedirs(working_dir, exist_ok=True)
            os.chdir(working_dir)
        else:
            os.chdir(plan.default_cwd)
        try:
            os.execvpe(argv[0], argv, env)
        except FileNotFoundError:
            msg = f'exec: "{argv[0]}": executable file not found in $PATH'
        except PermissionError:
            msg = f'exec: "{argv[0]}": permission denied'
        except OSError as e:
            msg = f'exec: "{argv[0]}": {e.strerror or e}'
        os.write(exec_w, msg.encode())
    except BaseException as e:  # noqa: BLE001 - report anything to the supervisor
        try:
            os.write(exec_w, f"could not start step: {type(e).__name__}: {e}".encode())
        except OSError:
            pass
    os._exit(127)


def supervise(step_dir: str | Path, base_env: dict[str, str] | None = None) -> int:
    """Entry point in the forked supervisor process: detach stdio, run, return exit code."""
    step_dir = Path(step_dir)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:  # the supervisor's own stderr (tracebacks) goes next to the attempt
        err = os.open(step_dir / "supervisor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(err, 2)
        os.close(err)
    except OSError:
        os.dup2(null, 2)
    os.close(null)
    try:
        return Supervisor(step_dir, base_env).run()
    except BaseException:  # noqa: BLE001 - last resort, the status is already attempted
        import traceback

        traceback.print_exc()
        return 1


if __name__ == "__main__":  # python -m chute.executors.supervisor STEP_DIR (debugging aid)
    if len(sys.argv) != 2:
        print("usage: python -m chute.executors.supervisor STEP_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(Supervisor(Path(sys.argv[1])).run())
