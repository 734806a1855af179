"""The public API is small and deliberate: ``__all__`` of ``chute`` and of the spec models is
pinned here, so adding or removing a public name is a visible change to this file."""

from __future__ import annotations

import inspect

import chute
from chute.spec import models

CHUTE_ALL = ["ChuteError", "ExecutionError", "SpecError", "UserError", "__version__"]

MODELS_ALL = [
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


def test_chute_all_is_pinned():
    assert sorted(chute.__all__) == sorted(CHUTE_ALL)
    for name in chute.__all__:
        assert hasattr(chute, name), name
    assert isinstance(chute.__version__, str) and chute.__version__


def test_spec_models_all_is_pinned():
    assert sorted(models.__all__) == sorted(MODELS_ALL)
    assert len(set(models.__all__)) == len(models.__all__)
    for name in models.__all__:
        assert hasattr(models, name), name


def test_public_classes_and_functions_are_documented():
    for module in (chute, models):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):
                assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


def test_errors_are_a_hierarchy_users_can_catch():
    assert issubclass(chute.SpecError, chute.UserError)
    assert issubclass(chute.UserError, chute.ChuteError)
    assert issubclass(chute.ExecutionError, chute.ChuteError)
    assert not issubclass(chute.SpecError, chute.ExecutionError)
