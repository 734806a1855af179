"""Template inputs from a call's arguments (defaults, enums), as Argo's ProcessArgs does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chute.engine.vars import layered, substitute, substitute_all
from chute.errors import ParameterError, UnsupportedError


def resolve_inputs(
    tmpl: Mapping[str, Any], arguments: Mapping[str, Any] | None, ctx: Mapping[str, str]
) -> dict[str, Any]:
    """The node's inputs in Argo's shape (``{"parameters": [{name, value}], "artifacts": [...]}``).

    An argument overrides the template's value/default; a parameter left without a value,
    or a value outside ``enum``, raises ParameterError naming the parameter.
    """
    if not tmpl.get("inputs"):  # most SDK steps, every chain's: nothing to resolve
        return {}
    args = {p["name"]: p for p in ((arguments or {}).get("parameters") or [])}
    where = f"template {tmpl.get('name') or '(inline)'}"
    params: list[dict[str, Any]] = []
    for p in ((tmpl.get("inputs") or {}).get("parameters") or []):
        name = p["name"]
        value = p.get("value")
        if value is None and p.get("default") is not None:
            value = p["default"]
        arg = args.get(name)
        if arg is not None:
            if arg.get("value") is not None:
                value = arg["value"]
            elif (arg.get("valueFrom") or {}).get("default") is not None:
                value = arg["valueFrom"]["default"]
            elif arg.get("valueFrom"):
                raise UnsupportedError(
                    f"not supported locally: valueFrom of argument {name!r} ({where})")
        if value is None and (p.get("valueFrom") or {}).get("default") is not None:
            value = p["valueFrom"]["default"]
        if value is None:
            raise ParameterError(f"inputs.parameters.{name} was not supplied ({where})")
        value = substitute(str(value), ctx)
        enum = p.get("enum")
        if enum and value not in [str(e) for e in enum]:
            raise ParameterError(
                f"inputs.parameters.{name}: value {value!r} is not one of "
                f"{', '.join(map(str, enum))} ({where})")
        entry = {"name": name, "value": value}
        if p.get("enum"):
            entry["enum"] = list(p["enum"])
        if p.get("description"):
            entry["description"] = p["description"]
        params.append(entry)
    out: dict[str, Any] = {}
    if params:
        out["parameters"] = params
    if (tmpl.get("inputs") or {}).get("artifacts"):  # most templates declare none
        arts = _resolve_input_artifacts(tmpl, arguments, layered(
            {f"inputs.parameters.{p['name']}": p["value"] for p in params}, ctx))
        if arts:
            out["artifacts"] = arts
    return out


def _resolve_input_artifacts(tmpl: Mapping[str, Any], arguments: Mapping[str, Any] | None,
                             ctx: Mapping[str, str]) -> list[dict]:
    """Input artifacts: the template's declaration overlaid with the call's argument.

    The declaration's own fields (a key-only ``s3.key: "{{workflow.name}}/results"``) are
    substituted with the workflow variables and the template's input parameters, as Argo
    substitutes the whole template; the call's argument was substituted by the caller.
    """
    given = {a["name"]: a for a in ((arguments or {}).get("artifacts") or [])}
    out = []
    for a in ((tmpl.get("inputs") or {}).get("artifacts") or []):
        a = substitute_all(a, ctx)
        merged = {**a, **{k: v for k, v in given.get(a["name"], {}).items() if k != "name"}}
        if "path" in a:
            merged["path"] = a["path"]  # the template decides where it lands
        out.append(merged)
    return out
