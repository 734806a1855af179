"""The model registry: named models, numbered versions, stages, in the metadata store.

Like MLflow's registry, a model is a name; each registration adds version ``n + 1`` with
its metrics, parameters, digests of the data it was trained on, lineage (the workflow and
node that produced it) and the URI of the saved model. A version moves between stages::

    none ──> staging ──> production ──> archived
      │  ^      │  ^         │              │
      │  └──────┘  └─────────┘              │
      └──────────────> production           │
      └───────> archived <──────────────────┘  (archived -> staging or none to revive)

Promoting a version to ``production`` archives the version that was in production, so at
most one version of a model is in production. Functions take the session first and never
commit (the caller owns the transaction: ``with store.write() as s: promote(s, ...)``);
:class:`Registry` wraps them with transactions for scripts and pipeline steps.

Server API (for the UI): ``list_models(session)`` -> ``[ModelSummary]``,
``list_versions(session, name)`` -> ``[ModelVersion]``, ``get_version(session, name,
ref)`` -> ``ModelVersion``, ``promote(session, name, version, stage)``; every record has
``to_dict()`` (JSON-ready).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chute.errors import ConflictError, NotFoundError, ParameterError
from chute.store.models_registry import ModelRow, ModelVersionRow

STAGES = ("none", "staging", "production", "archived")
TRANSITIONS: dict[str, frozenset[str]] = {
    "none": frozenset({"staging", "production", "archived"}),
    "staging": frozenset({"production", "archived", "none"}),
    "production": frozenset({"staging", "archived"}),
    "archived": frozenset({"staging", "none"}),
}
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$")


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as stored."""

    name: str
    version: int
    stage: str
    artifact_uri: str
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    data_digests: dict[str, Any] = field(default_factory=dict)
    workflow_uid: str | None = None
    workflow_name: str | None = None
    node_id: str | None = None
    description: str = ""
    created_at: float = 0.0
    stage_changed_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


@dataclass(frozen=True)
class ModelSummary:
    """A registered model with its newest version and the versions per stage."""

    name: str
    description: str
    versions: int
    latest_version: int | None
    production_version: int | None
    staging_versions: list[int]
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return asdict(self)


