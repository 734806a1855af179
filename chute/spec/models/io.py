"""Inputs and outputs: parameters, artifacts and their locations, arguments."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from chute.spec.models.base import (
    K8s,
    ConfigMapKeySelector,
    IntOrString,
    Model,
    SecretKeySelector,
    Str,
)


class SuppliedValueFrom(Model):
    """Marks a parameter whose value is supplied at resume time (intermediate parameters)."""


class ValueFrom(Model):
    """Where an output (or input) parameter's value comes from."""

    configMapKeyRef: ConfigMapKeySelector | None = None
    default: Str | None = None
    event: str | None = None
    expression: str | None = None
    jqFilter: str | None = None
    jsonPath: str | None = None
    parameter: str | None = None
    path: str | None = None
    supplied: SuppliedValueFrom | None = None


class Parameter(Model):
    """A named string value passed into or out of a template."""

    name: str
    default: Str | None = None
    description: str | None = None
    enum: list[Str] | None = None
    globalName: str | None = None
    value: Str | None = None
    valueFrom: ValueFrom | None = None


class TarStrategy(Model):
    """Archive as tar, gzip-compressed at the given level."""

    compressionLevel: int | None = None


class NoneStrategy(Model):
    """Do not archive: store the file as it is."""


class ZipStrategy(Model):
    """Archive as zip."""


class ArchiveStrategy(Model):
    """How an output artifact is packed (tar+gzip when unset, as Argo does)."""

    none: NoneStrategy | None = None
    tar: TarStrategy | None = None
    zip: ZipStrategy | None = None


class S3Artifact(Model):
    """An artifact in an S3-compatible store (S3, MinIO, Ceph RGW)."""

    accessKeySecret: SecretKeySelector | None = None
    addressingStyle: str | None = None
    bucket: str | None = None
    caSecret: SecretKeySelector | None = None
    createBucketIfNotPresent: K8s | None = None
    encryptionOptions: K8s | None = None
    endpoint: str | None = None
    insecure: bool | None = None
    key: str | None = None
    region: str | None = None
    roleARN: str | None = None
    secretKeySecret: SecretKeySelector | None = None
    sessionTokenSecret: SecretKeySelector | None = None
    useSDKCreds: bool | None = None


class Header(Model):
    """An HTTP header."""

    name: str
    value: str | None = None


class HTTPArtifact(Model):
    """An artifact fetched over HTTP(S)."""

    auth: K8s | None = None
    headers: list[Header] | None = None
    saveStreamViaFile: bool | None = None
    url: str


class GitArtifact(Model):
    """An artifact checked out from a git repository."""

    branch: str | None = None
    depth: int | None = None
    disableSubmodules: bool | None = None
    fetch: list[str] | None = None
    insecureIgnoreHostKey: bool | None = None
    insecureSkipTLS: bool | None = None
    passwordSecret: SecretKeySelector | None = None
    repo: str
    revision: str | None = None
    singleBranch: bool | None = None
    sshPrivateKeySecret: SecretKeySelector | None = None
    usernameSecret: SecretKeySelector | None = None


class RawArtifact(Model):
    """An artifact given inline."""

    data: Str


class ArtifactGC(Model):
    """Per-artifact garbage-collection strategy."""

    podMetadata: K8s | None = None
    serviceAccountName: str | None = None
    strategy: str | None = None


class Artifact(Model):
    """A file or directory passed into or out of a template."""

    name: str
    archive: ArchiveStrategy | None = None
    archiveLogs: bool | None = None
    artifactGC: ArtifactGC | None = None
    artifactory: K8s | None = None
    azure: K8s | None = None
    deleted: bool | None = None
    from_: str | None = Field(default=None, alias="from")
    fromExpression: str | None = None
    gcs: K8s | None = None
    git: GitArtifact | None = None
    globalName: str | None = None
    hdfs: K8s | None = None
    http: HTTPArtifact | None = None
    mode: int | None = None
    optional: bool | None = None
    oss: K8s | None = None
    path: str | None = None
    plugin: K8s | None = None
    raw: RawArtifact | None = None
    recurseMode: bool | None = None
    s3: S3Artifact | None = None
    subPath: str | None = None

    @property
    def location_kind(self) -> str | None:
        """Which location field is set (s3, http, git, raw, gcs, ...), if any."""
        for kind in ("s3", "http", "git", "raw", "gcs", "azure", "hdfs", "oss", "artifactory",
                     "plugin"):
            if getattr(self, kind) is not None:
                return kind
        return None


class ArtifactLocation(Model):
    """Where artifacts (or archived logs) of a template are stored."""

    archiveLogs: bool | None = None
    artifactory: K8s | None = None
    azure: K8s | None = None
    gcs: K8s | None = None
    git: GitArtifact | None = None
    hdfs: K8s | None = None
    http: HTTPArtifact | None = None
    oss: K8s | None = None
    plugin: K8s | None = None
    raw: RawArtifact | None = None
    s3: S3Artifact | None = None


class Inputs(Model):
    """What a template takes."""

    artifacts: list[Artifact] | None = None
    parameters: list[Parameter] | None = None


class Outputs(Model):
    """What a template produces."""

    artifacts: list[Artifact] | None = None
    exitCode: str | None = None
    parameters: list[Parameter] | None = None
    result: str | None = None


class Arguments(Model):
    """Values given to a template or a workflow."""

    artifacts: list[Artifact] | None = None
    parameters: list[Parameter] | None = None


class Sequence(Model):
    """A numeric loop: ``count`` or ``start``..``end``, rendered with ``format``."""

    count: IntOrString | None = None
    end: IntOrString | None = None
    format: str | None = None
    start: IntOrString | None = None


#: One item of ``withItems``: a scalar, a list or a map.
Item = Any
