"""Lifecycle actions on runs, delegated to the engine (never reimplemented here).

Each verb maps to the engine function that performs it; a verb whose engine function is
not available in this build gets no route at all (the OpenAPI document lists only what
works). Delete is the store's ``delete_workflow`` plus the run's logs and step
directories, and is refused while the run is active.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import shutil
from collections.abc import Callable
from typing import Any

from chute.errors import ConflictError

VERBS = ("suspend", "resume", "stop", "terminate", "retry", "resubmit")
# Where the engine keeps its operations, in the order they are looked for.
ENGINE_MODULES = ("chute.engine.ops", "chute.engine.actions", "chute.engine.control")
log = logging.getLogger("chute.server")


def _fits(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` takes (store, uid, ...): the calling convention used here."""
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return len(params) >= 2 and params[0] == "store" and params[1] in ("uid", "workflow_uid")


def _engine_function(verb: str) -> Callable[..., Any] | None:
    for mod_name in ENGINE_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        fn = getattr(mod, verb, None) or getattr(mod, f"{verb}_workflow", None)
        if callable(fn):
            if _fits(fn):
                return fn
            log.warning("%s.%s does not take (store, uid); no route for it", mod_name, verb)
    return None


def available_actions() -> list[str]:
    """The verbs the engine of this build implements."""
    return [v for v in VERBS if _engine_function(v) is not None]


def _call(verb: str):
    def action(ctx, uid: str, body: dict[str, Any]) -> str | None:
        fn = _engine_function(verb)
        accepted = set(inspect.signature(fn).parameters)
        kwargs = {k: v for k, v in body.items()
                  if k in ("message", "node", "nodes", "parameters") and k in accepted}
        result = fn(ctx.store, uid, **kwargs)
        # resubmit returns the new run (row or name); the others the same run
        return getattr(result, "uid", None) or (result if isinstance(result, str) else None)

    return action


ACTIONS: dict[str, Callable[..., str | None]] = {v: _call(v) for v in VERBS}


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
