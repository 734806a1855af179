"""Server-sent events: live status of one run, read from the store's transition journal.

The journal (``events`` table) is written by whichever controller drives the run, in
this process or another, so the stream polls it rather than listening to in-process
callbacks. Events, in order:

``nodes``     a JSON list of ``{"id", "phase", "at", "message"}``: node transitions since
              the last message, coalesced per node (one message per poll, so a
              1,000-node fan-out is a few messages, not thousands);
``workflow``  ``{"phase", "message"}`` when the run's phase changes;
``end``       the run has finished and every transition has been sent.

Each message carries ``id:`` = the last journal position; a client that reconnects with
``Last-Event-ID`` (or ``?after=``) resumes from there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from chute.server.deps import ServerContext, get_ctx
from chute.server.schemas import ERROR_RESPONSES

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)
Ctx = Annotated[ServerContext, Depends(get_ctx)]
POLL_SECONDS = 0.25
KEEPALIVE_SECONDS = 15.0
BATCH = 5000
TERMINAL = ("Succeeded", "Failed", "Error")


def _message(event: str, data, event_id: int | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _poll(ctx: ServerContext, uid: str, after: int):
    """(new journal rows after ``after``, the run's phase and message)."""
    from chute.store.models import EventRow, WorkflowRow

    with ctx.store.read() as s:
        rows = list(s.execute(
            select(EventRow.pk, EventRow.node_id, EventRow.to_phase, EventRow.at,
                   EventRow.message)
            .where(EventRow.workflow_uid == uid, EventRow.pk > after)
            .order_by(EventRow.pk).limit(BATCH)))
        wf = s.execute(select(WorkflowRow.phase, WorkflowRow.message)
                       .where(WorkflowRow.uid == uid)).first()
    return rows, (wf[0], wf[1]) if wf else (None, None)


@router.get("/runs/{name}/events", summary="Live status of a run (text/event-stream)",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def run_events(
    ctx: Ctx, request: Request, name: str,
    after: int = Query(0, ge=0, le=2**62, description="resume after this journal position"),
    last_event_id: str | None = Header(None, max_length=20),
):
    from chute.server.routes_runs import find_run

    def lookup():
        with ctx.store.read() as s:
            return find_run(s, name).uid

    uid = await asyncio.to_thread(lookup)
    if last_event_id and last_event_id.isdigit():
        after = max(after, int(last_event_id))
    stop = ctx.extras["stop_event"]

    async def stream() -> AsyncIterator[bytes]:
        position = after
        last_phase = None
        quiet_since = time.monotonic()
        yield b"retry: 2000\n\n"
        while not stop.is_set():
            rows, (phase, message) = await asyncio.to_thread(_poll, ctx, uid, position)
            if phase is None:  # the run was deleted
                yield _message("end", {"phase": None}, position)
                return
            nodes: dict[str, dict] = {}
            for pk, node_id, to_phase, at, msg in rows:
                position = pk
                if node_id:
                    nodes[node_id] = {"id": node_id, "phase": to_phase, "at": at,
                                      "message": msg}
            if nodes:
                yield _message("nodes", list(nodes.values()), position)
                quiet_since = time.monotonic()
            if phase != last_phase:
                last_phase = phase
                yield _message("workflow", {"phase": phase, "message": message}, position)
            if phase in TERMINAL and len(rows) < BATCH:
                yield _message("end", {"phase": phase}, position)
                return
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
