"""Hyper-parameter search as pipeline steps: an Optuna study asked and told in rounds.

Katib runs each trial of an experiment as its own job; chute does the same with plain
pipeline steps, so trials run in parallel, are retried, cached and shown like any step::

    ask(study, n=4)  ──>  ParallelFor(trial in suggestions): train + score  ──>  tell(...)
        └───────────────────────── repeated for each round ─────────────────────┘
    best(study)  ──>  the best parameters, passed on to training

* :func:`ask` returns a JSON-ready list ``[{"trial": 0, "params": {...}}, ...]`` that a
  ``ParallelFor`` iterates over; :func:`tell` takes the collected results
  ``[{"trial": 0, "value": 0.81}, ...]`` (``"value": null`` or an ``"error"`` marks a failed
  trial); :func:`best` returns ``{"trial", "value", "params"}``.
* The study lives in the metadata store (Optuna's ``RDBStorage`` on ``CHUTE_DATABASE_URL``),
  so a tuning stage survives a controller restart: a re-run ``ask`` step with the same
  ``round_key`` gets the same trials back instead of new ones, and a re-run ``tell`` skips
  trials already told.
* A search space is plain JSON, so it can be a pipeline parameter::

    {"n_estimators": {"type": "int", "low": 30, "high": 150, "step": 10},
     "max_samples":  {"type": "float", "low": 0.2, "high": 0.6},
     "max_features": {"type": "categorical", "choices": ["sqrt", "log2"]}}

Optuna's tables sit beside chute's in the same database. Both use Alembic, and Optuna would
read chute's ``alembic_version`` row as its own, so the store is migrated first (by
:func:`open_storage`) and Optuna's own version check is skipped; Optuna creates its tables
itself (``create_all``), which is idempotent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from chute.errors import NotFoundError, ParameterError

ROUND_ATTR = "chute_round"
DIRECTIONS = ("maximize", "minimize")


def open_storage(settings=None):
    """Optuna storage on the metadata store of ``settings`` (migrated first, see above)."""
    import optuna

    from chute.config import load_settings
    from chute.store.db import SQLITE_BUSY_TIMEOUT_MS, open_store

    settings = settings or load_settings()
    open_store(settings).dispose()  # chute's schema (and alembic_version) first
    url = settings.database_url
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # trial steps and ask/tell steps of parallel runs share the file: wait for the lock
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)


def parse_space(space: Mapping[str, Any] | str) -> dict[str, Any]:
    """Optuna distributions from a JSON search space; errors name the parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(space, str):
        try:
            space = json.loads(space)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"search space: not valid JSON: {exc}") from exc
    if not isinstance(space, Mapping) or not space:
        raise ParameterError("search space: expected a non-empty object of parameters")
    out: dict[str, Any] = {}
    for name, spec in space.items():
        where = f"search space: parameter {name!r}"
        if not isinstance(spec, Mapping):
            raise ParameterError(f"{where}: expected an object with a 'type'")
        kind = spec.get("type")
        try:
            if kind == "int":
                out[name] = IntDistribution(int(spec["low"]), int(spec["high"]),
                                            log=bool(spec.get("log", False)),
                                            step=int(spec.get("step", 1)))
            elif kind == "float":
                step = spec.get("step")
                out[name] = FloatDistribution(float(spec["low"]), float(spec["high"]),
                                              log=bool(spec.get("log", False)),
                                              step=None if step is None else float(step))
            elif kind == "categorical":
                choices = spec["choices"]
                if not isinstance(choices, list) or not choices:
                    raise ValueError("'choices' must be a non-empty list")
                out[name] = CategoricalDistribution(choices)
            else:
                raise ParameterError(f"{where}: type {kind!r} must be int, float or categorical")
        except KeyError as exc:
            raise ParameterError(f"{where}: missing {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ParameterError(f"{where}: {exc}") from exc
    return out


def _sampler(seed: int | None, done: int):
    import optuna

    # each ask step is a fresh process: offset the seed by the trials so far, or every
    # round would draw the same random start-up points again
    seed = None if seed is None else seed + done
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8, constant_liar=True)


def _load(study_name: str, storage, seed: int | None = None):
    import optuna

    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as exc:
        raise NotFoundError(f"study {study_name!r} not found") from exc
    if seed is not None:
        study.sampler = _sampler(seed, len(study.trials))
    return study


