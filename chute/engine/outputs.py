"""Outputs of DAG and steps templates, taken from their children when they finish
(``valueFrom.parameter``, ``valueFrom.expression``, ``valueFrom.default``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chute.engine.vars import substitute, unresolved
from chute.errors import ExpressionError
from chute.spec import expr


def compound_outputs(tmpl: Mapping[str, Any], ctx: Mapping[str, str]
                     ) -> tuple[dict[str, Any], str | None]:
    """Outputs in Argo's shape and an error message if one cannot be resolved."""
    params = []
    for p in ((tmpl.get("outputs") or {}).get("parameters") or []):
        vf = p.get("valueFrom") or {}
        value = None
        try:
            if vf.get("parameter"):
                value = substitute(vf["parameter"], ctx)
                if unresolved(value):
                    value = None
            elif vf.get("expression"):
                try:
                    value = expr.format_result(expr.evaluate(vf["expression"], ctx))
                except ExpressionError:
                    value = None
            elif p.get("value") is not None:
                value = substitute(str(p["value"]), ctx)
        except ExpressionError as exc:
            return {}, f"outputs.parameters.{p['name']}: {exc}"
        if value is None and vf.get("default") is not None:
            value = vf["default"]
        if value is None:
            return {}, f"outputs.parameters.{p['name']}: cannot resolve {vf or p.get('value')}"
        entry = {"name": p["name"], "value": value}
        if p.get("globalName"):
            entry["globalName"] = p["globalName"]
        params.append(entry)
    out: dict[str, Any] = {}
    if params:
        out["parameters"] = params
    arts = []
    for a in ((tmpl.get("outputs") or {}).get("artifacts") or []):
        src = a.get("from")
        if src:
            ref = substitute(src, ctx)
            if not unresolved(ref):
                import json

                try:
                    arts.append({**json.loads(ref), "name": a["name"]})
                except (ValueError, TypeError):
                    pass
    if arts:
        out["artifacts"] = arts
    return out, None
