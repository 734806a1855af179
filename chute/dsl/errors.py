"""Errors a pipeline author causes while wiring a pipeline, located at their source line."""

from __future__ import annotations

import os
import sys

from chute.errors import Issue, SpecError

_DSL_DIR = os.path.dirname(os.path.abspath(__file__))


def user_location() -> str:
    """``file.py:LINE`` of the innermost caller outside ``chute/dsl`` (the user's code)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if os.path.dirname(filename) != _DSL_DIR:
            return f"{_short(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


def def_location(fn) -> str:
    """``file.py:LINE`` of a function's definition."""
    code = fn.__code__
    return f"{_short(os.path.abspath(code.co_filename))}:{code.co_firstlineno}"


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:  # another drive on Windows
        return filename
    return filename if rel.startswith("..") else rel


class PipelineError(SpecError):
    """A wiring mistake in a pipeline (wrong type, unknown output, cycle...), with its line."""

    code = "invalid_pipeline"

    def __init__(self, message: str, location: str | None = None):
        location = location or user_location()
        super().__init__([Issue(location, message)])
        self.location = location
        self.message = message
