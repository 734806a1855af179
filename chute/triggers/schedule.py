"""When a CronWorkflow's slots fall: its ``schedule``/``schedules`` in its ``timezone``.

Pure functions over epoch seconds, so the scheduler can be driven by an injected clock.
Schedules are read as Argo reads them (robfig/cron ``ParseStandard``): five fields or a
descriptor (``@hourly``, ``@daily``, ...), an optional ``CRON_TZ=``/``TZ=`` prefix, and
``@every <duration>``. Without a ``timezone`` the machine's local time applies, as on
Argo's controller. ``@every D`` has no wall-clock anchor in robfig/cron (it counts from
when the entry was added); here it counts from the CronWorkflow's creation, so a restart
does not move its slots.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from chute.engine.durations import parse_duration
from chute.errors import SpecError

_TZ_PREFIX = re.compile(r"^(?:CRON_TZ|TZ)=(\S+)\s+")
# slots looked at per call, the most recent ones: more than the largest catch-up count, so
# a long downtime of a per-minute cron costs a bounded walk (older slots are just missed)
MAX_SLOTS = 2000


def schedules_of(spec: Mapping[str, Any]) -> list[str]:
    """The cron expressions of a CronWorkflow spec (``schedule`` or ``schedules``)."""
    if spec.get("schedules"):
        return [str(s) for s in spec["schedules"]]
    return [str(spec["schedule"])] if spec.get("schedule") else []


def _zone(name: str | None) -> tzinfo | None:
    if not name:
        return None  # naive datetimes: the machine's local time, DST through the C library
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:
        raise SpecError(f"spec.timezone: unknown time zone {name!r}") from exc


def _start(after: float, zone: tzinfo | None) -> datetime:
    if zone is None:
        return datetime.fromtimestamp(after)
    return datetime.fromtimestamp(after, tz=zone)


def _cron_slots(expr: str, zone: tzinfo | None, after: float, until: float) -> list[float]:
    m = _TZ_PREFIX.match(expr)
    if m:  # a zone in the expression wins over spec.timezone, as in robfig/cron
        zone, expr = _zone(m.group(1)), expr[m.end():]
    # walk back from `until` (inclusive): the most recent slots are the ones that matter,
    # and a long downtime costs at most MAX_SLOTS steps
    it = croniter(expr.strip(), _start(until + 1e-3, zone))
    out: list[float] = []
    while len(out) < MAX_SLOTS:
        prev = it.get_prev(datetime).timestamp()
        if prev <= after:
            break
        if prev <= until:
            out.append(prev)
    return out[::-1]


def _every_slots(expr: str, origin: float, after: float, until: float) -> list[float]:
    step = parse_duration(expr.split(None, 1)[1].strip())
    step = max(1.0, float(int(step)))  # robfig rounds an @every delay to whole seconds
    last = int((until - origin) // step)  # the most recent k with origin + k*step <= until
    first = max(1, int((after - origin) // step) + 1, last - MAX_SLOTS + 1)
    return [origin + k * step for k in range(first, last + 1) if origin + k * step > after]


def slots_between(spec: Mapping[str, Any], after: float, until: float, *,
                  origin: float) -> list[float]:
    """Every slot ``s`` of ``spec`` with ``after < s <= until``, ascending, each once (two
    schedules naming the same instant give one slot); at most the MAX_SLOTS most recent.
    ``origin``: the creation time, from which ``@every`` counts."""
    zone = _zone(spec.get("timezone"))
    found: set[float] = set()
    for expr in schedules_of(spec):
        bare = _TZ_PREFIX.sub("", expr.strip())
        if bare.startswith("@every "):
            found.update(_every_slots(bare, origin, after, until))
        else:
            found.update(_cron_slots(expr, zone, after, until))
    return sorted(found)[-MAX_SLOTS:]


def next_slot(spec: Mapping[str, Any], after: float, *, origin: float) -> float | None:
    """The first slot after ``after``, or None."""
    zone = _zone(spec.get("timezone"))
    best: float | None = None
    for expr in schedules_of(spec):
        bare = _TZ_PREFIX.sub("", expr.strip())
        if bare.startswith("@every "):
            step = max(1.0, float(int(parse_duration(bare.split(None, 1)[1].strip()))))
            cands = [origin + (max(0, int((after - origin) // step)) + 1) * step]
        else:
            m = _TZ_PREFIX.match(expr)
            z = _zone(m.group(1)) if m else zone
            cands = [croniter(bare, _start(after, z)).get_next(datetime).timestamp()]
        for c in cands:
            if c > after and (best is None or c < best):
                best = c
    return best


def slot_iso(slot: float) -> str:
    """A slot as RFC 3339 UTC (``2026-01-02T03:04:00Z``): its idempotency key part and
    the ``workflows.argoproj.io/scheduled-time`` annotation."""
    return datetime.fromtimestamp(slot, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
