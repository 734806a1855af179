"""The state format: which recorded runs this build can replay.

A controller adopts a run by replaying it (:mod:`chute.engine.state`): it rebuilds the
node tree from the spec and matches the recorded nodes by id, and it re-attaches to
steps through the files in their step directories. Both are a contract between the
build that recorded the run and the build that adopts it. Each workflow row carries the
format its recorder wrote (``workflows.state_format``); a build replays only the formats
it knows and refuses any other with :class:`~chute.errors.IncompatibleRunError`, leaving
the run untouched for a build that can (Temporal's replay-compatibility rule: fail by
name, never mis-replay).

Format 1 (chute 0.1.0): node ids are ``<workflow>-<fnv32a(node name)>`` (the root's is
the workflow name), node rows in Argo's NodeStatus shape, retries as child nodes, step
directories ``steps/<uid>/<node id>-<attempt>`` holding ``launch.json``,
``supervisor.pid``, ``step.pid``, ``cancel.json`` and ``status.json``, and
``resume_values`` for suspend outputs supplied while no controller ran.

Bump ``STATE_FORMAT`` with any change after which an older build would replay a run
wrongly (a new node-id scheme, a node type or step-directory file it does not know),
raise ``OLDEST_READABLE`` only when a build drops replay of an old format, and add a
release to ``tests/corpus/replay`` (its test replays every stored release).
"""

from __future__ import annotations

from chute.errors import IncompatibleRunError

STATE_FORMAT = 1  #: the format this build records
OLDEST_READABLE = 1  #: the oldest format this build still replays


def check_replayable(name: str, recorded: int | None) -> None:
    """Raise IncompatibleRunError unless this build can replay a run recorded in format
    ``recorded`` (None: a row from before the column existed, i.e. format 1)."""
    fmt = 1 if recorded is None else int(recorded)
    if OLDEST_READABLE <= fmt <= STATE_FORMAT:
        return
    reads = (f"{STATE_FORMAT}" if OLDEST_READABLE == STATE_FORMAT
             else f"{OLDEST_READABLE}..{STATE_FORMAT}")
    hint = "upgrade chute to continue it" if fmt > STATE_FORMAT else \
        "finish it with an older chute release"
    raise IncompatibleRunError(
        f"workflow {name!r} was recorded by chute state format {fmt}; this build reads "
        f"format {reads} ({hint})", name=name, recorded=fmt)
