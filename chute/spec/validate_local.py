"""What the local runtime cannot honour, as data: :data:`LOCAL_UNSUPPORTED`.

``validate(resource, runtime="local")`` reports each match as
``not supported locally: <field> at <place>``; the engine's submit path calls it, so a
spec is refused before anything runs. Fields the local engine can safely ignore
(CATALOGUE.md's ``H*`` notes: pod metadata, resources, nodeSelector, tolerations, podGC,
ttlStrategy, podDisruptionBudget, dnsConfig, podSpecPatch, imagePullSecrets,
serviceAccountName, securityContext, memoize's ConfigMap name, mutexes) are not listed:
they are no error. When the engine learns to run something listed here (container sets,
daemons, sidecars, ...), delete its row.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chute.errors import Issue
from chute.spec.models import CronWorkflow, Resource, spec_of


@dataclass(frozen=True)
class Unsupported:
    """One thing the local runtime refuses.

    ``pattern`` is a glob over the field's path inside the WorkflowSpec with
    list indices written ``[]`` (``templates[].resource``; ``*`` spans dots). ``label``
    names it in the message (a callable gets the field's value and returns the label, or
    None when this value is fine). ``reason`` says why (CATALOGUE.md's Host column).
    """

    pattern: str
    label: str | Callable[[Any], str | None]
    reason: str


# Template holders: a spec's templates, inline templates of steps and tasks, and defaults.
_HOLDERS = ("templates[]", "*.inline", "templateDefaults")
_OTHER_STORES = ("gcs", "azure", "hdfs", "oss", "artifactory", "plugin")
_LOCAL_VOLUMES = ("name", "emptyDir")  # emptyDir becomes a private temporary directory


def _is_true(label: str) -> Callable[[Any], str | None]:
    return lambda value: label if value is True else None


def _volume(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    other = [k for k in value if k not in _LOCAL_VOLUMES]
    return f"{other[0]} volume" if other else None


def _templates(kind: str, label: str, reason: str) -> list[Unsupported]:
    return [Unsupported(f"{h}.{kind}", label, reason) for h in _HOLDERS]


#: The table, first match wins (more specific rows first). Paths are relative to the
#: WorkflowSpec (``spec`` of a Workflow, ``spec.workflowSpec`` of a CronWorkflow).
LOCAL_UNSUPPORTED: tuple[Unsupported, ...] = (
    # Kubernetes-only (K8S in CATALOGUE.md)
    *_templates("resource", "resource template", "creates Kubernetes objects with kubectl"),
    *_templates("plugin", "plugin template", "executor plugins run as Kubernetes agent pods"),
    *_templates("data", "data template", "runs in the Argo agent pod"),
    Unsupported("volumeClaimTemplates", "volumeClaimTemplates (PersistentVolumeClaim)",
                "PersistentVolumeClaims need Kubernetes"),
    Unsupported("volumes[]", _volume, "only emptyDir volumes exist locally"),
    Unsupported("*volumes[]", _volume, "only emptyDir volumes exist locally"),
    Unsupported("*synchronization.semaphores[].configMapKeyRef", "ConfigMap semaphore",
                "semaphore limits live in a Kubernetes ConfigMap"),
    Unsupported("*synchronization.semaphore.configMapKeyRef", "ConfigMap semaphore",
                "semaphore limits live in a Kubernetes ConfigMap"),
    Unsupported("*synchronization.semaphores[].database", "database semaphore",
                "needs Argo's controller database"),
    Unsupported("*synchronization.semaphore.database", "database semaphore",
                "needs Argo's controller database"),
    Unsupported("*synchronization.mutexes[].database", "database mutex",
                "needs Argo's controller database"),
    Unsupported("*synchronization.mutex.database", "database mutex",
                "needs Argo's controller database"),
    Unsupported("*.configMapKeyRef", "ConfigMap reference (configMapKeyRef)",
                "ConfigMaps are Kubernetes objects"),
    Unsupported("*envFrom[].configMapRef", "ConfigMap reference (envFrom.configMapRef)",
                "ConfigMaps are Kubernetes objects"),
    Unsupported("*envFrom[].secretRef", "whole-Secret environment (envFrom.secretRef)",
                "use env[].valueFrom.secretKeyRef with chute's secret store"),
    Unsupported("artifactRepositoryRef", "artifactRepositoryRef",
                "artifact repositories are read from a Kubernetes ConfigMap"),
    Unsupported("resourceClaims", "resourceClaims (dynamic resource allocation)",
                "device claims need Kubernetes"),
    Unsupported("*.resourceClaims", "resourceClaims (dynamic resource allocation)",
                "device claims need Kubernetes"),
    # Network stores and services chute has no driver for (NET in CATALOGUE.md)
    *_templates("http", "http template", "HTTP templates run in the Argo agent pod"),
    *[Unsupported(f"*artifacts[].{s}", f"{s} artifact",
                  "chute's artifact stores are the default repository, s3, http, git, raw")
      for s in _OTHER_STORES],
    *[Unsupported(f"*archiveLocation.{s}", f"{s} archive location",
                  "chute's artifact stores are the default repository, s3, http, git, raw")
      for s in _OTHER_STORES],
    # Pending engine support (H* in CATALOGUE.md): delete a row once the engine runs it.
    *_templates("containerSet", "containerSet template",
                "the local engine does not run container sets yet"),
    *[Unsupported(f"{h}.daemon", _is_true("daemon template"),
                  "the local engine does not run daemons yet") for h in _HOLDERS],
    *_templates("sidecars", "sidecars", "the local engine does not run sidecars yet"),
    *_templates("initContainers", "initContainers",
                "the local engine does not run init containers yet"),
)


def _dump(resource: Resource) -> Any:
    return spec_of(resource).model_dump(mode="json", by_alias=True, exclude_none=True)


def local_issues(resource: Resource,
                 table: tuple[Unsupported, ...] = LOCAL_UNSUPPORTED) -> list[Issue]:
    """One issue per field of ``resource`` that the local runtime cannot honour."""
    base = "spec.workflowSpec" if isinstance(resource, CronWorkflow) else "spec"
    issues: list[Issue] = []
    # (value, real path, pattern path); iterative so deep specs cannot recurse too far
    stack: list[tuple[Any, str, str]] = [(_dump(resource), base, "")]
    while stack:
        value, real, norm = stack.pop()
        if norm:
            hit = _match(table, norm, value)
            if hit is not None:
                issues.append(Issue(real, f"not supported locally: {hit} at {real}"))
                continue
        if isinstance(value, dict):
            for k, v in reversed(list(value.items())):
                stack.append((v, f"{real}.{k}", f"{norm}.{k}" if norm else str(k)))
        elif isinstance(value, list):
            for i in range(len(value) - 1, -1, -1):
                stack.append((value[i], f"{real}[{i}]", f"{norm}[]"))
    return issues


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1].lstrip("*")


@functools.cache
def _rows_by_key(table: tuple[Unsupported, ...]) -> dict[str, list[tuple[re.Pattern[str],
                                                                        Unsupported]]]:
    """Rows grouped by the last path segment they match, with compiled patterns."""
    index: dict[str, list[tuple[re.Pattern[str], Unsupported]]] = {}
    for row in table:
        rx = re.compile(re.escape(row.pattern).replace(r"\*", ".*"))
        index.setdefault(_last(row.pattern), []).append((rx, row))
    return index


def _match(table: tuple[Unsupported, ...], norm: str, value: Any) -> str | None:
    for rx, row in _rows_by_key(table).get(_last(norm), ()):
        if rx.fullmatch(norm):
            label = row.label(value) if callable(row.label) else row.label
            if label is not None:
                return label
    return None
