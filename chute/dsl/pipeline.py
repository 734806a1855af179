"""``@pipeline``: a function whose body wires components into a DAG.

Its parameters are the workflow's parameters (``spec.arguments.parameters``): annotate them
``str``, ``int``, ``float``, ``bool``, ``list``, ``dict`` or ``Literal[...]`` (an enum);
their defaults become the parameter values, and a parameter without a default must be given
at submit time. Building the pipeline runs the function once with a channel per parameter.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable
from typing import Any

from chute.dsl.channels import PipelineParam
from chute.dsl.context import Builder, building, dns_name
from chute.dsl.errors import PipelineError, def_location
from chute.dsl.types import constant_type, encode_constant, param_type

_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Pipeline:
    """A pipeline definition; :meth:`build` wires it, the compiler turns it into Argo."""

    def __init__(self, fn: Callable, name: str | None, description: str | None):
        self.fn = fn
        self.name = name or dns_name(fn.__name__)
        self.description = description if description is not None else _first_line(fn)
        where = def_location(fn)
        if not _K8S_NAME.match(self.name) or len(self.name) > 52:
            raise PipelineError(f"pipeline name {self.name!r} must be lower case letters, "
                                "digits and '-', at most 52 characters", where)
        self.params = self._read_params(where)

    def _read_params(self, where: str) -> list[tuple[PipelineParam, Any, bool]]:
        try:
            hints = typing.get_type_hints(self.fn)
        except Exception as exc:  # noqa: BLE001 - any annotation that does not evaluate
            raise PipelineError(f"pipeline {self.fn.__name__}(): cannot resolve its "
                                f"annotations: {exc}", where) from None
        params = []
        for name, p in inspect.signature(self.fn).parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise PipelineError(f"pipeline {self.fn.__name__}(): *args and **kwargs are "
                                    "not supported", where)
            try:
                ptype = param_type(hints.get(name, str), f"pipeline parameter {name!r}")
            except TypeError as exc:
                raise PipelineError(str(exc), where) from None
            has_default = p.default is not p.empty
            if has_default and constant_type(p.default) is None:
                raise PipelineError(f"pipeline parameter {name!r}: default must be str, int, "
                                    "float, bool, list or dict", where)
            if has_default and ptype.enum and encode_constant(p.default) not in ptype.enum:
                raise PipelineError(f"pipeline parameter {name!r}: default {p.default!r} is "
                                    f"not one of {list(ptype.enum)}", where)
            params.append((PipelineParam(name, ptype), p.default, has_default))
        return params

    def build(self) -> Builder:
        """Run the pipeline function under a fresh builder and return the wired graph."""
        builder = Builder(self.name)
        builder.unique_name(self.name)  # the root DAG template's name
        with building(builder):
            self.fn(**{ch.name: ch for ch, _, _ in self.params})
        if builder.blocks:  # an exception inside a with-block left it open
            raise PipelineError("pipeline function ended inside an open block")
        if not builder.root.nodes:
            raise PipelineError(f"pipeline '{self.name}' has no tasks", def_location(self.fn))
        return builder

    def arguments(self) -> list[dict[str, Any]]:
        """The workflow's ``spec.arguments.parameters``."""
        out = []
        for ch, default, has_default in self.params:
            entry: dict[str, Any] = {"name": ch.name}
            if has_default:
                entry["value"] = encode_constant(default)
            if ch.type.enum:
                entry["enum"] = list(ch.type.enum)
            out.append(entry)
        return out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise PipelineError(f"pipeline '{self.name}' cannot be called; compile it with "
                            "chute.dsl.compile_pipeline or run it with `chute run`")

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _first_line(fn: Callable) -> str | None:
    doc = inspect.getdoc(fn)
    return doc.strip().splitlines()[0] if doc else None


def pipeline(fn: Callable | None = None, *, name: str | None = None,
             description: str | None = None):
    """Make a function a pipeline (``@pipeline`` or ``@pipeline(name=..., description=...)``).

    ``name`` defaults to the function name with ``_`` as ``-``; ``description`` to the
    first line of its docstring.
    """

    def wrap(f: Callable) -> Pipeline:
        return Pipeline(f, name, description)

    return wrap(fn) if fn is not None else wrap
