"""chute.dsl: write pipelines in Python, compile them to Argo Workflow YAML.

Familiar to a Kubeflow Pipelines v2 user::

    from chute import dsl

    @dsl.component
    def add(a: int, b: int) -> int:
        return a + b

    @dsl.pipeline(name="sum")
    def sum_pipeline(x: int = 1):
        first = add(a=x, b=2)
        add(a=first.output, b=3)

    yaml_text = dsl.compile_to_yaml(sum_pipeline)

``__all__`` is the public surface, pinned by a test.
"""

from chute.dsl.channels import WORKFLOW_NAME, WORKFLOW_STATUS, WORKFLOW_UID, Condition
from chute.dsl.compiler import compile_pipeline, compile_to_yaml
from chute.dsl.component import Component, PipelineTask, component
from chute.dsl.control import Collected, Elif, Else, ExitHandler, If, ParallelFor
from chute.dsl.errors import PipelineError
from chute.dsl.pipeline import Pipeline, pipeline
from chute.dsl.types import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Markdown,
    Metrics,
    Model,
    Output,
)

__all__ = [
    "HTML",
    "WORKFLOW_NAME",
    "WORKFLOW_STATUS",
    "WORKFLOW_UID",
    "Artifact",
    "ClassificationMetrics",
    "Collected",
    "Component",
    "Condition",
    "Dataset",
    "Elif",
    "Else",
    "ExitHandler",
    "If",
    "Input",
    "Markdown",
    "Metrics",
    "Model",
    "Output",
    "ParallelFor",
    "Pipeline",
    "PipelineError",
    "PipelineTask",
    "compile_pipeline",
    "compile_to_yaml",
    "component",
    "pipeline",
]
