"""Argo's node phases and node types, and the table of allowed phase transitions.

Every change of a node's phase goes through :func:`check_transition`; terminal phases are
final (R-8): nothing leaves Succeeded, Failed, Error, Skipped or Omitted except an explicit
rerun, which creates a new attempt rather than editing history.
"""

from __future__ import annotations

from chute.errors import ExecutionError

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
ERROR = "Error"
SKIPPED = "Skipped"
OMITTED = "Omitted"

#: Phases a node never leaves.
TERMINAL = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED})
#: Phases after which a node "completed" in Argo's sense (it ran or was skipped by `when`).
COMPLETED = frozenset({SUCCEEDED, FAILED, ERROR, SKIPPED})
FAILED_OR_ERROR = frozenset({FAILED, ERROR})

#: from-phase -> phases it may move to.
ALLOWED = {
    PENDING: frozenset({RUNNING, SUCCEEDED, FAILED, ERROR, SKIPPED, OMITTED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, ERROR}),
    SUCCEEDED: frozenset(),
    FAILED: frozenset(),
    ERROR: frozenset(),
    SKIPPED: frozenset(),
    OMITTED: frozenset(),
}

# Node types, as Argo names them.
POD = "Pod"
STEPS = "Steps"
STEP_GROUP = "StepGroup"
DAG = "DAG"
TASK_GROUP = "TaskGroup"
RETRY = "Retry"
SKIPPED_TYPE = "Skipped"
SUSPEND = "Suspend"

# Workflow phases.
WF_PENDING, WF_RUNNING, WF_SUCCEEDED, WF_FAILED, WF_ERROR = (
    "Pending", "Running", "Succeeded", "Failed", "Error")
WF_TERMINAL = frozenset({WF_SUCCEEDED, WF_FAILED, WF_ERROR})


class TransitionError(ExecutionError):
    """A phase change the transition table forbids (an engine bug, never user input)."""


def check_transition(node_id: str, old: str, new: str) -> None:
    """Raise TransitionError unless ``old -> new`` is allowed."""
    if new not in ALLOWED.get(old, frozenset()):
        raise TransitionError(f"node {node_id}: illegal transition {old} -> {new}")


def is_terminal(phase: str) -> bool:
    """Whether ``phase`` is final."""
    return phase in TERMINAL