def create_study(study_name: str, direction: str = "maximize", settings=None, *,
                 storage=None):
    """Create the study (or load it, if it exists) in the metadata store."""
    import optuna

    if direction not in DIRECTIONS:
        raise ParameterError(f"direction {direction!r}: must be maximize or minimize")
    if not study_name:
        raise ParameterError("study name must not be empty")
    return optuna.create_study(study_name=study_name,
                               storage=storage or open_storage(settings),
                               direction=direction, load_if_exists=True)


def ask(study_name: str, n: int, space: Mapping[str, Any] | str, *, round_key: str = "",
        seed: int | None = None, direction: str = "maximize", settings=None
        ) -> list[dict[str, Any]]:
    """Suggest ``n`` trials, as ``[{"trial": number, "params": {...}}]``.

    The study is created on first use. With a ``round_key``, asking again for the same
    round (a step re-run after a crash) returns the trials of that round, not new ones.
    """
    if n < 1:
        raise ParameterError(f"trials per round must be >= 1, got {n}")
    distributions = parse_space(space)
    storage = open_storage(settings)
    create_study(study_name, direction, storage=storage)
    study = _load(study_name, storage, seed)
    if round_key:
        earlier = [t for t in study.trials if t.system_attrs.get(ROUND_ATTR) == round_key]
        if earlier:
            return [_suggestion(t.number, t.params) for t in earlier]
    out = []
    for _ in range(n):
        trial = study.ask(distributions)
        if round_key:
            study._storage.set_trial_system_attr(trial._trial_id, ROUND_ATTR, round_key)
        out.append(_suggestion(trial.number, trial.params))
    return out


def _suggestion(number: int, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"trial": int(number), "params": dict(params)}


def tell(study_name: str, results: Sequence[Mapping[str, Any] | str], settings=None
         ) -> dict[str, Any]:
    """Record trial results; returns ``{"told": n, "failed": n, "skipped": n, "best": ...}``.

    Each result is ``{"trial": number, "value": float}`` (or its JSON text, as a collected
    loop output is); a missing or non-finite value, or an ``"error"``, fails the trial.
    Trials already finished are skipped, so a re-run tell step is harmless.
    """
    import optuna
    from optuna.trial import TrialState

    storage = open_storage(settings)
    study = _load(study_name, storage)
    by_number = {t.number: t for t in study.trials}
    told = failed = skipped = 0
    for i, raw in enumerate(results):
        result = json.loads(raw) if isinstance(raw, str) else raw
        if not isinstance(result, Mapping) or "trial" not in result:
            raise ParameterError(f"results[{i}]: expected an object with 'trial' and 'value'")
        number = int(result["trial"])
        trial = by_number.get(number)
        if trial is None:
            raise NotFoundError(f"results[{i}]: study {study_name!r} has no trial {number}")
        if trial.state != TrialState.RUNNING:
            skipped += 1
            continue
        value = result.get("value")
        ok = (result.get("error") is None and value is not None
              and math.isfinite(float(value)))
        if ok:
            study.tell(number, float(value))
            told += 1
        else:
            study.tell(number, state=optuna.trial.TrialState.FAIL)
            failed += 1
    return {"told": told, "failed": failed, "skipped": skipped,
            "best": best(study_name, missing_ok=True, storage=storage)}


def best(study_name: str, settings=None, *, missing_ok: bool = False, storage=None
         ) -> dict[str, Any] | None:
    """The best finished trial: ``{"trial", "value", "params", "trials"}``.

    Raises :class:`NotFoundError` when no trial has finished (unless ``missing_ok``).
    """
    from optuna.trial import TrialState

    study = _load(study_name, storage or open_storage(settings))
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not complete:
        if missing_ok:
            return None
        raise NotFoundError(f"study {study_name!r}: no completed trial")
    top = study.best_trial
    return {"trial": top.number, "value": top.value, "params": dict(top.params),
            "trials": len(complete)}


def trials(study_name: str, settings=None) -> list[dict[str, Any]]:
    """Every trial of the study: number, state, value, params and round."""
    study = _load(study_name, open_storage(settings))
    return [{"trial": t.number, "state": t.state.name, "value": t.value,
             "params": dict(t.params), "round": t.system_attrs.get(ROUND_ATTR)}
            for t in study.trials]
