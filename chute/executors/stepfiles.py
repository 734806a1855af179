"""The step directory's files: their names, how they are written and read back.

A step attempt's directory is the only channel between the controller and the step's
supervisor (see :mod:`chute.executors.local` for what each file means). Everything here
is plain file IO used on both sides: the supervisor writes ``supervisor.pid`` (exclusively,
to claim the step), ``step.pid`` and ``status.json``; the controller writes
``launch.json`` and ``cancel.json`` and reads them all back. Also here: the JSON form of a
:class:`~chute.executors.base.StepResult` and the CPU ``usage`` record status.json carries
beside it.
"""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Iterable
from pathlib import Path

from chute.executors.base import StepResult

LAUNCH, STATUS, PIDFILE, STEPFILE, CANCELFILE = (
    "launch.json",
    "status.json",
    "supervisor.pid",
    "step.pid",
    "cancel.json",
)


def write_json_atomic(path: str | Path, data: dict, *, sync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically: temp file, rename, then fsync.

    Readers never see a partial file (the rename is atomic), whatever process dies when.
    The fsync (if ``sync``) comes *after* the rename on purpose: it costs 1-15 ms on an
    ordinary disk and the result should be visible at once. Durability: a killed process
    loses nothing (the page cache is the kernel's, so the renamed file is there for the
    next reader); only a power cut or kernel crash can leave an empty or missing file,
    which readers treat as absent (for status.json: "supervisor lost", so the engine's
    retry policy decides).
    """
    head, name = os.path.split(path)  # str or Path (a Path costs more to make)
    tmp = os.path.join(head, f".{name}.{os.getpid()}.tmp")
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


def write_small(path: str | Path, data: dict) -> None:
    """Write a small JSON file in one ``write`` (readers treat bad JSON as absent)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(data).encode())
    finally:
        os.close(fd)


def write_file(path: str | Path, data: bytes, mode: int) -> None:
    """Create (or truncate) ``path`` with ``data`` and exactly ``mode`` (umask aside)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


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


# ---------------------------------------------------------------- status.json


def result_to_json(result: StepResult) -> dict:
    """Plain-JSON form of a StepResult (status.json). Shallow (the outputs dict is shared):
    ``dataclasses.asdict`` deep-copies, which costs more than the rest of writing it."""
    return {f: getattr(result, f) for f in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(StepResult.__dataclass_fields__)


def result_from_json(data: dict) -> StepResult:
    """Inverse of :func:`result_to_json`, ignoring unknown keys (newer writers)."""
    known = StepResult.__dataclass_fields__
    return StepResult(**{k: v for k, v in data.items() if k in known})


_last_usage = [0.0, 0.0, 0, 0]


def usage() -> dict:
    """CPU seconds (and page faults) this supervisor and the step's processes used for this
    step (a process may run several steps one after another); descendants count once
    reaped, which every one of them is by now. ``step_max_rss_kb`` is the largest of any
    step so far. Faults say where a step's cost goes even on a loaded machine (most of a
    no-op step is copy-on-write faults after the fork). Not part of StepResult: status.json
    carries it as ``usage``, for benchmarks and the curious."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    now = [me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime,
           me.ru_minflt, kids.ru_minflt]
    used = [n - last for n, last in zip(now, _last_usage, strict=True)]
    _last_usage[:] = now
    return {"supervisor_cpu": round(used[0], 6), "step_cpu": round(used[1], 6),
            "step_max_rss_kb": kids.ru_maxrss,
            "supervisor_faults": used[2], "step_faults": used[3]}


SCRUB_LIMIT = 8 << 20  # files larger than this in a step directory are not rewritten
MASK = b"***"  # what a secret becomes (as in the log: chute.executors.logsink)


def scrub_step_dir(step_dir: Path | str | None, forms: Iterable[str]) -> int:
    """Rewrite every file under ``step_dir`` that holds a secret form, masked; the
    number of files rewritten. Each file is replaced (new inode), never written in place,
    so an artifact hard-linked into the repository keeps its bytes."""
    forms_b = sorted({f.encode() for f in forms if f}, key=len, reverse=True)
    if not step_dir or not forms_b:
        return 0
    root = Path(step_dir)
    n = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            p = Path(dirpath) / name
            try:
                if p.is_symlink() or not p.is_file() or p.stat().st_size > SCRUB_LIMIT:
                    continue
                data = p.read_bytes()
            except OSError:
                continue
            masked = data
            for f in forms_b:
                if f in masked:
                    masked = masked.replace(f, MASK)
            if masked == data:
                continue
            tmp = p.with_name(f".{p.name}.scrub")
            try:
                tmp.write_bytes(masked)
                os.chmod(tmp, p.stat().st_mode & 0o777)
                os.replace(tmp, p)
                n += 1
            except OSError:
                tmp.unlink(missing_ok=True)
    return n
