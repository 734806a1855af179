"""Fake executors for tests and benchmarks: every attempt "runs" in memory, no process.

``outcome(spec)`` decides the StepResult (default: success with empty stdout), so the
engine can be exercised without processes, and its own cost measured apart from spawning.
:class:`FakeExecutor` has each result ready at once and is polled for it;
:class:`ReportingFakeExecutor` runs each attempt for a while on a thread of its own and
reports its end as the real executors do (``finished`` / ``wait``), so that the
controller's wake-ups are those of a real run.
"""

from __future__ import annotations

import heapq
import os
import select
import threading
import time
from collections.abc import Callable
from pathlib import Path

from chute.executors.base import SUCCEEDED, LaunchSpec, StepHandle, StepResult


class FakeExecutor:
    """Implements the Executor protocol with no processes."""

    def __init__(self, outcome: Callable[[LaunchSpec], StepResult] | None = None):
        self.outcome = outcome or (lambda spec: StepResult(SUCCEEDED, 0, result=""))
        self.launched: list[LaunchSpec] = []
        self._results: dict[Path, StepResult] = {}

    def launch(self, spec: LaunchSpec) -> StepHandle:
        """Record the launch; the result is ready at once."""
        self.launched.append(spec)
        self._results[Path(spec.step_dir)] = self._result(spec)
        return StepHandle(step_dir=Path(spec.step_dir), pid=None)

    def _result(self, spec: LaunchSpec) -> StepResult:
        now = time.time()
        r = self.outcome(spec)
        return StepResult(r.outcome, r.exit_code, r.message, r.started_at or now,
                          r.finished_at or now, r.signal, r.result, dict(r.outputs))

    def poll(self, handle: StepHandle) -> StepResult | None:
        """The result recorded at launch."""
        return self._results.get(Path(handle.step_dir))

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """Nothing runs, so nothing to stop."""

    def reattach(self, step_dir: Path) -> StepHandle | None:
        """Attempts of this fake do not survive the process."""
        return StepHandle(step_dir=Path(step_dir)) if Path(step_dir) in self._results else None


class ReportingFakeExecutor(FakeExecutor):
    """A FakeExecutor whose attempts each take ``seconds`` (on a thread of its own, as
    if in worker processes) and whose ends are pushed, as LocalExecutor's are: they wake
    :meth:`wait` and are listed by :meth:`finished`; :meth:`poll` sees an attempt only
    once it ended. Counts the controller's waits (``waits``) for tests of its wake-ups."""

    def __init__(self, outcome: Callable[[LaunchSpec], StepResult] | None = None,
                 seconds: float = 0.0, *, ephemeral: bool = False):
        super().__init__(outcome)
        self.seconds = seconds
        self.ephemeral = ephemeral  # its attempts die with the process (as reused workers')
        self.waits = 0
        self._ended: set[Path] = set()
        self._due: list[tuple[float, int, Path, StepResult]] = []
        self._seq = 0
        self._cv = threading.Condition()
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="fake-steps", daemon=True)
        self._thread.start()

    def launch(self, spec: LaunchSpec) -> StepHandle:
        """Start the attempt: it ends ``seconds`` from now."""
        self.launched.append(spec)
        step_dir = Path(spec.step_dir)
        with self._cv:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + self.seconds, self._seq, step_dir,
                                       self._result(spec)))
            self._cv.notify()
        return StepHandle(step_dir=step_dir, pid=None)

    def launch_ephemeral(self, spec: LaunchSpec) -> StepHandle | None:
        """:meth:`launch` if ``ephemeral`` (the controller may then launch before its
        commit), else None."""
        return self.launch(spec) if self.ephemeral else None

    def _run(self) -> None:
        with self._cv:
            while not self._closed:
                now = time.monotonic()
                if not self._due or self._due[0][0] > now:
                    self._cv.wait(self._due[0][0] - now if self._due else None)
                    continue
                _, _, step_dir, result = heapq.heappop(self._due)
                self._results[step_dir] = result
                self._ended.add(step_dir)
                try:
                    os.write(self._w, b"x")
                except BlockingIOError:
                    pass  # the pipe is full of wake-ups already

    def finished(self) -> set[Path]:
        """Step directories of attempts that ended since the last call."""
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._cv:
            ended, self._ended = self._ended, set()
        return ended

    def wait(self, timeout: float) -> None:
        """Block until an attempt ended (one not yet listed by :meth:`finished`)."""
        self.waits += 1
        with self._cv:
            if self._ended:
                return
        select.select([self._r], [], [], timeout)

    def close(self) -> None:
        """Stop the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=5)
        os.close(self._r)
        os.close(self._w)
