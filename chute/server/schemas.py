"""Request and response bodies of the API (pydantic), camelCase as Argo's API is."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    """One error: a stable code, a message naming the place, and the field path."""

    code: str
    message: str
    path: str | None = None
    issues: list[dict[str, str]] | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx body."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid token"},
    404: {"model": ErrorBody, "description": "Not found"},
    422: {"model": ErrorBody, "description": "Invalid input"},
}


class Page(BaseModel):
    """A page of a listing."""

    items: list[Any]
    total: int
    limit: int
    offset: int


class ParameterInfo(BaseModel):
    """A pipeline parameter as the run form shows it."""

    name: str
    default: str | None = None
    type: str = "string"
    enum: list[str] | None = None
    description: str | None = None


class PipelineVersionSummary(BaseModel):
    """A version without its spec."""

    version: int
    sourceKind: str
    description: str = ""
    createdAt: float


class PipelineVersion(PipelineVersionSummary):
    """A version with its spec, source, parameters and static graph."""

    pipelineId: str
    spec: dict[str, Any]
    source: str
    parameters: list[ParameterInfo]
    graph: dict[str, Any]


class Pipeline(BaseModel):
    """A pipeline and its versions (newest last)."""

    id: str
    name: str
    description: str = ""
    createdAt: float
    latestVersion: int | None = None
    versions: list[PipelineVersionSummary] = []


class ExperimentCreate(_Body):
    """Body of POST /experiments."""

    name: str = Field(min_length=1, max_length=253, pattern=NAME_PATTERN)
    description: str = Field("", max_length=10_000)


class Experiment(BaseModel):
    """An experiment: a named group of runs."""

    id: str
    name: str
    description: str = ""
    archived: bool = False
    createdAt: float
    runCount: int = 0


class TemplateCreate(_Body):
    """Body of POST /workflow-templates: the resource as YAML text or as a JSON object."""

    yaml: str | None = Field(None, max_length=4 * 1024 * 1024)
    template: dict[str, Any] | None = None


class RunCreate(_Body):
    """Body of POST /runs: what to run (one of them), its parameters, its experiment."""

    pipelineId: str | None = Field(None, max_length=253)
    pipelineVersion: int | None = Field(None, ge=1)
    workflowTemplate: str | None = Field(None, max_length=253)
    workflow: dict[str, Any] | None = None
    yaml: str | None = Field(None, max_length=4 * 1024 * 1024)
    parameters: dict[str, str] = Field(default_factory=dict)
    experimentId: str | None = Field(None, max_length=253)
    name: str | None = Field(None, max_length=253, pattern=NAME_PATTERN)
    labels: dict[str, str] = Field(default_factory=dict)


class ResumeBody(_Body):
    """Body of PUT /runs/{name}/resume (optional): output values for the run's suspend
    steps (Argo's intermediate parameters, ``valueFrom.supplied``), name -> value."""

    parameters: dict[str, str] = Field(default_factory=dict)


class RunSummary(BaseModel):
    """A run as the runs list shows it."""

    name: str
    uid: str
    phase: str
    message: str | None = None
    createdAt: float
    startedAt: float | None = None
    finishedAt: float | None = None
    duration: float | None = None
    progress: str
    experimentId: str | None = None
    pipelineId: str | None = None
    parameters: dict[str, Any]
    suspended: bool = False


class CronWorkflowCreate(_Body):
    """Body of POST /cron-workflows: a CronWorkflow as YAML text or as a JSON object."""

    yaml: str | None = Field(None, max_length=4 * 1024 * 1024)
    cronWorkflow: dict[str, Any] | None = None


class WebhookCreate(_Body):
    """Body of POST /webhooks: a WebhookTrigger as YAML text or as a JSON object."""

    yaml: str | None = Field(None, max_length=1024 * 1024)
    webhook: dict[str, Any] | None = None


class TriggerCreate(_Body):
    """Body of POST /triggers: a DataTrigger or MetricTrigger as YAML text or JSON."""

    yaml: str | None = Field(None, max_length=1024 * 1024)
    trigger: dict[str, Any] | None = None
