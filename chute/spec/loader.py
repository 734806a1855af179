"""Load Argo resources from YAML or JSON (one or many documents) and dump them back.

Loading is defensive: the input is untrusted. It refuses files over
:data:`MAX_SPEC_BYTES`, text that is not UTF-8 or holds NUL bytes, duplicate mapping keys,
YAML whose aliases expand past :data:`MAX_NODES` values (billion laughs), nesting deeper
than :data:`MAX_DEPTH`, and documents that are not Argo workflow resources. Every problem
of every document is reported at once, as one :class:`~chute.errors.SpecError` whose
issues name their place (``spec.templates[2].dag.tasks[1].name``).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from chute.errors import Issue, SpecError
from chute.spec.models import API_VERSION, RESOURCE_KINDS, Resource

MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 1_000_000
MAX_DEPTH = 100
MAX_DOCUMENTS = 1000


# libyaml's parser (when PyYAML has it) is ~10x faster than the pure-Python one: a spec
# at the size cap parses in well under a second. Construction stays the safe Python one.
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeBase):  # type: ignore[misc,valid-type]
    """PyYAML's safe loader, refusing duplicate keys."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML hook
        if not isinstance(node, yaml.MappingNode):  # e.g. "!!set a": PyYAML says why
            return super().construct_mapping(node, deep=deep)
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "mapping key is not a scalar", key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen[key] = True
        return super().construct_mapping(node, deep=deep)


# Timestamps stay strings (Argo fields are strings; PyYAML would make datetimes).
_StrictLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _check_shape(value: Any) -> str | None:
    """Walk the loaded value (following shared aliases) within the node and depth caps."""
    count = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            return (f"document expands to more than {MAX_NODES:,} values "
                    "(YAML aliases expanding exponentially?)")
        if depth > MAX_DEPTH:
            return f"nesting deeper than {MAX_DEPTH} levels"
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
        elif not isinstance(v, _JSON_SCALARS):
            # explicit YAML tags (!!binary, !!set, !!timestamp) make values JSON cannot
            # hold, and that Argo (which converts YAML to JSON) would not accept either
            return (f"a value of type {type(v).__name__} is not JSON data (remove the "
                    "YAML tag such as !!binary, !!set or !!timestamp)")
    return None


_JSON_SCALARS = (str, int, float, bool, type(None))


def _decode(data: str | bytes, source: str | None) -> str:
    size = len(data)
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            f"spec is {size / 1e6:.1f} MB; the limit is {MAX_SPEC_BYTES / 1e6:.1f} MB", source)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(
                f"not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                "is this a binary file?", source) from None
    else:
        text = data
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate: no file can hold it
            raise SpecError(f"not valid Unicode text (character {exc.start} is an unpaired "
                            "surrogate)", source) from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise SpecError(Issue(f"line {line}", "NUL byte in spec text"), source)
    if not text.strip():
        raise SpecError("empty spec: no document found", source)
    return text


def parse_documents(data: str | bytes, source: str | None = None) -> list[Any]:
    """Parse YAML or JSON text into plain Python values, one per document."""
    text = _decode(data, source)
    stripped = text.lstrip()
    json_error: json.JSONDecodeError | None = None
    if stripped[:1] in "{[":
        try:
            value = json.loads(text, object_pairs_hook=_json_object)
            docs = value if isinstance(value, list) else [value]
            return docs
        except json.JSONDecodeError as exc:
            json_error = exc  # flow-style YAML also starts with { or [
        except RecursionError:
            raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", source) from None
        except ValueError as exc:
            raise SpecError(str(exc), source) from None
    try:
        docs = [d for d in yaml.load_all(text, Loader=_StrictLoader) if d is not None]
    except yaml.MarkedYAMLError as exc:
        if json_error is not None:  # neither JSON nor YAML: JSON's message is the clearer
            where = f"line {json_error.lineno}, column {json_error.colno}"
            raise SpecError(Issue(where, f"invalid JSON: {json_error.msg}"), source) from None
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise SpecError(Issue(where, f"invalid YAML: {what}"), source) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", source) from None
    except RecursionError:
        raise SpecError(f"nesting deeper than {MAX_DEPTH} levels", source) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        # PyYAML's constructors raise these for explicitly tagged values that do not fit
        # their tag ("!!int x", "!!timestamp y"); the input is at fault, not chute.
        detail = str(exc)
        detail = detail if len(detail) <= 80 else detail[:77] + "..."
        raise SpecError(f"invalid YAML: a value does not fit its tag ({detail})",
                        source) from None
    if not docs:
        raise SpecError("empty spec: no document found", source)
    return docs


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"invalid JSON: duplicate key {k!r}")
        out[k] = v
    return out


