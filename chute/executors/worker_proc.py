"""The controller's end of reused workers' pipes: requests out, replies in, no thread.

A :class:`WorkerProc` is one ``python -m chute.executors.reused_worker`` process: a
request (:class:`Requests`) goes down its stdin, a reply comes back on its stdout, one
JSON line each way.
Its stdout is non-blocking and registered in a :class:`ReplyPipes` (an epoll set), whose
own fd the :class:`~chute.executors.completions.Completions` watches: the controller's thread
wakes when a worker wrote a line or ended, and reads it there and then. What a line means
is the pool's business (:mod:`chute.executors.worker_pool`).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from chute.executors.base import ERROR, FAILED, SUCCEEDED, LaunchSpec, StepResult
from chute.executors.local import _environ_json
from chute.executors.logsink import LogSink

_decode = json.JSONDecoder().decode  # json.loads without its type checks, per reply


class WorkerProc:
    """One worker process: its pipes, and what the pool keeps about it."""

    def __init__(self, python: str, key: tuple[str, ...], env: dict[str, str]) -> None:
        self.key = key
        self.proc = subprocess.Popen(
            [python, "-m", "chute.executors.reused_worker", *key],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own group: killed as a whole, and no Ctrl-C
            close_fds=True, env=env,
        )
        self.pid = self.proc.pid
        self.fd = self.proc.stdin.fileno()  # type: ignore[union-attr]
        self.out = self.proc.stdout.fileno()  # type: ignore[union-attr]
        os.set_blocking(self.out, False)  # read when epoll says so, by whoever pumps
        self._buf = b""  # a reply's start, until its newline comes
        self.eof = False  # its stdout ended (it died, or exited)
        self.ready = threading.Event()  # set by its "ready" line, or its end
        self.info: dict = {}  # its "ready" line
        self.job: Any = None  # the pool's job it runs
        self.steps = 0
        self.sources: set[int] = set()
        self.env_sent: bytes | None = None
        self.tmp: str | None = None  # its private /tmp's directory: removed when it is gone
        self.gone = False  # retiring, killed or dead: never handed another step
        self.reaper: threading.Thread | None = None  # handles its end, once its stdout ends

    def write(self, data: bytes) -> bool:
        """Write a request (the pipe holds it whole: the worker reads as it is idle);
        False if the worker is gone (EPIPE)."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            return False
        return True

    def read(self) -> list[dict] | None:
        """The JSON objects of the whole lines it wrote since the last call, never
        blocking; None if there was nothing to read. After its last lines :attr:`eof`
        is set (then :meth:`close_stdout`, once no epoll set watches it)."""
        try:
            chunk = os.read(self.out, 65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            chunk = b""
        if not chunk:  # its end: a last line without its newline still counts
            lines, self._buf = [self._buf], b""
            self.eof = True
        elif not self._buf and chunk.find(b"\n") == len(chunk) - 1:  # one whole line: most
            lines = [chunk]
        else:
            *lines, self._buf = (self._buf + chunk).split(b"\n")
        out = []
        for line in lines:
            try:  # (the worker writes UTF-8 JSON: json.loads(bytes) would guess that first)
                data = _decode(line.decode("utf-8", "surrogatepass"))
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(data)
        return out

    def close_stdout(self) -> None:
        """Close our end of its stdout (after :meth:`ReplyPipes.discard`)."""
        self.eof = True
        self.proc.stdout.close()  # type: ignore[union-attr]

    def close_stdin(self) -> None:
        """EOF: an idle worker exits; a busy one dies at once (the pump sees the HUP)."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass


_str = json.encoder.encode_basestring_ascii  # a str as JSON, as json.dumps writes it

#: LaunchSpec's fields but those of the attempt (Requests.spec_json) and script_source
_REST = tuple(f for f in LaunchSpec.__dataclass_fields__ if f not in (
    "workflow_uid", "node_id", "attempt", "step_dir", "log_path", "deadline", "script_source"))


class Requests:
    """Encodes and writes step requests: a script's source goes to a worker once, then
    by its id; the environment only when it changed."""

    def __init__(self) -> None:
        self._sources: dict[str, int] = {}
        self._seq = 0
        self._rest: dict[tuple, bytes] = {}  # the JSON of _REST's fields, by value (spec_json)

    def spec_json(self, spec: LaunchSpec) -> bytes:
        """``spec.to_json()`` less ``script_source``, as JSON (keys in another order).

        Made of the attempt's own fields, and the rest: the template's command,
        environment and paths, the same for each of its steps, encoded once per value
        (a tuple of them is the key); the steps of a chain wait for this, and encoding
        it all was ~30 us of each with the caches cold."""
        dl = spec.deadline
        head = (f'{{"workflow_uid": {_str(spec.workflow_uid)}, "node_id": {_str(spec.node_id)}, '
                f'"attempt": {int(spec.attempt)}, "step_dir": {_str(str(spec.step_dir))}, '
                f'"log_path": {_str(str(spec.log_path))}, '
                f'"deadline": {"null" if dl is None else json.dumps(dl)}, ').encode()
        if spec.private_paths or spec.input_files or spec.secret_values:  # the step's own
            return head + json.dumps({f: getattr(spec, f) for f in _REST})[1:].encode()
        try:
            key = (tuple(spec.argv), tuple(spec.env.items()), tuple(spec.output_paths),
                   tuple(spec.volume_mounts), spec.working_dir, spec.grace_seconds)
            rest = self._rest.get(key)
        except TypeError:  # a value that is not hashable (not from the engine)
            key, rest = None, None
        if rest is None:
            rest = json.dumps({f: getattr(spec, f) for f in _REST})[1:].encode()
            if key is not None:
                if len(self._rest) >= 256:
                    self._rest.clear()
                self._rest[key] = rest
        return head + rest

    def send(self, w: WorkerProc, spec: LaunchSpec, *, last: bool) -> bool:
        """Write ``spec``'s request to ``w`` (``last``: it then retires); False if ``w``
        is gone."""
        source = spec.script_source or ""
        sid = self._sources.get(source)
        if sid is None:
            if len(self._sources) >= 256:  # many pipelines over time: forget old sources
                self._sources.clear()  # (ids are never reused: a worker's are still right)
            self._seq += 1
            sid = self._sources[source] = self._seq
        parts = [b'{"spec": ', self.spec_json(spec), b', "source_id": %d' % sid]
        if sid not in w.sources:
            parts += [b', "source": ', json.dumps(source).encode()]
        env = _environ_json()
        if env is not w.env_sent:
            parts += [b', "env": ', env]
        if last:
            parts.append(b', "last": true')
        parts.append(b"}\n")
        if not w.write(b"".join(parts)):
            return False
        w.sources.add(sid)
        w.env_sent = env
        w.steps += 1
        return True


class ReplyPipes:
    """The live workers' stdout pipes in one epoll set: readable when any has a line or
    ended (its fd is what the completions watch)."""

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._procs: dict[int, WorkerProc] = {}

    def fileno(self) -> int:
        """The epoll fd: readable while a worker's stdout is."""
        return self._ep.fileno()

    def add(self, w: WorkerProc) -> None:
        """Watch ``w``'s stdout."""
        self._procs[w.out] = w
        self._ep.register(w.out, select.EPOLLIN)

    def discard(self, w: WorkerProc) -> None:
        """Stop watching ``w`` (before its stdout's fd is closed, or as it is)."""
        if self._procs.get(w.out) is w:
            del self._procs[w.out]
            try:
                self._ep.unregister(w.out)
            except (OSError, ValueError):
                pass  # already closed: epoll forgot it by itself

    def ready(self) -> list[WorkerProc]:
        """The workers with something to read now (never blocks)."""
        return [w for fd, _ in self._ep.poll(0) if (w := self._procs.get(fd)) is not None]

    def wait(self, timeout: float) -> None:
        """Block until a worker has something to read, at most ``timeout`` seconds."""
        self._ep.poll(max(timeout, 0.0), 1)  # (level-triggered: the pump reads it again)

    def close(self) -> None:
        """Close the epoll set (the pipes are the workers')."""
        self._procs.clear()
        self._ep.close()


def reply_result(spec: LaunchSpec, stop: tuple[str, str] | None, data: dict) -> StepResult:
    """How a step ended, from its worker's reply (``stop``: the outcome and message of a
    deadline or cancel that was under way)."""
    code = data.get("exit_code")
    if stop is not None:
        outcome, message = stop
    elif "error" in data:
        outcome, message = ERROR, str(data["error"])
        if spec.secret_values:
            masker = LogSink(-1, Path(os.devnull), list(spec.secret_values))
            message = masker.mask(message.encode()).decode(errors="replace")
    elif code == 0:
        outcome, message = SUCCEEDED, ""
    else:
        outcome, message = FAILED, f"Error (exit code {code})"
    return StepResult(outcome, code, message, started_at=data.get("started_at"),
                      finished_at=data.get("finished_at") or time.time(),
                      result=data.get("result"), outputs=data.get("outputs") or {})


def exit_result(stop: tuple[str, str] | None, rc: int) -> StepResult:
    """How a step ended whose worker died under it with status ``rc`` (Popen's: ``-n``
    for signal ``n``), as a process step's: exit code ``128+n``."""
    sig = -rc if rc < 0 else None
    code = 128 + sig if sig else rc
    if stop is not None:
        return StepResult(stop[0], code, stop[1], finished_at=time.time(), signal=sig)
    return StepResult(FAILED, code, f"Error (exit code {code})", finished_at=time.time(),
                      signal=sig)
