"""Processes a template runs: containers, scripts, container sets, and their environment.

The local runtime runs ``command``/``args`` (or ``source``) as host processes with
``env`` and ``workingDir``; the image is recorded, not pulled. Kubernetes-only fields
(probes, security contexts, resources, ports, mounts) are carried along loosely.
"""

from __future__ import annotations

from chute.spec.models.base import (
    ConfigMapKeySelector,
    IntOrString,
    K8s,
    K8sLifecycle,
    K8sProbe,
    Model,
    SecretKeySelector,
    Str,
)


class EnvVarSource(Model):
    """Where an environment variable's value comes from (a secret key, locally)."""

    configMapKeyRef: ConfigMapKeySelector | None = None
    fieldRef: K8s | None = None
    fileKeyRef: K8s | None = None
    resourceFieldRef: K8s | None = None
    secretKeyRef: SecretKeySelector | None = None


class EnvVar(Model):
    """One environment variable of a step."""

    name: str
    value: Str | None = None
    valueFrom: EnvVarSource | None = None


class _ContainerFields(Model):
    """The fields every container-like object shares (Kubernetes' Container)."""

    args: list[Str] | None = None
    command: list[Str] | None = None
    env: list[EnvVar] | None = None
    envFrom: list[K8s] | None = None
    image: str | None = None
    imagePullPolicy: str | None = None
    lifecycle: K8sLifecycle | None = None
    livenessProbe: K8sProbe | None = None
    name: str | None = None
    ports: list[K8s] | None = None
    readinessProbe: K8sProbe | None = None
    resizePolicy: list[K8s] | None = None
    resources: K8s | None = None
    restartPolicy: str | None = None
    restartPolicyRules: list[K8s] | None = None
    securityContext: K8s | None = None
    startupProbe: K8sProbe | None = None
    stdin: bool | None = None
    stdinOnce: bool | None = None
    terminationMessagePath: str | None = None
    terminationMessagePolicy: str | None = None
    tty: bool | None = None
    volumeDevices: list[K8s] | None = None
    volumeMounts: list[K8s] | None = None
    workingDir: str | None = None


class Container(_ContainerFields):
    """The main container of a ``container`` template."""


class UserContainer(_ContainerFields):
    """A sidecar or init container."""

    name: str  # type: ignore[assignment]
    mirrorVolumeMounts: bool | None = None


class ScriptTemplate(_ContainerFields):
    """A ``script`` template: ``source`` run by ``command`` (its stdout is the result)."""

    image: str  # type: ignore[assignment]
    source: str


class ContainerNode(_ContainerFields):
    """One container of a ``containerSet``, with its in-set dependencies."""

    name: str  # type: ignore[assignment]
    dependencies: list[str] | None = None


class ContainerSetRetryStrategy(Model):
    """Retries of the containers of a container set."""

    duration: str | None = None
    retries: IntOrString


class ContainerSetTemplate(Model):
    """Several containers in one pod, ordered by their dependencies."""

    containers: list[ContainerNode]
    retryStrategy: ContainerSetRetryStrategy | None = None
    volumeMounts: list[K8s] | None = None
