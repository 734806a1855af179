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

Where things are: :mod:`~chute.dsl.component` (``@component`` and its options, task
methods ``.after``/``.set_retry``/``.set_caching``/``.set_env_variable``/
``.set_reuse_worker``...), :mod:`~chute.dsl.pipeline` (``@pipeline``),
:mod:`~chute.dsl.types` (parameter and artifact types), :mod:`~chute.dsl.control`
(``If``/``Elif``/``Else``, ``ParallelFor``, ``Collected``, ``ExitHandler``),
:mod:`~chute.dsl.compiler` (how each maps onto Argo),
:mod:`~chute.dsl.runtime` (what a compiled step does, and the metrics file format).
From the shell: ``chute compile file.py[:name] -o out.yaml`` and ``chute run file.py -p k=v``.

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
