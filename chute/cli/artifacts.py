"""``chute artifacts``: list a workflow's artifacts, and garbage-collect those of deleted
workflows (issue 8 item 7, Argo's artifactGC idea; check L-4).

``gc`` lists the repository's run prefixes *first* and reads the live workflows from the
store *after*, and judges only the prefixes of that first listing, so a workflow
submitted meanwhile is never taken for a deleted one; the deletion itself is
:func:`chute.artifacts.gc`, which only removes whole prefixes of workflow uids that are
not live (never another run's keys, never keys a spec named). The metadata rows of what was removed (artifacts, their consumers, and cache
entries whose outputs point at them) go too, so nothing refers to a deleted key.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from chute.config import load_settings


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class _Listed:
    """A repository whose listing shows only the run prefixes seen before the live set
    was read (``gc`` lists again; a run that began since must not look abandoned)."""

    def __init__(self, repository, prefixes: set[str]):
        self._repo, self._prefixes = repository, prefixes

    def list(self, prefix: str = "") -> list[tuple[str, int]]:
        return [(k, n) for k, n in self._repo.list(prefix)
                if k.split("/", 1)[0] in self._prefixes]

    def __getattr__(self, name):
        return getattr(self._repo, name)


def collect(store, repository) -> dict[str, int]:
    """Remove the artifacts of deleted workflows; ``{keys, bytes, workflows}`` removed."""
    from sqlalchemy import delete, select

    from chute.artifacts import gc
    from chute.artifacts.gc import run_prefixes
    from chute.store.models import ArtifactConsumerRow, ArtifactRow, CacheEntryRow, WorkflowRow

    candidates = run_prefixes(repository)  # before reading the live set (see above)
    with store.read() as s:
        live = set(s.scalars(select(WorkflowRow.uid)))
    keys, freed = gc(_Listed(repository, candidates), live)
    gone = sorted(candidates - live - run_prefixes(repository))
    if gone:
        with store.write() as s:
            ids = select(ArtifactRow.id).where(ArtifactRow.workflow_uid.in_(gone))
            s.execute(delete(ArtifactConsumerRow).where(ArtifactConsumerRow.artifact_id.in_(ids)))
            s.execute(delete(ArtifactRow).where(ArtifactRow.workflow_uid.in_(gone)))
            s.execute(delete(CacheEntryRow).where(CacheEntryRow.workflow_uid.in_(gone)))
    return {"keys": keys, "bytes": freed, "workflows": len(gone)}


def gc_cmd(
    output: Annotated[str | None, typer.Option("-o", "--output", help="json")] = None,
) -> None:
    """Remove the artifacts of deleted workflows; report keys removed and bytes freed."""
    from chute.artifacts import ArtifactRepository
    from chute.store.db import open_store

    settings = load_settings().ensure()
    result = collect(open_store(settings), ArtifactRepository.from_settings(settings))
    if output == "json":
        typer.echo(json.dumps(result))
        return
    typer.echo(f"removed {result['keys']} keys of {result['workflows']} deleted workflows, "
               f"freed {result['bytes']} bytes ({_human(result['bytes'])})")


def list_cmd(
    name: Annotated[str, typer.Argument(help="workflow name")],
    output: Annotated[str | None, typer.Option("-o", "--output", help="json")] = None,
) -> None:
    """A workflow's stored artifacts: node, name, size, digest and key."""
    from sqlalchemy import select

    from chute.store import queries as q
    from chute.store.db import open_store
    from chute.store.models import ArtifactRow

    store = open_store(load_settings().ensure())
    with store.read() as s:
        row = q.get_workflow(s, name)
        display = {n.node_id: n.display_name for n in q.nodes_of(s, row.uid)}
        arts = list(s.scalars(select(ArtifactRow).where(ArtifactRow.workflow_uid == row.uid)
                              .order_by(ArtifactRow.id)))
        items = [{"id": a.id, "node": display.get(a.node_id, a.node_id), "node_id": a.node_id,
                  "name": a.name, "size": a.size, "digest": a.digest, "key": a.key}
                 for a in arts]
    if output == "json":
        typer.echo(json.dumps(items, indent=2))
        return
    typer.echo(f"{'NODE':<24} {'ARTIFACT':<20} {'SIZE':>10}  {'DIGEST':<20} KEY")
    for i in items:
        digest = (i["digest"] or "")[:19]
        typer.echo(f"{i['node']:<24} {i['name']:<20} {_human(i['size'] or 0):>10}  "
                   f"{digest:<20} {i['key']}")


def register(app: typer.Typer) -> None:
    """Add ``chute artifacts list|gc``."""
    sub = typer.Typer(help="Stored artifacts: list a workflow's, collect deleted ones'.",
                      no_args_is_help=True)
    sub.command("list")(list_cmd)
    sub.command("gc")(gc_cmd)
    app.add_typer(sub, name="artifacts")
