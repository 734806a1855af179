"""The Argo resources chute understands: Workflow, WorkflowTemplate,
ClusterWorkflowTemplate and CronWorkflow, and the WorkflowSpec they share."""

from __future__ import annotations

from typing import Any, Literal

from chute.spec.models.base import K8s, K8sPDB, Metadata, Model, ObjectMeta, Str
from chute.spec.models.io import Arguments, ArtifactLocation
from chute.spec.models.template import LifecycleHook, RetryStrategy, Template

API_VERSION = "argoproj.io/v1alpha1"


class WorkflowTemplateRef(Model):
    """Run a stored WorkflowTemplate as this workflow's spec."""

    clusterScope: bool | None = None
    name: str | None = None


class ArtifactRepositoryRef(Model):
    """Which artifact repository (ConfigMap key on Argo) the workflow uses."""

    configMap: str | None = None
    key: str | None = None


class TTLStrategy(Model):
    """How long a finished workflow is kept."""

    secondsAfterCompletion: int | None = None
    secondsAfterFailure: int | None = None
    secondsAfterSuccess: int | None = None


class PodGC(Model):
    """When finished pods are deleted (Kubernetes only)."""

    deleteDelayDuration: str | None = None
    labelSelector: K8s | None = None
    strategy: str | None = None


class WorkflowLevelArtifactGC(Model):
    """When the workflow's artifacts are garbage-collected."""

    forceFinalizerRemoval: bool | None = None
    podMetadata: Metadata | None = None
    podSpecPatch: str | None = None
    serviceAccountName: str | None = None
    strategy: str | None = None


class WorkflowMetadata(Model):
    """Labels and annotations put on the workflow itself."""

    annotations: dict[str, Str] | None = None
    labels: dict[str, Str] | None = None
    labelsFrom: dict[str, K8s] | None = None


class WorkflowSpec(Model):
    """What a workflow runs: its templates, entry point, arguments and policies."""

    activeDeadlineSeconds: int | None = None
    affinity: K8s | None = None
    archiveLogs: bool | None = None
    arguments: Arguments | None = None
    artifactGC: WorkflowLevelArtifactGC | None = None
    artifactRepositoryRef: ArtifactRepositoryRef | None = None
    automountServiceAccountToken: bool | None = None
    dnsConfig: K8s | None = None
    dnsPolicy: str | None = None
    entrypoint: str | None = None
    executor: K8s | None = None
    executorPlugins: list[K8s] | None = None
    hooks: dict[str, LifecycleHook] | None = None
    hostAliases: list[K8s] | None = None
    hostNetwork: bool | None = None
    imagePullSecrets: list[K8s] | None = None
    metrics: K8s | None = None
    nodeSelector: dict[str, Str] | None = None
    onExit: str | None = None
    parallelism: int | None = None
    podDisruptionBudget: K8sPDB | None = None
    podGC: PodGC | None = None
    podMetadata: Metadata | None = None
    podPriorityClassName: str | None = None
    podResources: K8s | None = None
    podSpecPatch: str | None = None
    priority: int | None = None
    resourceClaims: list[K8s] | None = None
    retryStrategy: RetryStrategy | None = None
    schedulerName: str | None = None
    securityContext: K8s | None = None
    serviceAccountName: str | None = None
    shutdown: str | None = None
    suspend: bool | None = None
    synchronization: K8s | None = None
    templateDefaults: Template | None = None
    templates: list[Template] | None = None
    tolerations: list[K8s] | None = None
    ttlStrategy: TTLStrategy | None = None
    volumeClaimGC: K8s | None = None
    volumeClaimTemplates: list[K8s] | None = None
    volumes: list[K8s] | None = None
    workflowMetadata: WorkflowMetadata | None = None
    workflowTemplateRef: WorkflowTemplateRef | None = None

    def template(self, name: str) -> Template | None:
        """The template called ``name``, or None."""
        for t in self.templates or []:
            if t.name == name:
                return t
        return None


class _Resource(Model):
    """Fields every Argo resource has."""

    apiVersion: str = API_VERSION
    kind: str
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        """The resource's name (or its generateName prefix when it has no name yet)."""
        return self.metadata.name or self.metadata.generateName or ""


class Workflow(_Resource):
    """An Argo Workflow: a spec to run now (status is kept so ``get -o yaml`` round-trips)."""

    kind: Literal["Workflow"] = "Workflow"
    spec: WorkflowSpec
    status: dict[str, Any] | None = None


class WorkflowTemplate(_Resource):
    """A stored workflow spec that workflows run or reference templates of."""

    kind: Literal["WorkflowTemplate"] = "WorkflowTemplate"
    spec: WorkflowSpec


class ClusterWorkflowTemplate(_Resource):
    """A cluster-wide WorkflowTemplate (one namespace locally)."""

    kind: Literal["ClusterWorkflowTemplate"] = "ClusterWorkflowTemplate"
    spec: WorkflowSpec


class StopStrategy(Model):
    """When a CronWorkflow stops scheduling."""

    expression: str


class CronWorkflowSpec(Model):
    """A schedule and the workflow spec it starts."""

    concurrencyPolicy: str | None = None
    failedJobsHistoryLimit: int | None = None
    schedule: str | None = None  # older single-schedule form, still accepted by Argo
    schedules: list[str] | None = None
    startingDeadlineSeconds: int | None = None
    stopStrategy: StopStrategy | None = None
    successfulJobsHistoryLimit: int | None = None
    suspend: bool | None = None
    timezone: str | None = None
    when: str | None = None
    workflowMetadata: ObjectMeta | None = None
    workflowSpec: WorkflowSpec


class CronWorkflow(_Resource):
    """Starts a Workflow on a cron schedule."""

    kind: Literal["CronWorkflow"] = "CronWorkflow"
    spec: CronWorkflowSpec
    status: dict[str, Any] | None = None


#: Every resource kind chute loads, by ``kind``.
RESOURCE_KINDS: dict[str, type[_Resource]] = {
    "Workflow": Workflow,
    "WorkflowTemplate": WorkflowTemplate,
    "ClusterWorkflowTemplate": ClusterWorkflowTemplate,
    "CronWorkflow": CronWorkflow,
}

Resource = Workflow | WorkflowTemplate | ClusterWorkflowTemplate | CronWorkflow


def spec_of(resource: Resource) -> WorkflowSpec:
    """The WorkflowSpec inside any resource (a CronWorkflow's ``workflowSpec``)."""
    if isinstance(resource, CronWorkflow):
        return resource.spec.workflowSpec
    return resource.spec
