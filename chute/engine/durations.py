"""Argo duration strings (``"30s"``, ``"1m30s"``, ``"2h"``, bare seconds ``"10"``)."""

from __future__ import annotations

import re

from chute.errors import SpecError

_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
         "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")


def parse_duration(text: str | float) -> float:
    """Seconds in an Argo/Go duration string; SpecError if it is not one."""
    if isinstance(text, int | float):
        return float(text)
    s = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise SpecError(f"invalid duration {text!r} (expected e.g. 30s, 1m30s, 2h)")
    return total
