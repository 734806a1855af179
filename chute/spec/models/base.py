"""Shared pieces of the spec models: the strict base class and loose Kubernetes types.

Attribute names are Argo's JSON names (``withItems``, ``retryStrategy``), so a reader of
Argo's docs can guess them; the only exception is ``from`` (a Python keyword), spelled
``from_`` with the alias ``from``. Kubernetes types that chute only carries along
(affinity, probes, security contexts, resources, volumes) are plain mappings: chute does
not interpret them, and ``chute lint --runtime local`` reports the ones it cannot honour.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


class Model(BaseModel):
    """Base of every spec model: unknown fields are errors, aliases and names both load."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)


def _int_or_string(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected an integer or a string, got a boolean")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    raise ValueError(f"expected an integer or a string, got {type(value).__name__}")


def _stringish(value: Any) -> Any:
    """Argo's string fields (parameter values) accept YAML scalars; keep them as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


#: Kubernetes' IntOrString: Argo accepts both ``10`` and ``"10"``; chute keeps the text form
#: (``"10"``), which is what Argo's JSON schema types it as. Read numbers with :func:`as_int`.
IntOrString = Annotated[str, BeforeValidator(_int_or_string)]
#: A string that YAML may have typed as a number or boolean (``value: 5``).
Str = Annotated[str, BeforeValidator(_stringish)]
#: A Kubernetes object chute carries along without interpreting it.
K8s = dict[str, Any]


def _int_or_string_at(*paths: tuple[str, ...]) -> BeforeValidator:
    """Text form for the IntOrString fields at ``paths`` inside a loose Kubernetes object
    (probe ports, PDB sizes), as :data:`IntOrString` does, so dumps match Argo's schema."""

    def parent(obj: Any, path: tuple[str, ...]) -> dict[str, Any] | None:
        for key in path[:-1]:
            obj = obj.get(key) if isinstance(obj, dict) else None
        return obj if isinstance(obj, dict) else None

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def fix(value: Any) -> Any:
        if not isinstance(value, dict) or not any(
                is_int((parent(value, p) or {}).get(p[-1])) for p in paths):
            return value
        out = copy.deepcopy(value)  # never change the caller's data
        for p in paths:
            node = parent(out, p)
            if node is not None and is_int(node.get(p[-1])):
                node[p[-1]] = str(node[p[-1]])
        return out

    return BeforeValidator(fix)


#: A Kubernetes probe (``httpGet.port`` and ``tcpSocket.port`` are IntOrString).
K8sProbe = Annotated[K8s, _int_or_string_at(("httpGet", "port"), ("tcpSocket", "port"))]
#: A container's lifecycle handlers (their ports are IntOrString).
K8sLifecycle = Annotated[K8s, _int_or_string_at(
    *[(h, a, "port") for h in ("postStart", "preStop") for a in ("httpGet", "tcpSocket")])]
#: A PodDisruptionBudget spec (``minAvailable`` and ``maxUnavailable`` are IntOrString).
K8sPDB = Annotated[K8s, _int_or_string_at(("minAvailable",), ("maxUnavailable",))]


def as_int(value: str | int | None, default: int | None = None) -> int | None:
    """The integer of an IntOrString field (``None`` gives ``default``)."""
    if value is None:
        return default
    return int(value)


class ObjectMeta(Model):
    """Kubernetes object metadata (only what workflows use; the rest is kept loosely)."""

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    labels: dict[str, Str] | None = None
    annotations: dict[str, Str] | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    creationTimestamp: str | None = None
    generation: int | None = None
    ownerReferences: list[K8s] | None = None
    finalizers: list[str] | None = None
    managedFields: list[K8s] | None = None
    deletionTimestamp: str | None = None


class Metadata(Model):
    """Pod metadata of a template: labels and annotations."""

    annotations: dict[str, Str] | None = None
    labels: dict[str, Str] | None = None


class SecretKeySelector(Model):
    """A reference to one key of a (Kubernetes or chute) secret."""

    name: str | None = None
    key: str
    optional: bool | None = None


class ConfigMapKeySelector(Model):
    """A reference to one key of a Kubernetes ConfigMap (not available locally)."""

    name: str | None = None
    key: str
    optional: bool | None = None
