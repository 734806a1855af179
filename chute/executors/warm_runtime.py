"""chute's step runtime, run once in a zygote instead of once in every warm step.

Every compiled SDK step (:mod:`chute.dsl.script`) is the same runtime — the source of
:mod:`chute.dsl.runtime`, a few hundred lines of classes and functions — then the
component's function and one call. Run cold, or forked warm, each step defines those
classes and functions again; in a process just forked that costs ~1 ms of CPU, mostly
copy-on-write page faults, more than the rest of a no-op step's own code.

So a zygote runs the runtime once, at start-up, into a module object of its own
(:data:`TEMPLATE`), which every worker and step it forks inherits. A warm step whose
script is a first line, then *exactly* chute's runtime text, then the component part,
runs only its component part (compiled with the runtime's line numbers, so every line
number is the script's) in that module, which becomes its ``__main__``: the namespace,
``__name__``, the function's globals and what it prints are what a cold run gives.
The zygote runs nothing but chute's own runtime text (compared byte for byte with
:mod:`chute.dsl.runtime`'s, never taken from the script); a script whose first part
differs runs whole, as before.

One difference shows, in tracebacks: the runtime's frames were compiled before the
script existed, under the name :data:`FILENAME` (registered in :mod:`linecache`, so their
source lines show). The step's own uncaught-exception report (the warm step's
equivalent of the interpreter's) names the script there, as a cold run would.
"""

from __future__ import annotations
import __future__

import ast
import builtins
import linecache
import types
from pathlib import Path

MARK = "\n\n\n# ---- component function ----\n"  # what chute.dsl.script puts after the runtime
FILENAME = "<chute step runtime>"
_FUTURE = 0
for _name in __future__.all_feature_names:
    _FUTURE |= getattr(__future__, _name).compiler_flag


def runtime_text() -> str:
    """The runtime as embedded in every step: chute/dsl/runtime.py with its long docstring
    cut (:func:`chute.dsl.script.runtime_source`, without importing chute.dsl: a zygote
    stays small). A test keeps the two equal."""
    path = Path(__file__).resolve().parents[1] / "dsl" / "runtime.py"
    text = path.read_text(encoding="utf-8")
    doc = ast.parse(text).body[0]
    lines = text.splitlines(keepends=True)
    header = '"""chute step runtime (chute/dsl/runtime.py): inputs, call, outputs."""\n'
    return header + "".join(lines[doc.end_lineno:])


class Template:
    """The runtime, run: its ``__main__`` module, and how to split a script after it."""

    def __init__(self, text: str) -> None:
        self.prefix = text.rstrip() + MARK
        source = "\n" + text.rstrip()  # line 1 of a script is its "# chute component" line
        code = compile(source, FILENAME, "exec", dont_inherit=True)
        self.future = code.co_flags & _FUTURE  # `from __future__ import annotations`
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = builtins
        # chute's own runtime (checked equal to chute/dsl/runtime.py's by the caller):
        # imports of the standard library and definitions, nothing else
        exec(code, self.module.__dict__)  # noqa: S102
        lines = source.splitlines(keepends=True)
        linecache.cache[FILENAME] = (len(source), None, lines, FILENAME)

    def component_part(self, source: bytes) -> str | None:
        """The part of a script after the runtime, padded with newlines to keep its line
        numbers; None if the script is not a first line then this runtime."""
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError:
            return None
        start = text.find("\n") + 1
        if not start or not text.startswith(self.prefix, start):
            return None
        cut = start + len(self.prefix) - len(MARK)
        return "\n" * text.count("\n", 0, cut) + text[cut:]

    def compile(self, source: bytes, filename: str) -> types.CodeType | None:
        """The component part of ``source`` compiled (None: run the script whole)."""
        part = self.component_part(source)
        if part is None:
            return None
        try:
            return compile(part, filename, "exec", flags=self.future, dont_inherit=True)
        except (SyntaxError, ValueError):
            return None  # the whole script then fails to compile too, and says where


TEMPLATE: Template | None = None


def load() -> None:
    """In the zygote, before it forks: run the runtime (if it loads, as it should)."""
    global TEMPLATE
    try:
        TEMPLATE = Template(runtime_text())
    except Exception:  # noqa: BLE001 - without it every step runs whole, as before
        TEMPLATE = None


def rename_frames(te, script: str) -> None:
    """Name the script in a TracebackException's runtime frames (and its causes')."""
    seen = set()
    todo = [te]
    while todo:
        t = todo.pop()
        if t is None or id(t) in seen:
            continue
        seen.add(id(t))
        for frame in t.stack:
            if frame.filename == FILENAME:
                frame.filename = script
        todo += [t.__cause__, t.__context__, *(getattr(t, "exceptions", None) or [])]
