"""Stored trigger resources by name: the get / list / delete every trigger kind shares."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select

from chute.errors import NotFoundError
from chute.store.db import Store

Row = TypeVar("Row")


def get(store: Store, model: type[Row], name: str, kind: str) -> Row:
    """The stored ``model`` row ``name``, or a NotFoundError naming the ``kind``."""
    with store.read() as s:
        row = s.get(model, name)
    if row is None:
        raise NotFoundError(f"{kind} {name!r} not found")
    return row


def list_all(store: Store, model: type[Row]) -> list[Row]:
    """Every stored ``model`` row, by name."""
    with store.read() as s:
        return list(s.scalars(select(model).order_by(model.name)))


def delete(store: Store, model: type[Row], name: str, kind: str) -> None:
    """Delete row ``name`` (the runs it made stay), or a NotFoundError naming the ``kind``."""
    with store.write() as s:
        row = s.get(model, name)
        if row is None:
            raise NotFoundError(f"{kind} {name!r} not found")
        s.delete(row)
