"""``@component``: a Python function becomes a pipeline step; calling it adds a task.

The signature is the step's interface. Parameters annotated ``str``, ``int``, ``float``,
``bool``, ``list`` or ``dict`` are input parameters (their defaults become template
defaults); ``Input[Dataset]`` reads an artifact, ``Output[Model]`` writes one. The return
annotation gives output parameters: one value is the output ``Output`` (``task.output``),
a ``NamedTuple`` gives one output per field. Arguments are type-checked when the task is
created, and errors name the line of the call.

The function must be self-contained, as in Kubeflow Pipelines: it runs alone in a stock
Python image, so it imports what it needs inside its body.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chute.dsl.channels import Channel, LoopItem, TaskOutput
from chute.dsl.context import current_builder, dns_name
from chute.dsl.errors import PipelineError, def_location, user_location
from chute.dsl.types import (
    ArtifactType,
    ParamType,
    accepts,
    artifact_type,
    constant_type,
    param_type,
)


@dataclass(frozen=True)
class RetryPolicy:
    """Argo ``retryStrategy``: ``limit`` retries, optional backoff."""

    limit: int
    backoff_duration: str | None = None
    backoff_factor: int | None = None
    backoff_max_duration: str | None = None
    policy: str | None = None  # Always, OnFailure, OnError, OnTransientError


@dataclass(frozen=True)
class InputSpec:
    """One input of a component: a parameter (maybe with a default) or an artifact."""

    name: str
    type: ParamType | ArtifactType
    has_default: bool = False
    default: Any = None


@dataclass
class ComponentSpec:
    """A component's interface, read from its signature."""

    inputs: list[InputSpec] = field(default_factory=list)
    outputs: dict[str, ParamType] = field(default_factory=dict)  # output parameters
    output_artifacts: dict[str, ArtifactType] = field(default_factory=dict)

    @property
    def input_params(self) -> list[InputSpec]:
        return [i for i in self.inputs if isinstance(i.type, ParamType)]

    @property
    def input_artifacts(self) -> list[InputSpec]:
        return [i for i in self.inputs if isinstance(i.type, ArtifactType)]


def _return_outputs(annotation: Any, where: str) -> dict[str, ParamType]:
    if annotation is None or annotation is type(None) or annotation is inspect.Signature.empty:
        return {}
    fields = getattr(annotation, "__annotations__", None)
    if isinstance(annotation, type) and issubclass(annotation, tuple) and fields is not None:
        return {name: param_type(tp, f"{where}: output {name!r}") for name, tp in
                typing.get_type_hints(annotation).items()}
    return {"Output": param_type(annotation, f"{where}: return value")}


def read_spec(fn: Callable) -> ComponentSpec:
    """Read a component's interface from the function's signature and annotations."""
    where = f"component {fn.__name__}()"
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:  # noqa: BLE001 - any annotation that does not evaluate
        raise PipelineError(f"{where}: cannot resolve its annotations: {exc}",
                            _def_location(fn)) from None
    spec = ComponentSpec()
    try:
        for name, p in inspect.signature(fn).parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"{where}: *args and **kwargs are not supported")
            annotation = hints.get(name, Any)
            art = artifact_type(annotation)
            if art is not None and art.direction == "output":
                spec.output_artifacts[name] = art
                continue
            if art is not None:
                if p.default is not p.empty:
                    raise TypeError(f"{where}: input artifact {name!r} cannot have a default")
                spec.inputs.append(InputSpec(name, art))
                continue
            ptype = param_type(annotation, f"{where}: parameter {name!r}")
            has_default = p.default is not p.empty
            if has_default and constant_type(p.default) is None:
                raise TypeError(f"{where}: default of {name!r} must be str, int, float, bool, "
                                f"list or dict, got {p.default!r:.40}")
            spec.inputs.append(InputSpec(name, ptype, has_default, p.default))
        spec.outputs = _return_outputs(hints.get("return"), where)
    except TypeError as exc:
        raise PipelineError(str(exc), _def_location(fn)) from None
    clash = set(spec.outputs) & set(spec.output_artifacts)
    if clash:
        raise PipelineError(f"{where}: output names used twice: {sorted(clash)}",
                            _def_location(fn))
    return spec