def check_name(name: str) -> str:
    """Validate a model name (lower-case letters, digits, ``.``, ``_``, ``-``)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ParameterError(
            f"model name {name!r}: use 1-253 lower-case letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit")
    return name


def check_stage(stage: str) -> str:
    """Validate a stage name; the error lists the stages."""
    if stage not in STAGES:
        raise ParameterError(f"stage {stage!r}: must be one of {', '.join(STAGES)}")
    return stage


def _record(model: ModelRow, row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        name=model.name, version=row.version, stage=row.stage, artifact_uri=row.artifact_uri,
        metrics=dict(row.metrics or {}), params=dict(row.params or {}),
        data_digests=dict(row.data_digests or {}), workflow_uid=row.workflow_uid,
        workflow_name=row.workflow_name, node_id=row.node_id, description=row.description,
        created_at=row.created_at, stage_changed_at=row.stage_changed_at)


def _model(session: Session, name: str, *, lock: bool = False) -> ModelRow:
    query = select(ModelRow).where(ModelRow.name == name)
    if lock and session.bind is not None and session.bind.dialect.name == "postgresql":
        query = query.with_for_update()  # serialise version numbering per model
    row = session.scalar(query)
    if row is None:
        raise NotFoundError(f"model {name!r} not found")
    return row


def register_version(
    session: Session, name: str, *, artifact_uri: str,
    metrics: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
    data_digests: Mapping[str, Any] | None = None, workflow_uid: str | None = None,
    workflow_name: str | None = None, node_id: str | None = None, description: str = "",
    stage: str = "none", now: float | None = None,
) -> ModelVersion:
    """Add the next version of model ``name`` (created on first use) and return it.

    ``stage`` may be ``none``, ``staging`` or ``production`` (the latter archives the
    previous production version, as :func:`promote` does).
    """
    check_name(name)
    check_stage(stage)
    if stage == "archived":
        raise ParameterError("stage 'archived': a new version cannot start archived")
    if not artifact_uri:
        raise ParameterError(f"model {name!r}: artifact_uri is required")
    now = time.time() if now is None else now
    try:
        model = _model(session, name, lock=True)
    except NotFoundError:
        model = ModelRow(name=name, description=description, created_at=now, updated_at=now)
        session.add(model)
        session.flush()
    latest = session.scalar(select(func.max(ModelVersionRow.version))
                            .where(ModelVersionRow.model_id == model.id)) or 0
    if stage == "production":
        _archive_production(session, model, now)
    row = ModelVersionRow(
        model_id=model.id, version=latest + 1, stage=stage, artifact_uri=artifact_uri,
        metrics=_plain(metrics), params=_plain(params), data_digests=_plain(data_digests),
        workflow_uid=workflow_uid, workflow_name=workflow_name, node_id=node_id,
        description=description, created_at=now, stage_changed_at=now)
    session.add(row)
    model.updated_at = now
    session.flush()
    return _record(model, row)


def _plain(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """A JSON-safe copy (numpy scalars and tuples become plain numbers and lists)."""
    import json

    return json.loads(json.dumps(dict(value or {}), default=_json_default))


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _archive_production(session: Session, model: ModelRow, now: float) -> None:
    for row in session.scalars(select(ModelVersionRow).where(
            ModelVersionRow.model_id == model.id, ModelVersionRow.stage == "production")):
        row.stage = "archived"
        row.stage_changed_at = now


def _version_row(session: Session, model: ModelRow, ref: int | str | None) -> ModelVersionRow:
    """Resolve ``ref``: a version number, ``latest`` (or None), or a stage name."""
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
    if ref is None or ref == "latest":
        row = session.scalar(query.order_by(ModelVersionRow.version.desc()).limit(1))
        what = "no versions"
    elif isinstance(ref, str) and not ref.isdigit():
        check_stage(ref)
        row = session.scalar(query.where(ModelVersionRow.stage == ref)
                             .order_by(ModelVersionRow.version.desc()).limit(1))
        what = f"no version in stage {ref!r}"
    else:
        number = int(ref)
        row = session.scalar(query.where(ModelVersionRow.version == number))
        what = f"no version {number}"
    if row is None:
        raise NotFoundError(f"model {model.name!r}: {what}")
    return row


def get_version(session: Session, name: str, ref: int | str | None = "latest") -> ModelVersion:
    """The version ``ref`` of ``name``: a number, ``latest``, or the newest in a stage."""
    model = _model(session, check_name(name))
    return _record(model, _version_row(session, model, ref))


def find_version(session: Session, name: str, ref: int | str | None = "latest"
                 ) -> ModelVersion | None:
    """Like :func:`get_version`, but None when the model or version does not exist."""
    try:
        return get_version(session, name, ref)
    except NotFoundError:
        return None


def list_versions(session: Session, name: str, stage: str | None = None) -> list[ModelVersion]:
    """Every version of ``name``, newest first (only those in ``stage`` if given)."""
    model = _model(session, check_name(name))
    query = select(ModelVersionRow).where(ModelVersionRow.model_id == model.id)
    if stage is not None:
        query = query.where(ModelVersionRow.stage == check_stage(stage))
    rows = session.scalars(query.order_by(ModelVersionRow.version.desc()))
    return [_record(model, r) for r in rows]


def list_models(session: Session) -> list[ModelSummary]:
    """Every registered model with its version counts, by name."""
    out = []
    for model in session.scalars(select(ModelRow).order_by(ModelRow.name)):
        rows = session.execute(select(ModelVersionRow.version, ModelVersionRow.stage)
                               .where(ModelVersionRow.model_id == model.id)).all()
        production = [v for v, s in rows if s == "production"]
        out.append(ModelSummary(
            name=model.name, description=model.description, versions=len(rows),
            latest_version=max((v for v, _ in rows), default=None),
            production_version=max(production, default=None),
            staging_versions=sorted(v for v, s in rows if s == "staging"),
            created_at=model.created_at, updated_at=model.updated_at))
    return out


def promote(session: Session, name: str, version: int | str, stage: str,
            now: float | None = None) -> ModelVersion:
    """Move version ``version`` of ``name`` to ``stage``, checking the transition.

    Moving to ``production`` archives the current production version. Moving to the stage a
    version is already in, or along a transition not in :data:`TRANSITIONS`, is a
    :class:`ConflictError` naming both stages.
    """
    check_stage(stage)
    now = time.time() if now is None else now
    model = _model(session, check_name(name))
    if isinstance(version, str) and not version.isdigit():
        raise ParameterError(f"model {name!r}: version {version!r} must be a number")
    row = _version_row(session, model, int(version))
    if row.stage == stage:
        raise ConflictError(f"model {name!r} version {row.version} is already in {stage!r}")
    if stage not in TRANSITIONS[row.stage]:
        allowed = ", ".join(sorted(TRANSITIONS[row.stage]))
        raise ConflictError(f"model {name!r} version {row.version}: cannot move from "
                            f"{row.stage!r} to {stage!r} (allowed: {allowed})")
    if stage == "production":
        _archive_production(session, model, now)
    row.stage = stage
    row.stage_changed_at = now
    model.updated_at = now
    session.flush()
    return _record(model, row)


class Registry:
    """The registry over an open store, one transaction per call (for scripts and steps)."""

    def __init__(self, store):
        self.store = store

    @classmethod
    def open(cls, settings=None) -> Registry:
        """Open the metadata store of ``settings`` (default: from the environment)."""
        from chute.config import load_settings
        from chute.store.db import open_store

        return cls(open_store(settings or load_settings()))

    def register_version(self, name: str, **kwargs: Any) -> ModelVersion:
        """See :func:`register_version`."""
        with self.store.write() as s:
            return register_version(s, name, **kwargs)

    def get(self, name: str, ref: int | str | None = "latest") -> ModelVersion:
        """See :func:`get_version`."""
        with self.store.read() as s:
            return get_version(s, name, ref)

    def find(self, name: str, ref: int | str | None = "latest") -> ModelVersion | None:
        """See :func:`find_version`."""
        with self.store.read() as s:
            return find_version(s, name, ref)

    def list(self, name: str | None = None, stage: str | None = None
             ) -> list[ModelSummary] | list[ModelVersion]:
        """Models (no ``name``) or the versions of one model."""
        with self.store.read() as s:
            return list_models(s) if name is None else list_versions(s, name, stage)

    def promote(self, name: str, version: int | str, stage: str) -> ModelVersion:
        """See :func:`promote`."""
        with self.store.write() as s:
            return promote(s, name, version, stage)


def download(version: ModelVersion, dest, settings=None):
    """Copy the model file of ``version`` from the artifact repository to ``dest``.

    The version's ``artifact_uri`` must lie in the configured repository (where publishing
    steps put it); returns ``dest`` as a Path.
    """
    from pathlib import Path

    from chute.artifacts import ArtifactRepository

    repo = ArtifactRepository.from_settings(settings)
    root = repo.uri.rstrip("/") + "/"
    if not version.artifact_uri.startswith(root):
        raise NotFoundError(f"model {version.name!r} version {version.version}: artifact "
                            f"{version.artifact_uri} is not in the artifact repository {root}")
    dest = Path(dest)
    repo.get_file(version.artifact_uri[len(root):], dest)
    return dest
