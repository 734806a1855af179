"""The node record the engine keeps in memory and persists, and Argo's node ids."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from chute.engine.phases import PENDING

FNV_32_OFFSET = 0x811C9DC5


def fnv1a_32(data: bytes, h: int = FNV_32_OFFSET) -> int:
    """32-bit FNV-1a hash (what Argo uses for node ids); ``h``: the hash of the bytes
    before ``data`` (FNV-1a is a running state), to continue from."""
    for b in data:  # one statement a byte: half the time of two (a chain's every node)
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


@functools.lru_cache(maxsize=256)
def _prefix_hash(prefix: str) -> int:
    """The FNV-1a state after ``prefix`` (a parent's name and its dot)."""
    return fnv1a_32(prefix.encode())


@functools.lru_cache(maxsize=1024)
def node_id(workflow_name: str, node_name: str) -> str:
    """Argo's node id: the workflow name for the root, else ``<wf>-<fnv32a(name)>``.
    Cached: a task's id is asked for when it becomes ready and again when its node is
    made. The hash is a Python loop over the name's bytes: it goes on from the state
    after the parent's part (``<parent>.``, shared by the parent's children and kept),
    so each node hashes only its own part."""
    if node_name == workflow_name:
        return workflow_name
    dot = node_name.rfind(".") + 1
    h = _prefix_hash(node_name[:dot]) if dot else FNV_32_OFFSET
    return f"{workflow_name}-{fnv1a_32(node_name[dot:].encode(), h)}"


@dataclass(slots=True)
class Node:
    """One node of the tree, in Argo's shape (plus ``parent_id`` for rendering). (Slots:
    a run holds one per step, and a step's turn touches several.)"""

    id: str
    name: str
    display_name: str
    type: str
    template_name: str | None = None
    phase: str = PENDING
    boundary_id: str | None = None
    parent_id: str | None = None
    children: list[str] = field(default_factory=list)
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempt: int = 0
    step_dir: str | None = None
    cached: bool = False

    def to_row(self) -> dict[str, Any]:
        """The dict the store's node functions take."""
        return {
            "node_id": self.id, "name": self.name, "display_name": self.display_name,
            "type": self.type, "template_name": self.template_name, "phase": self.phase,
            "boundary_id": self.boundary_id, "parent_id": self.parent_id,
            "children": list(self.children), "inputs": self.inputs, "outputs": self.outputs,
            "exit_code": self.exit_code, "message": self.message,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "attempt": self.attempt, "step_dir": self.step_dir, "cached": self.cached,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Node:
        """Rebuild from a store dict (``node_id`` plus columns)."""
        return cls(
            id=row["node_id"], name=row["name"], display_name=row["display_name"],
            type=row["type"], template_name=row.get("template_name"), phase=row["phase"],
            boundary_id=row.get("boundary_id"), parent_id=row.get("parent_id"),
            children=list(row.get("children") or []), inputs=dict(row.get("inputs") or {}),
            outputs=dict(row.get("outputs") or {}), exit_code=row.get("exit_code"),
            message=row.get("message"), started_at=row.get("started_at"),
            finished_at=row.get("finished_at"), attempt=row.get("attempt") or 0,
            step_dir=row.get("step_dir"), cached=bool(row.get("cached")),
        )

    def output_param(self, name: str) -> str | None:
        """The value of output parameter ``name``, if set."""
        for p in self.outputs.get("parameters") or []:
            if p.get("name") == name:
                return p.get("value")
        return None
