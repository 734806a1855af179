"""Finding a run's artifacts and reading them without ever leaving the run's prefix.

An artifact is named by (run, node id, artifact name) — values looked up in the store,
never a path taken from the URL. Its key comes from the node's recorded outputs (or the
``artifacts`` table) and must (1) pass :func:`chute.artifacts.safe_key` and (2) start
with the run's uid, the prefix under which chute stores every output of that run (S-5).
A file inside a directory artifact (``?file=``) is a second key segment checked the same
way; the local backend also resolves real paths (symlinks) inside the store root.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from chute.errors import NotFoundError, UserError


def repository(ctx):
    """The server's artifact repository (created once per app)."""
    repo = ctx.extras.get("artifact_repository")
    if repo is None:
        from chute.artifacts import ArtifactRepository

        repo = ArtifactRepository.from_settings(ctx.settings)
        ctx.extras["artifact_repository"] = repo
    return repo


def node_artifacts(node_outputs: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Output artifact entries recorded on a node."""
    return [a for a in ((node_outputs or {}).get("artifacts") or []) if isinstance(a, dict)]


def _record_from_entry(entry: dict[str, Any], uid: str, node_id: str):
    from chute.artifacts import ArtifactRecord

    key = entry.get("key") or ((entry.get("s3") or {}).get("key"))
    if not key:
        return None
    archive = entry.get("archive")
    if not isinstance(archive, str):
        archive = "tgz" if key.endswith(".tgz") else "zip" if key.endswith(".zip") else "none"
    return ArtifactRecord(
        name=entry.get("name", ""), key=key, repository=entry.get("repository", ""),
        archive=archive, is_dir=bool(entry.get("is_dir", False)),
        size=int(entry.get("size") or 0), digest=entry.get("digest", ""),
        filename=entry.get("filename") or key.rsplit("/", 1)[-1],
        workflow_uid=uid, node_id=node_id, path=entry.get("path"),
    )


def find_record(session, row, node_id: str, name: str):
    """The ArtifactRecord of output ``name`` of node ``node_id`` of run ``row``."""
    from chute.artifacts import safe_key
    from chute.store.models import ArtifactRow, NodeRow

    node = session.scalar(select(NodeRow).where(NodeRow.workflow_uid == row.uid,
                                                NodeRow.node_id == node_id))
    if node is None:
        raise NotFoundError(f"run {row.name!r} has no node {node_id!r}")
    record = None
    for entry in node_artifacts(node.outputs):
        if entry.get("name") == name:
            record = _record_from_entry(entry, row.uid, node_id)
            break
    if record is None:
        art = session.scalar(select(ArtifactRow).where(
            ArtifactRow.workflow_uid == row.uid, ArtifactRow.node_id == node_id,
            ArtifactRow.name == name))
        if art is not None:
            record = _record_from_entry({"name": name, "key": art.key, "size": art.size,
                                         "digest": art.digest or ""}, row.uid, node_id)
    if record is None:
        raise NotFoundError(f"node {node_id!r} of run {row.name!r} has no artifact {name!r}")
    safe_key(record.key, f"artifact {name!r}")
    if not record.key.startswith(row.uid + "/"):
        # Only chute's own layout is served: keys under the run's uid. A spec-chosen key
        # elsewhere in the bucket is not this run's to hand out.
        raise NotFoundError(f"artifact {name!r} is not stored under run {row.name!r}")
    return record


def file_key(record, file: str | None) -> str:
    """The key to read: the artifact's own, or a file inside a directory artifact."""
    from chute.artifacts import safe_key

    if not file:
        return record.key
    if record.archive != "none":
        raise UserError("file: only directory artifacts stored unarchived have files")
    return f"{record.key}/{safe_key(file, 'file')}"


def check_inside(ctx, key: str) -> None:
    """For a local repository: the real path of ``key`` is inside the store (symlinks)."""
    from chute.artifacts import resolve_under

    repo = repository(ctx)
    root = getattr(repo.backend, "root", None)
    if root is not None:
        resolve_under(root, key)
