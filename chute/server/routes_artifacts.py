"""Artifacts of a run: list, download (streamed) and bounded previews.

Responses are sandboxed (``Content-Security-Policy: sandbox``, ``nosniff``) and served
as attachments unless they are a known-harmless type, so an HTML or SVG artifact cannot
run script in the server's origin (Argo's artifact server does the same).
"""

from __future__ import annotations

import base64
import mimetypes
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from chute.server.artifact_access import (
    check_inside,
    file_key,
    find_record,
    node_artifacts,
    repository,
)
from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES

router = APIRouter(tags=["artifacts"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
SANDBOX_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "private, no-store",
}
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
                "text/csv", "application/json")


def _run(ctx, name):
    from chute.server.routes_runs import find_run

    with ctx.store.read() as s:
        return find_run(s, name)


@router.get("/runs/{name}/artifacts", summary="Output artifacts of every node of a run")
def list_artifacts(ctx: Ctx, name: str) -> dict:
    from sqlalchemy import select

    from chute.server.routes_runs import find_run
    from chute.store.models import NodeRow

    items = []
    with ctx.store.read() as s:
        row = find_run(s, name)
        for node in s.scalars(select(NodeRow).where(NodeRow.workflow_uid == row.uid)):
            for a in node_artifacts(node.outputs):
                items.append({"nodeId": node.node_id, "node": node.display_name,
                              "name": a.get("name"), "size": a.get("size"),
                              "digest": a.get("digest")})
    return {"items": items}


@router.get("/runs/{name}/artifacts/{node_id}/{artifact}/download",
            summary="Download an artifact (as stored: .tgz, .zip, or the file)",
            response_class=StreamingResponse,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download(ctx: Ctx, name: str, node_id: str, artifact: str,
             file: str | None = Query(None, max_length=1024,
                                      description="a file inside a directory artifact")):
    with ctx.store.read() as s:
        from chute.server.routes_runs import find_run

        record = find_record(s, find_run(s, name), node_id, artifact)
    key = file_key(record, file)
    check_inside(ctx, key)
    repo = repository(ctx)
    size = repo.size(key)  # NotFoundError (404) before any byte is sent
    filename = key.rsplit("/", 1)[-1]
    mime = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    disposition = "inline" if mime in INLINE_TYPES else "attachment"
    if mime not in INLINE_TYPES:
        mime = "application/octet-stream"  # never let a browser render HTML/SVG from here

    def chunks():
        with repo.open(key) as fh:
            while True:
                block = fh.read(64 * 1024)
                if not block:
                    break
                yield block

    headers = {**SANDBOX_HEADERS, "Content-Length": str(size),
               "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(filename)}"}
    return StreamingResponse(chunks(), media_type=mime, headers=headers)


@router.get("/runs/{name}/artifacts/{node_id}/{artifact}/preview",
            summary="A bounded preview: csv, json, text, image, directory or binary")
def preview(ctx: Ctx, name: str, node_id: str, artifact: str) -> dict:
    from chute.artifacts import preview as make_preview
    from chute.server.routes_runs import find_run

    with ctx.store.read() as s:
        record = find_record(s, find_run(s, name), node_id, artifact)
    check_inside(ctx, record.key)
    p = make_preview(repository(ctx), record)
    out = {"kind": p.kind, "mime": p.mime, "truncated": p.truncated, "filename": p.filename}
    if p.kind == "csv":
        out.update(columns=p.payload["columns"], rows=p.payload["rows"])
    elif p.kind == "image":
        out["data"] = base64.b64encode(p.payload).decode()
    elif p.kind == "directory":
        out["entries"] = list(p.payload)
    else:
        out["text"] = p.payload if isinstance(p.payload, str) else str(p.payload)
    return out
