"""Lifecycle actions on runs, delegated to the engine (:mod:`chute.engine.control`).

suspend, resume, stop and terminate are requests written to the store for the run's
controller to act on; retry reruns the failed steps of a finished run, then its exit
handlers; resubmit starts a fresh run of the same spec and parameters (and keeps its
experiment). A verb the engine of this build lacks gets no route at all. Delete is the
store's ``delete_workflow`` plus the run's logs and step directories, refused while the
run is active.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from chute.errors import ConflictError

VERBS = ("suspend", "resume", "stop", "terminate", "retry", "resubmit")


def _control():
    try:
        from chute.engine import control
    except ImportError:
        return None
    return control


def _engine_call(verb: str) -> Callable[[Any, str], Any] | None:
    """A function (store, run name) -> result for ``verb``, or None if not implemented."""
    control = _control()
    if control is None:
        return None
    if verb == "terminate":
        stop = getattr(control, "stop", None)
        return None if stop is None else (lambda store, name: stop(store, name, terminate=True))
    return getattr(control, verb, None)


def available_actions() -> list[str]:
    """The verbs the engine of this build implements."""
    return [v for v in VERBS if _engine_call(v) is not None]


def run_action(ctx, verb: str, name: str, values: dict[str, str] | None = None) -> str:
    """Perform ``verb`` on run ``name``; return the name of the run to show afterwards.
    ``values`` (resume only): output values for the run's suspend steps."""
    from chute.store import queries

    with ctx.store.read() as s:
        experiment = queries.get_workflow(s, name).experiment_id
    call = _engine_call(verb)
    result = call(ctx.store, name, values) if values else call(ctx.store, name)
    if verb != "resubmit" or result is None:
        return name
    if experiment:  # the new run belongs to the same experiment as the old one
        with ctx.store.write() as s:
            queries.update_workflow(s, result.uid, experiment_id=experiment)
    return result.name


def delete_available() -> bool:
    """Deleting needs only the store; always available."""
    return True


def delete(ctx, uid: str) -> None:
    """Delete a finished run: its rows, logs and step directories."""
    from chute.store import queries

    with ctx.store.write() as s:
        row = queries.find_workflow(s, uid)
        if row is not None and row.phase in ("Pending", "Running"):
            raise ConflictError(f"run {row.name!r} is {row.phase}; stop it before deleting")
        queries.delete_workflow(s, uid)
    shutil.rmtree(ctx.settings.logs_dir / uid, ignore_errors=True)
    shutil.rmtree(ctx.settings.steps_dir / uid, ignore_errors=True)