def _expand_lists(docs: list[Any]) -> list[tuple[str, Any]]:
    """Flatten Kubernetes ``kind: List`` documents; label each document for messages."""
    out: list[tuple[str, Any]] = []
    for i, doc in enumerate(docs):
        label = f"document {i + 1}" if len(docs) > 1 else ""
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(
                doc.get("items"), list):
            for j, item in enumerate(doc["items"]):
                out.append((f"{label}{' ' if label else ''}items[{j}]", item))
        else:
            out.append((label, doc))
    return out


def load_documents(data: str | bytes, source: str | None = None) -> list[Resource]:
    """Load every Argo resource in ``data``; raise SpecError listing every problem."""
    docs = parse_documents(data, source)
    if len(docs) > MAX_DOCUMENTS:
        raise SpecError(f"{len(docs)} documents; the limit is {MAX_DOCUMENTS}", source)
    issues: list[Issue] = []
    resources: list[Resource] = []
    for label, doc in _expand_lists(docs):
        prefix = f"{label}: " if label else ""
        problem = _check_shape(doc)
        if problem:
            issues.append(Issue(label, problem))
            continue
        try:
            resources.append(load_resource(doc))
        except SpecError as exc:
            issues.extend(Issue(prefix + i.path if i.path else label, i.message)
                          if prefix else i for i in exc.issues)
    if issues:
        raise SpecError(issues, source)
    return resources


def load_resource(doc: Any) -> Resource:
    """Validate one parsed document as an Argo resource (Workflow, WorkflowTemplate, ...)."""
    if not isinstance(doc, dict):
        raise SpecError(f"not an Argo workflow resource: expected a mapping, "
                        f"got {type(doc).__name__}")
    kind = doc.get("kind")
    if not isinstance(kind, str) or kind not in RESOURCE_KINDS:
        known = ", ".join(RESOURCE_KINDS)
        raise SpecError(Issue("kind", f"not an Argo workflow resource (kind: {kind!r}); "
                                      f"chute loads {known}"))
    api = doc.get("apiVersion")
    if api != API_VERSION:
        raise SpecError(Issue("apiVersion", f"expected {API_VERSION!r}, got {api!r}"))
    model = RESOURCE_KINDS[kind]
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(_issues_from(exc, model)) from None
    except RecursionError:
        raise SpecError(f"nesting deeper than {MAX_DEPTH} levels") from None


def load_file(path: str | Path) -> list[Resource]:
    """Load every resource of a YAML or JSON file."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(
                f"spec is {size / 1e6:.1f} MB; the limit is {MAX_SPEC_BYTES / 1e6:.1f} MB",
                str(p))
        data = p.read_bytes()
    except FileNotFoundError:
        raise SpecError("no such file", str(p)) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", str(p)) from None
    except PermissionError:
        raise SpecError("permission denied", str(p)) from None
    return load_documents(data, str(p))


def to_dict(resource: BaseModel) -> dict[str, Any]:
    """The resource as plain JSON-ready data, in Argo's field names, without unset fields."""
    return resource.model_dump(mode="json", by_alias=True, exclude_none=True)


def dump_yaml(resources: BaseModel | list[BaseModel]) -> str:
    """Clean YAML (one document per resource) that Argo accepts."""
    items = resources if isinstance(resources, list) else [resources]
    return yaml.safe_dump_all([to_dict(r) for r in items], sort_keys=False,
                              allow_unicode=True, width=100)


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found by walking ``loc`` from ``model`` (for 'did you mean')."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part) or next(
            (f for f in current.model_fields.values() if f.alias == part), None)
        if field is None:
            return None
        ann = field.annotation
        # unwrap Optional / list / dict / Annotated down to a model class
        for _ in range(6):
            args = [a for a in typing.get_args(ann) if a is not type(None)]
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                break
            if not args:
                break
            ann = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)),
                       args[-1])
        current = ann
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _issues_from(exc: ValidationError, model: type[BaseModel]) -> list[Issue]:
    issues: list[Issue] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        # drop pydantic's union/validator tags from the location
        loc = tuple(p for p in err["loc"] if isinstance(p, int) or (
            isinstance(p, str) and not p.startswith(("function-", "union[", "tagged-union"))
            and p not in ("str", "int", "bool", "float", "list", "dict", "none")))
        path = _format_loc(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1]) if loc else "?"
            parent = _model_at(model, loc[:-1])
            hint = ""
            if parent is not None:
                names = [f.alias or n for n, f in parent.model_fields.items()]
                close = difflib.get_close_matches(name, names, n=1)
                if close:
                    hint = f" (did you mean {close[0]!r}?)"
            msg = f"unknown field {name!r}{hint}"
        elif kind == "missing":
            msg = "required field is missing"
        elif kind == "literal_error":
            msg = err["msg"]
        else:
            msg = f"{err['msg']} (got {_short(err.get('input'))})"
        key = (path, msg)
        if key not in seen:
            seen.add(key)
            issues.append(Issue(path, msg))
    return issues


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
