"""Typed models (pydantic v2, unknown fields refused) of the Argo resources chute runs.

Attribute names are Argo's JSON names; ``from`` is ``from_``. Load and dump with
:mod:`chute.spec.loader`.
"""

from chute.spec.models.base import (
    ConfigMapKeySelector,
    IntOrString,
    K8s,
    Metadata,
    Model,
    ObjectMeta,
    SecretKeySelector,
    as_int,
)
from chute.spec.models.container import (
    Container,
    ContainerNode,
    ContainerSetTemplate,
    EnvVar,
    EnvVarSource,
    ScriptTemplate,
    UserContainer,
)
from chute.spec.models.io import (
    ArchiveStrategy,
    Arguments,
    Artifact,
    ArtifactLocation,
    GitArtifact,
    HTTPArtifact,
    Inputs,
    Outputs,
    Parameter,
    RawArtifact,
    S3Artifact,
    Sequence,
    ValueFrom,
)
from chute.spec.models.template import (
    TEMPLATE_KINDS,
    Backoff,
    ContinueOn,
    DAGTask,
    DAGTemplate,
    HTTPTemplate,
    LifecycleHook,
    Memoize,
    ResourceTemplate,
    RetryStrategy,
    SuspendTemplate,
    Template,
    TemplateRef,
    WorkflowStep,
)
from chute.spec.models.workflow import (
    API_VERSION,
    RESOURCE_KINDS,
    ClusterWorkflowTemplate,
    CronWorkflow,
    CronWorkflowSpec,
    Resource,
    Workflow,
    WorkflowSpec,
    WorkflowTemplate,
    WorkflowTemplateRef,
    spec_of,
)

__all__ = [
    "API_VERSION", "RESOURCE_KINDS", "TEMPLATE_KINDS", "ArchiveStrategy", "Arguments",
    "Artifact", "ArtifactLocation", "Backoff", "ClusterWorkflowTemplate",
    "ConfigMapKeySelector", "Container", "ContainerNode", "ContainerSetTemplate",
    "ContinueOn", "CronWorkflow", "CronWorkflowSpec", "DAGTask", "DAGTemplate", "EnvVar",
    "EnvVarSource", "GitArtifact", "HTTPArtifact", "HTTPTemplate", "Inputs", "IntOrString",
    "K8s", "LifecycleHook", "Memoize", "Metadata", "Model", "ObjectMeta", "Outputs",
    "Parameter", "RawArtifact", "Resource", "ResourceTemplate", "RetryStrategy",
    "S3Artifact", "ScriptTemplate", "SecretKeySelector", "Sequence", "SuspendTemplate",
    "Template", "TemplateRef", "UserContainer", "ValueFrom", "Workflow", "WorkflowSpec",
    "WorkflowStep", "WorkflowTemplate", "WorkflowTemplateRef", "as_int", "spec_of",
]
