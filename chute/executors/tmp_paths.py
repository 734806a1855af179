"""Which host paths under ``/tmp`` a step's texts name (its step directory, script, env).

A reused worker's steps all get a private ``/tmp``; a host path under ``/tmp`` that a step
is handed must still be seen there (:mod:`chute.executors.worker_tmp`). These are the
candidates, as :mod:`chute.executors.sandbox` finds them for a process step.
"""

from __future__ import annotations

import functools
import os
import re

from chute.executors import sandbox

# a relative path of plain names (no "." or ".." part, no separator _paths_in cuts at)
PLAIN = re.compile(r"[\w-][\w.-]*(?:/[\w-][\w.-]*)*")


def tmp_paths(texts) -> frozenset[str]:
    """The paths under ``/tmp`` named in ``texts`` (normalised)."""
    return frozenset().union(*map(named_in, texts))


@functools.lru_cache(maxsize=4096)  # the same script and env values step after step
def named_in(text: str) -> frozenset[str]:
    """The absolute paths in ``text`` under ``/tmp``, normalised: ``sandbox``'s candidates
    for re-sharing into a private ``/tmp``."""
    out = set()
    for c in sandbox._paths_in(text):
        if c.startswith("/tmp/") or "/." in c or "//" in c:
            c = os.path.normpath(c)
            if c.startswith("/tmp/"):
                out.add(c)
    return frozenset(out)
