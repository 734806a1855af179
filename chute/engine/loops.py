"""Loop expansion: ``withItems``, ``withParam`` and ``withSequence`` into Argo-named items.

Each item gives a name suffix ``(index:label)`` and the variables ``item`` / ``item.key``
that are substituted into the expanded step or task, as Argo's ``processItem`` does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from chute.errors import ExpressionError


@dataclass(frozen=True)
class LoopItem:
    """One expanded item: its index, its name label and its substitution variables."""

    index: int
    label: str
    vars: dict[str, str]


def item_text(value: Any) -> str:
    """How an item value renders in ``{{item}}``: strings as-is, others as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and not math.isinf(value):
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def _label(value: Any) -> str:
    """Go's ``%v`` of an item, as Argo puts it in the node name."""
    if isinstance(value, list):
        return "[" + " ".join(_label(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_label(v)}" for k, v in sorted(value.items())) + "]"
    return item_text(value)


def make_item(index: int, value: Any) -> LoopItem:
    """Variables and label for one item value."""
    if isinstance(value, dict):
        vars_ = {f"item.{k}": item_text(v) for k, v in value.items()}
        vars_["item"] = json.dumps(value, separators=(",", ":"))
        label = ",".join(sorted(f"{k}:{_label(v)}" for k, v in value.items()))
        return LoopItem(index, label, vars_)
    return LoopItem(index, _label(value), {"item": item_text(value)})


def expand_sequence(seq: dict[str, Any]) -> list[str]:
    """Items of a ``withSequence`` (count, or start..end inclusive; optional printf format)."""
    def num(key: str, default: int | None) -> int | None:
        v = seq.get(key)
        if v is None or v == "":
            return default
        try:
            return int(str(v).strip())
        except ValueError:
            raise ExpressionError(f"withSequence.{key}: {v!r} is not an integer") from None

    start = num("start", 0) or 0
    count, end = num("count", None), num("end", None)
    if count is not None and end is not None:
        raise ExpressionError("withSequence: give either count or end, not both")
    if count is not None:
        if count < 0:
            raise ExpressionError(f"withSequence.count: {count} is negative")
        values = list(range(start, start + count))
    elif end is not None:
        step = 1 if end >= start else -1
        values = list(range(start, end + step, step))
    else:
        raise ExpressionError("withSequence: needs count or end")
    fmt = seq.get("format")
    if not fmt:
        return [str(v) for v in values]
    try:
        return [fmt % v for v in values]
    except (TypeError, ValueError) as exc:
        raise ExpressionError(f"withSequence.format {fmt!r}: {exc}") from None


def loop_values(call: dict[str, Any]) -> list[Any] | None:
    """The item values of a (substituted) step or task, or None if it has no loop."""
    if call.get("withItems") is not None:
        return list(call["withItems"])
    if call.get("withParam") is not None:
        raw = call["withParam"]
        try:
            values = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError:
            values = None
        if not isinstance(values, list):
            raise ExpressionError(
                f"withParam value could not be parsed as a JSON list: {str(raw).strip()[:200]}")
        return values
    if call.get("withSequence") is not None:
        return expand_sequence(call["withSequence"])
    return None


def has_loop(call: dict[str, Any]) -> bool:
    """Whether a step or task loops."""
    return (call.get("withItems") is not None or call.get("withParam") is not None
            or call.get("withSequence") is not None)
