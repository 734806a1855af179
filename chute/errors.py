"""The errors chute raises, as one hierarchy.

::

    ChuteError                      anything chute raises on purpose
    ├── UserError                   the user can fix it: CLI exit 2, HTTP 4xx
    │   ├── SpecError               a spec that does not load or validate (carries Issues)
    │   ├── ExpressionError         a `when`, `depends` or `{{=...}}` that does not parse or
    │   │                           evaluate (also raised on cost caps)
    │   ├── ParameterError          a missing, unknown or out-of-enum parameter
    │   ├── UnsupportedError        valid Argo that this runtime cannot honour
    │   ├── NotFoundError           no such workflow, node, artifact, secret, ...
    │   └── ConflictError           the request contradicts current state (e.g. resume a
    │       │                       workflow that is not suspended)
    │       └── IncompatibleRunError  a run recorded in a state format this build cannot
    │                               replay (chute.engine.state_format)
    └── ExecutionError              something went wrong running a step or the engine
        ├── StoreError              the metadata store refused or is unreachable
        └── LeaseHeldError          another controller holds the lease

Every user error names its place: ``SpecError`` holds a list of :class:`Issue`, each with
the dotted path of the offending field (``spec.templates[2].dag.tasks[1].dependencies[0]``).
"""

from __future__ import annotations

from dataclasses import dataclass


class ChuteError(Exception):
    """Base of every error chute raises on purpose."""


class UserError(ChuteError):
    """An error the user can fix; the CLI exits 2 and the API answers 4xx."""

    http_status = 400
    code = "bad_request"


@dataclass(frozen=True)
class Issue:
    """One problem found in a spec: where it is and what is wrong."""

    path: str
    message: str

    def __str__(self) -> str:
        # A message ending "at <place>" ("not supported locally: X at spec.templates[1]")
        # already names its place: print only what the path adds ("document 2").
        label, _, place = self.path.rpartition(": ")
        if place and self.message.endswith(f" at {place}"):
            return f"{label}: {self.message}" if label else self.message
        return f"{self.path}: {self.message}" if self.path else self.message


class SpecError(UserError):
    """A spec that does not load or does not validate; lists every issue found."""

    code = "invalid_spec"

    def __init__(self, issues: list[Issue] | Issue | str, source: str | None = None):
        if isinstance(issues, str):
            issues = [Issue("", issues)]
        elif isinstance(issues, Issue):
            issues = [issues]
        self.issues: list[Issue] = list(issues)
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return "\n".join(prefix + str(i) for i in self.issues)


class ExpressionError(UserError):
    """An expression that does not parse, does not evaluate, or exceeds a cost cap."""

    code = "invalid_expression"


class ParameterError(UserError):
    """A parameter that is missing, unknown, or not among its enum values."""

    code = "invalid_parameter"


class UnsupportedError(UserError):
    """Valid Argo that the chosen runtime cannot honour ("not supported locally: ...")."""

    code = "unsupported"


class NotFoundError(UserError):
    """The named workflow, node, artifact, secret or other object does not exist."""

    http_status = 404
    code = "not_found"


class ConflictError(UserError):
    """The request contradicts the current state of the object."""

    http_status = 409
    code = "conflict"


class IncompatibleRunError(ConflictError):
    """A run recorded in a state format this build cannot replay; the run is left as it is
    (for a build that can), and the controller goes on with its other runs."""

    code = "incompatible_run"

    def __init__(self, message: str, *, name: str = "", recorded: int | None = None):
        super().__init__(message)
        self.name = name
        self.recorded = recorded


class ExecutionError(ChuteError):
    """Something went wrong running a step or the engine itself."""


class StoreError(ExecutionError):
    """The metadata store refused an operation or cannot be reached."""


class LeaseHeldError(ExecutionError):
    """Another live controller holds the lease this one asked for."""
