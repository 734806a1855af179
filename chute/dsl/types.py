"""Types a component signature may use: parameters, artifacts, ``Input[...]``/``Output[...]``.

Parameters are ``str``, ``int``, ``float``, ``bool``, ``list`` and ``dict`` (``List[int]``
and ``Dict[str, float]`` too). Artifacts are the classes of :mod:`chute.dsl.runtime`
(``Dataset``, ``Model``, ``Metrics``, ``ClassificationMetrics``, ``HTML``, ``Markdown``,
``Artifact``), annotated ``Input[Dataset]`` for an artifact the step reads and
``Output[Model]`` for one it writes. The artifact classes live in the runtime module because
the compiled step carries that module's source into a stock Python image.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args, get_origin

from chute.dsl.runtime import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Markdown,
    Metrics,
    Model,
)

T = TypeVar("T", bound=Artifact)

PARAM_KINDS = {str: "str", int: "int", float: "float", bool: "bool", list: "list", dict: "dict"}
ARTIFACT_TYPES = (Artifact, Dataset, Model, Metrics, ClassificationMetrics, HTML, Markdown)


class Input(Generic[T]):
    """``Input[Dataset]``: the step reads this artifact (produced by another step)."""


class Output(Generic[T]):
    """``Output[Model]``: the step writes this artifact to ``.path``."""


@dataclass(frozen=True)
class ParamType:
    """A parameter type: ``kind`` is str/int/float/bool/list/dict/any; ``items`` for lists."""

    kind: str
    items: str | None = None
    enum: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.kind == "any":
            return "any"
        if self.items and self.items != "any":
            return f"list[{self.items}]"
        return self.kind


@dataclass(frozen=True)
class ArtifactType:
    """An artifact annotation: its class and whether the step reads or writes it."""

    cls: type[Artifact]
    direction: str  # "input" or "output"

    def __str__(self) -> str:
        wrapper = "Input" if self.direction == "input" else "Output"
        return f"{wrapper}[{self.cls.__name__}]"


ANY = ParamType("any")


def param_type(annotation: Any, what: str) -> ParamType:
    """Classify a parameter annotation; raise TypeError naming ``what`` if unsupported."""
    if annotation is Any or annotation is typing.Any or annotation is None:
        return ANY
    if annotation in PARAM_KINDS:
        return ParamType(PARAM_KINDS[annotation])
    origin = get_origin(annotation)
    if origin is Literal:
        values = get_args(annotation)
        kinds = {PARAM_KINDS.get(type(v)) for v in values}
        if len(kinds) != 1 or None in kinds:
            raise TypeError(f"{what}: Literal values must all be str, int, float or bool")
        return ParamType(kinds.pop(), enum=tuple(encode_constant(v) for v in values))
    if origin in (list, typing.List):  # noqa: UP006 - accept the typing alias users write
        args = get_args(annotation)
        items = param_type(args[0], what).kind if args else None
        return ParamType("list", items=items)
    if origin in (dict, typing.Dict):  # noqa: UP006
        return ParamType("dict")
    raise TypeError(
        f"{what}: unsupported type {annotation!r} (use str, int, float, bool, list, dict, "
        "Input[...] or Output[...])")


def artifact_type(annotation: Any) -> ArtifactType | None:
    """``Input[X]``/``Output[X]`` as an :class:`ArtifactType`; None for anything else."""
    origin = get_origin(annotation)
    if origin in (Input, Output):
        (cls,) = get_args(annotation)
        if not (isinstance(cls, type) and issubclass(cls, Artifact)):
            raise TypeError(f"{annotation!r}: the artifact class must be one of "
                            + ", ".join(c.__name__ for c in ARTIFACT_TYPES))
        return ArtifactType(cls, "input" if origin is Input else "output")
    if isinstance(annotation, type) and issubclass(annotation, Artifact):
        raise TypeError(f"annotate artifacts as Input[{annotation.__name__}] or "
                        f"Output[{annotation.__name__}], not bare {annotation.__name__}")
    return None


def constant_type(value: Any) -> ParamType | None:
    """The parameter type of a Python constant passed as an argument; None if unsupported."""
    kind = PARAM_KINDS.get(type(value))
    if kind is None and isinstance(value, tuple):
        kind = "list"
    return ParamType(kind) if kind else None


def accepts(target: ParamType, source: ParamType) -> bool:
    """Whether a parameter of type ``target`` accepts a value of type ``source``."""
    if "any" in (target.kind, source.kind) or target.kind == source.kind:
        if target.kind == source.kind == "list" and target.items and source.items:
            return "any" in (target.items, source.items) or target.items == source.items or (
                target.items == "float" and source.items == "int")
        return True
    return target.kind == "float" and source.kind == "int"


def encode_constant(value: Any) -> str:
    """A constant as Argo parameter text, the way the runtime decodes it."""
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


__all__ = [
    "HTML", "Artifact", "ArtifactType", "ClassificationMetrics", "Dataset", "Input",
    "Markdown", "Metrics", "Model", "Output", "ParamType", "accepts", "artifact_type",
    "constant_type", "encode_constant", "param_type",
]
