"""Log streaming for a running step: timestamped, masked lines as the output arrives.

A step's stdout and stderr are read by its supervisor and handed to :class:`LogSink`,
which writes every complete line at once as ``<RFC 3339 UTC> <stdout|stderr> <text>``
(secrets masked), keeps stdout byte for byte for output collection, and its tail for
Argo's ``outputs.result``.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

RESULT_LIMIT = 256 * 1024  # Argo keeps only the last 256 kB of stdout as outputs.result
LINE_LIMIT = 1 << 20  # a "line" longer than this is cut into pieces rather than buffered


def rfc3339(ts: float) -> bytes:
    """``2026-01-02T03:04:05.123456Z`` for epoch seconds ``ts``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()


class LogSink:
    """Turns the step's output into timestamped, masked log lines as it arrives.

    Also keeps the step's stdout (masked, byte for byte) in ``stdout_path``, created on
    the first byte so that steps printing nothing cost one file less, and its last
    256 kB in memory for ``outputs.result``.
    """

    def __init__(self, log_fd: int, stdout_path: str | Path, secrets: list[str]):
        self.log_fd = log_fd
        self.stdout_path = stdout_path
        self.stdout_fd: int | None = None
        self.tail = bytearray()
        # mask the longest secrets first so that one containing another is fully hidden;
        # a multi-line secret is masked line by line since logs are cut at newlines
        self.secrets: list[bytes] = []
        if secrets:  # (most steps have none: a reused worker's step pays for this)
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
        pieces = buf.split(b"\n")
        rest = pieces.pop()
        lines = [(p, b"\n") for p in pieces]
        if final and rest:
            lines.append((rest, b""))
            rest = b""
        while len(rest) > LINE_LIMIT:  # no newline in sight: log it in pieces
            lines.append((rest[:LINE_LIMIT], b""))
            rest = rest[LINE_LIMIT:]
        self.partial[stream] = rest
        if not lines:
            return
        prefix = rfc3339(time.time()) + b" " + stream + b" "
        masked = [(self.mask(line), end) for line, end in lines]
        _write_all(self.log_fd, b"".join(prefix + m + b"\n" for m, _ in masked))
        if stream == b"stdout":
            out = b"".join(m + end for m, end in masked)
            if self.stdout_fd is None:
                self.stdout_fd = os.open(
                    self.stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
                )
            _write_all(self.stdout_fd, out)
            self.tail += out
            if len(self.tail) > 2 * RESULT_LIMIT:
                del self.tail[: len(self.tail) - RESULT_LIMIT - 1]

    def result(self) -> str:
        """``outputs.result``: stdout less one trailing newline, its last 256 kB (as Argo)."""
        if not self.tail:
            return ""
        data = bytes(self.tail)
        if data.endswith(b"\n"):
            data = data[:-1]
        return data[-RESULT_LIMIT:].decode(errors="replace")

    def close(self) -> None:
        if self.stdout_fd is not None:
            os.close(self.stdout_fd)
            self.stdout_fd = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
