"""Logs of a run, streamed as text: one node, or every step prefixed with its name.

The log file of a node is ``$CHUTE_HOME/logs/<run uid>/<node id>.log``, built from ids
read from the store (never from the URL), and its real path must stay in the logs
directory. Each stored line is ``<timestamp> <stdout|stderr> <text>``; the API sends the
text (``timestamps=true`` keeps the whole line). ``follow=true`` keeps the response open,
sending new lines until the node (or run) has finished.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from chute.errors import NotFoundError
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES

router = APIRouter(tags=["logs"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
STEP_TYPES = ("Pod", "Container", "Script")
TERMINAL = ("Succeeded", "Failed", "Error", "Skipped", "Omitted")
FOLLOW_POLL_SECONDS = 0.3
READ_CHUNK = 1 << 20


def log_path(ctx: ServerContext, uid: str, node_id: str) -> Path:
    """The log file of a node, checked to be inside the logs directory."""
    root = os.path.realpath(ctx.settings.logs_dir)
    path = os.path.realpath(os.path.join(root, uid, f"{node_id}.log"))
    if not path.startswith(root + os.sep):
        raise NotFoundError(f"no logs for node {node_id!r}")
    return Path(path)


def _read_new(paths: dict[str, Path], offsets: dict[str, int]) -> list[tuple[str, bytes]]:
    """What each log file holds past its offset (at most 1 MiB each); advances offsets."""
    out = []
    for nid, path in paths.items():
        try:
            with open(path, "rb") as fh:
                fh.seek(offsets.get(nid, 0))
                data = fh.read(READ_CHUNK)
                offsets[nid] = fh.tell()
        except FileNotFoundError:
            continue
        if data:
            out.append((nid, data))
    return out


def _format(line: str, timestamps: bool, prefix: str | None) -> str:
    parts = line.split(" ", 2)
    text = line if timestamps or len(parts) < 3 else parts[2]
    return f"{prefix}: {text}" if prefix else text


def _targets(ctx: ServerContext, name: str, node: str | None):
    """(uid, [(node id, display name)], whether to prefix lines)."""
    from chute.server.routes_runs import find_run
    from chute.store.models import NodeRow

    with ctx.store.read() as s:
        row = find_run(s, name)
        q = select(NodeRow).where(NodeRow.workflow_uid == row.uid)
        if node is not None:
            q = q.where(NodeRow.node_id == node)
        else:
            q = q.where(NodeRow.type.in_(STEP_TYPES))
        nodes = list(s.scalars(q.order_by(NodeRow.started_at.is_(None), NodeRow.started_at,
                                          NodeRow.pk)))
        if node is not None and not nodes:
            raise NotFoundError(f"run {name!r} has no node {node!r}")
        return row.uid, [(n.node_id, n.display_name) for n in nodes], node is None


def _finished(ctx: ServerContext, uid: str, node: str | None) -> bool:
    from chute.store.models import NodeRow, WorkflowRow

    with ctx.store.read() as s:
        if node is not None:
            phase = s.scalar(select(NodeRow.phase).where(NodeRow.workflow_uid == uid,
                                                         NodeRow.node_id == node))
            return phase in TERMINAL
        return s.scalar(select(WorkflowRow.phase).where(WorkflowRow.uid == uid)) in TERMINAL


@router.get("/runs/{name}/logs", summary="Logs of a run or of one node (streamed text)",
            response_class=StreamingResponse, responses={200: {"content": {"text/plain": {}}}})
async def logs(
    ctx: Ctx, request: Request, name: str,
    node: str | None = Query(None, max_length=300, description="node id"),
    follow: bool = Query(False, description="keep streaming until it finishes"),
    timestamps: bool = Query(False),
):
    uid, nodes, prefix = await asyncio.to_thread(_targets, ctx, name, node)
    paths = {nid: log_path(ctx, uid, nid) for nid, _ in nodes}
    stop = ctx.extras["stop_event"]

    async def stream() -> AsyncIterator[bytes]:
        offsets: dict[str, int] = {}
        names = dict(nodes)
        partial: dict[str, str] = {}
        while True:
            sent = False
            if prefix and follow:  # new steps appear as the run goes on
                _, fresh, _ = await asyncio.to_thread(_targets, ctx, name, node)
                for nid, disp in fresh:
                    if nid not in paths:
                        paths[nid], names[nid] = log_path(ctx, uid, nid), disp
            chunks = await asyncio.to_thread(_read_new, paths, offsets)
            more = any(len(data) == READ_CHUNK for _, data in chunks)
            for nid, data in chunks:
                text = partial.pop(nid, "") + data.decode("utf-8", "replace")
                lines = text.split("\n")
                if lines[-1]:
                    partial[nid] = lines[-1]
                out = "".join(_format(ln, timestamps, names[nid] if prefix else None) + "\n"
                              for ln in lines[:-1])
                if out:
                    sent = True
                    yield out.encode()
            if more:
                continue  # a big log: keep reading before deciding anything
            if not follow or stop.is_set() or await request.is_disconnected():
                break
            if not sent and await asyncio.to_thread(_finished, ctx, uid, node):
                break
            await asyncio.sleep(FOLLOW_POLL_SECONDS)
        for nid, rest in partial.items():
            yield (_format(rest, timestamps, names[nid] if prefix else None) + "\n").encode()

    return StreamingResponse(stream(), media_type="text/plain; charset=utf-8",
                             headers={"X-Content-Type-Options": "nosniff",
                                      "Cache-Control": "no-store",
                                      "Content-Security-Policy": "sandbox; default-src 'none'"})
