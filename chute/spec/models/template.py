"""Templates: the units of work of a workflow, and the DAG tasks and steps that call them."""

from __future__ import annotations

from pydantic import Field

from chute.spec.models.base import IntOrString, K8s, Metadata, Model, Str
from chute.spec.models.container import (
    Container,
    ContainerSetTemplate,
    ScriptTemplate,
    UserContainer,
)
from chute.spec.models.io import (
    Arguments,
    Artifact,
    ArtifactLocation,
    Inputs,
    Item,
    Outputs,
    Sequence,
)

#: The template kinds, in the order Argo checks them; exactly one is set on a template.
TEMPLATE_KINDS = ("container", "script", "dag", "steps", "suspend", "resource", "http",
                  "containerSet", "data", "plugin")


class Backoff(Model):
    """Delay between retries: ``duration`` * ``factor`` ** n, capped by ``maxDuration``."""

    cap: str | None = None
    duration: IntOrString | None = None
    factor: IntOrString | None = None
    maxDuration: str | None = None


class RetryStrategy(Model):
    """How often and when a failed node is retried (``limit`` counts retries, not tries)."""

    affinity: K8s | None = None
    backoff: Backoff | None = None
    expression: str | None = None
    limit: IntOrString | None = None
    retryPolicy: str | None = None


class Cache(Model):
    """Where memoized results live (a ConfigMap on Argo; the metadata store locally)."""

    configMap: K8s


class Memoize(Model):
    """Reuse the outputs of an earlier run of the same template with the same ``key``."""

    cache: Cache
    key: str
    maxAge: str


class ContinueOn(Model):
    """Let the workflow go on when this node fails or errors."""

    error: bool | None = None
    failed: bool | None = None


class TemplateRef(Model):
    """A reference to a template of a WorkflowTemplate (or ClusterWorkflowTemplate)."""

    clusterScope: bool | None = None
    name: str | None = None
    template: str | None = None


class LifecycleHook(Model):
    """A template run when the workflow, or a step or task, reaches a condition."""

    arguments: Arguments | None = None
    expression: str | None = None
    template: str | None = None
    templateRef: TemplateRef | None = None


class SuspendTemplate(Model):
    """Pause: for ``duration``, or until resumed when no duration is given."""

    duration: Str | None = None


class ResourceTemplate(Model):
    """Create or change a Kubernetes resource (refused by the local runtime)."""

    action: str
    failureCondition: str | None = None
    flags: list[str] | None = None
    manifest: str | None = None
    manifestFrom: K8s | None = None
    mergeStrategy: str | None = None
    setOwnerReference: bool | None = None
    successCondition: str | None = None


class HTTPTemplate(Model):
    """Make an HTTP request as a step."""

    body: str | None = None
    bodyFrom: K8s | None = None
    headers: list[K8s] | None = None
    insecureSkipVerify: bool | None = None
    method: str | None = None
    successCondition: str | None = None
    timeoutSeconds: int | None = None
    url: str


class DataTemplate(Model):
    """Transform a list of artifact paths with expressions."""

    source: K8s
    transformation: list[K8s]


class _Call(Model):
    """What DAG tasks and steps share: which template to call, with what, how often."""

    arguments: Arguments | None = None
    continueOn: ContinueOn | None = None
    hooks: dict[str, LifecycleHook] | None = None
    inline: Template | None = None
    name: str | None = None
    onExit: str | None = None
    template: str | None = None
    templateRef: TemplateRef | None = None
    when: str | None = None
    withItems: list[Item] | None = None
    withParam: str | None = None
    withSequence: Sequence | None = None


class WorkflowStep(_Call):
    """One step of a ``steps`` template (steps in the same inner list run in parallel)."""


class DAGTask(_Call):
    """One task of a ``dag`` template."""

    name: str  # type: ignore[assignment]
    dependencies: list[str] | None = None
    depends: str | None = None


class DAGTemplate(Model):
    """A directed acyclic graph of tasks."""

    failFast: bool | None = None
    target: str | None = None
    tasks: list[DAGTask]


class Template(Model):
    """A unit of work: exactly one of the kinds in ``TEMPLATE_KINDS``, plus its I/O."""

    name: str | None = None
    activeDeadlineSeconds: IntOrString | None = None
    affinity: K8s | None = None
    annotations: dict[str, Str] | None = None
    archiveLocation: ArtifactLocation | None = None
    automountServiceAccountToken: bool | None = None
    container: Container | None = None
    containerSet: ContainerSetTemplate | None = None
    daemon: bool | None = None
    dag: DAGTemplate | None = None
    data: DataTemplate | None = None
    executor: K8s | None = None
    failFast: bool | None = None
    hostAliases: list[K8s] | None = None
    http: HTTPTemplate | None = None
    initContainers: list[UserContainer] | None = None
    inputs: Inputs | None = None
    memoize: Memoize | None = None
    metadata: Metadata | None = None
    metrics: K8s | None = None
    nodeSelector: dict[str, Str] | None = None
    outputs: Outputs | None = None
    parallelism: int | None = None
    pendingTimeout: str | None = None
    plugin: K8s | None = None
    podResources: K8s | None = None
    podSpecPatch: str | None = None
    priorityClassName: str | None = None
    resource: ResourceTemplate | None = None
    resourceClaims: list[K8s] | None = None
    retryStrategy: RetryStrategy | None = None
    schedulerName: str | None = None
    script: ScriptTemplate | None = None
    securityContext: K8s | None = None
    serviceAccountName: str | None = None
    sidecars: list[UserContainer] | None = None
    steps: list[list[WorkflowStep]] | None = None
    suspend: SuspendTemplate | None = None
    synchronization: K8s | None = None
    timeout: str | None = None
    tolerations: list[K8s] | None = None
    volumes: list[K8s] | None = None

    @property
    def kind(self) -> str | None:
        """The template kind (``container``, ``dag``, ...), or None if none is set."""
        for k in TEMPLATE_KINDS:
            if getattr(self, k) is not None:
                return k
        return None

    @property
    def kinds(self) -> list[str]:
        """Every kind set on this template (more than one is a spec error)."""
        return [k for k in TEMPLATE_KINDS if getattr(self, k) is not None]

    def input_parameter_names(self) -> list[str]:
        """Names of the declared input parameters."""
        return [p.name for p in (self.inputs.parameters or [])] if self.inputs else []

    def input_artifacts(self) -> list[Artifact]:
        """The declared input artifacts."""
        return list(self.inputs.artifacts or []) if self.inputs else []


_Call.model_rebuild()
WorkflowStep.model_rebuild()
DAGTask.model_rebuild()
DAGTemplate.model_rebuild()
Template.model_rebuild()
