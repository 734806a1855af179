"""The executor interface: how the engine launches, watches and stops one step attempt.

An executor is small and has frozen inputs (the httpx transport idea): the engine builds a
:class:`LaunchSpec`, calls :meth:`Executor.launch`, then :meth:`Executor.poll` until a
:class:`StepResult` comes back, and :meth:`Executor.cancel` to stop it. Everything an
attempt needs lives in its *step directory*, so a restarted controller can
:meth:`Executor.reattach` to it:

``step_dir/launch.json``   the LaunchSpec, written before the process starts
``step_dir/supervisor.pid`` pid of the supervisor (it outlives the controller)
``step_dir/status.json``   the StepResult, written atomically (tmp + rename) at the end
``step_dir/stdout``        the step's stdout (``outputs.result`` of a script)
``step_dir/root/``         the step's private view of the paths it writes (``/tmp/out.txt``
                           is ``step_dir/root/tmp/out.txt`` after the step ends)

Logs go to ``log_path`` as they are produced, one line each:
``<RFC 3339 UTC timestamp> <stdout|stderr> <text>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

# Outcomes of an attempt, mapped by the engine onto Argo node phases.
SUCCEEDED = "Succeeded"  # exit code 0
FAILED = "Failed"  # non-zero exit code or killed by a signal
ERROR = "Error"  # could not start, supervisor lost, outputs could not be collected
TIMEOUT = "Timeout"  # the deadline passed; the process tree was killed (phase Failed)
CANCELLED = "Cancelled"  # stopped or terminated on request (phase Failed)


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to run one attempt of one step, fixed before it starts."""

    workflow_uid: str
    node_id: str
    attempt: int
    step_dir: Path
    log_path: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    working_dir: str | None = None
    script_source: str | None = None  # written to step_dir/script; its path is appended to argv
    deadline: float | None = None  # absolute epoch seconds; None = no deadline
    grace_seconds: float = 1.0  # SIGTERM, then SIGKILL after this many seconds
    private_paths: list[str] = field(default_factory=list)  # absolute paths the step writes/reads
    input_files: dict[str, str] = field(default_factory=dict)  # step path -> host file placed there
    output_paths: list[str] = field(default_factory=list)  # step paths collected after exit
    volume_mounts: list[str] = field(default_factory=list)  # emptyDir mount paths: fresh dirs
    secret_values: list[str] = field(default_factory=list)  # masked as *** in logs and outputs

    def to_json(self) -> dict:
        """Plain-JSON form, stored as launch.json (shares the lists and dicts: no copy)."""
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["step_dir"] = str(self.step_dir)
        d["log_path"] = str(self.log_path)
        return d


@dataclass(frozen=True)
class StepResult:
    """How an attempt ended; written by the supervisor as status.json."""

    outcome: str  # SUCCEEDED, FAILED, ERROR, TIMEOUT or CANCELLED
    exit_code: int | None
    message: str = ""
    started_at: float | None = None
    finished_at: float | None = None
    signal: int | None = None
    result: str | None = None  # stdout, for a script's outputs.result
    outputs: dict[str, str] = field(default_factory=dict)  # step path -> host path collected


@dataclass(frozen=True)
class StepHandle:
    """What the engine keeps to find a launched attempt again."""

    step_dir: Path
    pid: int | None = None


class Executor(Protocol):
    """Launches step attempts and reports how they end."""

    def launch(self, spec: LaunchSpec) -> StepHandle:
        """Start the attempt and return at once."""
        ...

    def poll(self, handle: StepHandle) -> StepResult | None:
        """Return the result if the attempt has ended, else None. Never blocks."""
        ...

    def cancel(self, handle: StepHandle, reason: str = "") -> None:
        """Stop the attempt: SIGTERM to its process tree, SIGKILL after the grace period."""
        ...

    def reattach(self, step_dir: Path) -> StepHandle | None:
        """Find an attempt launched by an earlier controller; None if it never started."""
        ...


# Optional, for an executor that is told when attempts end (LocalExecutor, PythonExecutor):
#
#     finished() -> set[Path]     step directories of attempts that ended since the last
#                                 call: the controller polls only those, and every handle
#                                 now and then (an attempt may end unreported: a supervisor
#                                 killed, an attempt adopted from an earlier controller)
#     wait(timeout: float) -> None  block until finished() has something, or timeout
#
# An executor without them is polled: every handle each turn, sleeping in between.