def _def_location(fn: Callable) -> str:
    return def_location(fn)


class Component:
    """A Python function made into a pipeline step. Call it inside a @pipeline."""

    def __init__(self, fn: Callable, *, image: str, packages: list[str], retries: int,
                 timeout: int | None, cache: bool, cpu: str | None, memory: str | None,
                 env: dict[str, str], secrets: dict[str, tuple[str, str]],
                 reuse_worker: bool = False):
        self.fn = fn
        self.name = dns_name(fn.__name__)
        self.image = image
        self.packages = list(packages)
        self.retry = RetryPolicy(retries) if retries else None
        self.timeout = timeout
        self.cache = cache
        self.cpu = cpu
        self.memory = memory
        self.env = dict(env)
        self.secrets = dict(secrets)
        self.reuse_worker = bool(reuse_worker)
        self.spec = read_spec(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> PipelineTask:
        builder = current_builder(f"component {self.fn.__name__}()")
        return PipelineTask(self, builder, args, kwargs)

    def __repr__(self) -> str:
        return f"<component {self.fn.__name__}>"


def component(fn: Callable | None = None, *, image: str = "python:3.11",
              packages: list[str] | None = None, retries: int = 0, timeout: int | None = None,
              cache: bool = True, cpu: str | float | None = None,
              memory: str | None = None, env: dict[str, str] | None = None,
              secrets: dict[str, tuple[str, str]] | None = None,
              reuse_worker: bool = False):
    """Make a Python function a pipeline step (``@component`` or ``@component(...)``).

    ``image``: the container image (a stock Python image is enough); ``packages``: pip
    requirements installed at step start unless already present; ``retries``: Argo
    ``retryStrategy.limit``; ``timeout``: seconds, Argo ``activeDeadlineSeconds``;
    ``cache``: memoize outputs by inputs; ``cpu``/``memory``: resource requests and limits
    (``"500m"``, ``"2Gi"``); ``env``: environment variables; ``secrets``: ``{ENV_NAME:
    (secret_name, key)}`` read from Kubernetes secrets.

    ``reuse_worker``: when run locally, the step may run in a long-lived worker process
    that already ran earlier steps of this or other reusable components, instead of a
    process of its own (much less overhead per step). Modules the step imports stay
    imported and globals of imported modules persist from step to step; environment,
    working directory, ``sys.argv``, ``__main__``, logs, outputs, exit code, timeout and
    retries are the step's own, as for any step, and a worker whose step failed (or left
    a thread, a child process or a signal handler behind) is replaced. A step running when
    its controller crashes runs again (at-least-once). Use it for short steps that only
    compute on their inputs; leave it off for steps that change process-wide state. On a
    real Argo cluster it has no effect (each step is a pod). docs/sdk.md has the details.
    """

    def wrap(f: Callable) -> Component:
        if inspect.iscoroutinefunction(f):
            raise PipelineError(f"component {f.__name__}(): async functions are not supported",
                                _def_location(f))
        for var, ref in (secrets or {}).items():
            if not (isinstance(ref, tuple) and len(ref) == 2):
                raise PipelineError(f"component {f.__name__}(): secrets[{var!r}] must be "
                                    "(secret_name, key)", _def_location(f))
        if not isinstance(reuse_worker, bool):
            raise PipelineError(f"component {f.__name__}(): reuse_worker must be True or "
                                f"False, got {reuse_worker!r:.40}", _def_location(f))
        return Component(f, image=image, packages=packages or [], retries=retries,
                         timeout=timeout, cache=cache,
                         cpu=None if cpu is None else str(cpu), memory=memory,
                         env={k: str(v) for k, v in (env or {}).items()},
                         secrets=dict(secrets or {}), reuse_worker=reuse_worker)

    return wrap(fn) if fn is not None else wrap


class _Outputs(dict):
    """``task.outputs``: a mapping that names the task and its outputs on a bad key."""

    def __init__(self, task: PipelineTask, items: dict[str, TaskOutput]):
        super().__init__(items)
        self._task = task

    def __missing__(self, key: str) -> TaskOutput:
        known = ", ".join(repr(k) for k in self) or "none"
        raise PipelineError(f"task '{self._task.name}' ({self._task.component.fn.__name__}()) "
                            f"has no output {key!r}; its outputs: {known}")


class PipelineTask:
    """One use of a component in a pipeline: a DAG task. Returned by calling a component."""

    def __init__(self, comp: Component, builder: Any, args: tuple, kwargs: dict):
        self.component = comp
        self.location = user_location()
        self.builder = builder
        self.name = builder.unique_name(comp.name)
        self.scope = builder.scope
        self.guards, self.cond_blocks = builder.guards()
        self.arguments: dict[str, Any] = self._bind(args, kwargs)
        self.after_tasks: list[tuple[Any, str]] = []  # (task or loop, source location)
        self.retry = comp.retry
        self.cache = comp.cache
        self.env = dict(comp.env)
        self.cpu, self.memory = comp.cpu, comp.memory
        self.reuse_worker = comp.reuse_worker
        outs: dict[str, TaskOutput] = {n: TaskOutput(self, n, t)
                                       for n, t in comp.spec.outputs.items()}
        outs.update({n: TaskOutput(self, n, t) for n, t in comp.spec.output_artifacts.items()})
        self.outputs = _Outputs(self, outs)
        for guard in self.guards:
            for ch in guard.condition.channels():
                check_visible(ch, self, "its condition uses")
        builder.tasks.append(self)
        builder.add_node(self)

    @property
    def output(self) -> TaskOutput:
        """The single output of the task (error if it has none or several)."""
        if len(self.outputs) != 1:
            names = ", ".join(repr(k) for k in self.outputs) or "none"
            raise PipelineError(f"task '{self.name}' has {len(self.outputs)} outputs "
                                f"({names}); use .outputs['name']")
        return next(iter(self.outputs.values()))

    def after(self, *others: PipelineTask) -> PipelineTask:
        """Run this task only after ``others`` finish (Argo ``dependencies``)."""
        where = user_location()
        for other in others:
            if not isinstance(other, PipelineTask):
                raise PipelineError(f"'{self.name}'.after() takes tasks, got {other!r}", where)
            if other is self:
                raise PipelineError(f"task '{self.name}' cannot run after itself", where)
            self.after_tasks.append((other, where))
        return self

    def set_retry(self, num_retries: int, backoff_duration: str | None = None,
                  backoff_factor: int | None = None, backoff_max_duration: str | None = None,
                  policy: str | None = None) -> PipelineTask:
        """Retry this task up to ``num_retries`` times (Argo ``retryStrategy``)."""
        self.retry = RetryPolicy(num_retries, backoff_duration, backoff_factor,
                                 backoff_max_duration, policy) if num_retries else None
        return self

    def set_caching(self, enabled: bool) -> PipelineTask:
        """Turn memoization of this task's outputs on or off."""
        self.cache = bool(enabled)
        return self

    def set_env_variable(self, name: str, value: str) -> PipelineTask:
        """Set an environment variable for this task only."""
        self.env[name] = str(value)
        return self

    def set_cpu_limit(self, cpu: str | float) -> PipelineTask:
        """CPU for this task (``"500m"``, ``2``): Kubernetes requests and limits."""
        self.cpu = str(cpu)
        return self

    def set_memory_limit(self, memory: str) -> PipelineTask:
        """Memory for this task (``"2Gi"``): Kubernetes requests and limits."""
        self.memory = str(memory)
        return self

    def set_reuse_worker(self, enabled: bool = True) -> PipelineTask:
        """Let this task run in a reused worker process locally (see ``component``)."""
        self.reuse_worker = bool(enabled)
        return self

    def template_key(self) -> tuple:
        """What makes this task's template differ from another use of the component."""
        return (id(self.component), self.retry, self.cache, tuple(sorted(self.env.items())),
                self.cpu, self.memory, self.reuse_worker)

    def _bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        fn = self.component.fn
        where = f"{fn.__name__}()"
        try:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
        except TypeError as exc:
            raise PipelineError(f"{where}: {exc}", self.location) from None
        spec = self.component.spec
        for name in bound.arguments:
            if name in spec.output_artifacts:
                raise PipelineError(f"{where}: {name!r} is an output artifact; the step "
                                    "writes it, so it takes no argument", self.location)
        result: dict[str, Any] = {}
        for inp in spec.inputs:
            if inp.name not in bound.arguments:
                if not inp.has_default:
                    raise PipelineError(f"{where}: missing argument {inp.name!r}",
                                        self.location)
                continue
            value = bound.arguments[inp.name]
            self._check_type(inp, value, where)
            if isinstance(value, Channel):
                check_visible(value, self, f"argument {inp.name!r} uses")
            result[inp.name] = value
        return result

    def _check_type(self, inp: InputSpec, value: Any, where: str) -> None:
        what = f"{where}: parameter {inp.name!r} expects {inp.type}"
        if isinstance(value, PipelineTask):
            raise PipelineError(f"{what}, got the task '{value.name}' itself "
                                "(use .output or .outputs['name'])", self.location)
        if isinstance(inp.type, ArtifactType):
            if not isinstance(value, Channel) or not value.is_artifact:
                got = value.describe() if isinstance(value, Channel) else type(value).__name__
                raise PipelineError(f"{what}, got {got}", self.location)
            src = value.type.cls  # type: ignore[union-attr]
            if not issubclass(src, inp.type.cls):
                raise PipelineError(f"{what}, got {value.describe()}", self.location)
            return
        if isinstance(value, Channel):
            if value.is_artifact or not accepts(inp.type, value.type):  # type: ignore[arg-type]
                raise PipelineError(f"{what}, got {value.describe()}", self.location)
            return
        ctype = constant_type(value)
        if ctype is None or not accepts(inp.type, ctype):
            raise PipelineError(f"{what}, got {type(value).__name__} {value!r:.60}",
                                self.location)
        if inp.type.enum is not None:
            from chute.dsl.types import encode_constant

            if encode_constant(value) not in inp.type.enum:
                raise PipelineError(f"{what} one of {list(inp.type.enum)}, got {value!r}",
                                    self.location)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def check_visible(ch: Channel, node: Any, what: str) -> None:
    """Check that ``node`` (created now, in the current scope) may use channel ``ch``."""
    from chute.dsl.control import Collected

    scope = node.scope
    if isinstance(ch, Collected):
        loop_scope = ch.channel.home()
        loop = loop_scope.loop if loop_scope is not None else None
        if loop is None:
            raise PipelineError(f"{node.name}: Collected() needs the output of a task inside "
                                f"a ParallelFor, got {ch.channel.describe()}", node.location)
        if scope.within(loop_scope) or not scope.within(loop.scope):
            raise PipelineError(f"{node.name}: {what} Collected({ch.channel.describe()}) "
                                f"inside or beside its loop '{loop.name}'; use it after the "
                                "loop, in the scope that holds the loop", node.location)
        return
    home = ch.home()
    if home is None or scope.within(home):
        if isinstance(ch, TaskOutput):
            lifted = node
            while lifted.scope is not home:  # the loop, in the producer's scope, holding node
                lifted = lifted.scope.loop
            _check_same_branch(ch.task, lifted, node, what)
        return
    if isinstance(ch, LoopItem):
        raise PipelineError(f"{node.name}: {what} the loop item of '{ch.loop.name}' outside "
                            "its loop", node.location)
    loop = home.loop
    raise PipelineError(f"{node.name}: {what} {ch.describe()}, which runs inside the loop "
                        f"'{loop.name if loop else home.name}'; use it inside the loop, or "
                        "fan in with Collected(...) after the loop", node.location)


def _check_same_branch(producer: Any, lifted: Any, node: Any, what: str) -> None:
    """A task may use outputs of tasks in the same or an enclosing If branch only."""
    pb, cb = producer.cond_blocks, lifted.cond_blocks
    if cb[:len(pb)] != pb:
        raise PipelineError(f"{node.name}: {what} the output of '{producer.name}', which "
                            "only runs under a condition this task is not inside; move the "
                            "task into the same If/Elif/Else block", node.location)
