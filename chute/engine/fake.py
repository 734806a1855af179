"""A fake executor for tests and benchmarks: every attempt "runs" instantly in memory.

``outcome(spec)`` decides the StepResult (default: success with empty stdout), so the
engine can be exercised without processes, and its own cost measured apart from spawning.
"""

from __future__ import annotations

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
        now = time.time()
        r = self.outcome(spec)
        self._results[Path(spec.step_dir)] = StepResult(
            r.outcome, r.exit_code, r.message, r.started_at or now, r.finished_at or now,
            r.signal, r.result, dict(r.outputs))
        return StepHandle(step_dir=Path(spec.step_dir), pid=None)

    def poll(self, handle: StepHandle) -> StepResult | None:
        """The result recorded at launch."""
        return self._results.get(Path(handle.step_dir))

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """Nothing runs, so nothing to stop."""

    def reattach(self, step_dir: Path) -> StepHandle | None:
        """Attempts of this fake do not survive the process."""
        return StepHandle(step_dir=Path(step_dir)) if Path(step_dir) in self._results else None
