"""DAG checks: task names, dependencies that name real tasks, ``depends`` that parse, no
cycles (the cycle is named: ``a -> b -> c -> a``), targets that exist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chute.errors import ExpressionError
from chute.spec.models import DAGTask
from chute.spec.validate_util import FIELD_NAME, MAX_FIELD_NAME, did_you_mean, is_tagged

if TYPE_CHECKING:
    from chute.spec.validate_template import TemplateChecker


def task_dependencies(task: DAGTask) -> list[str]:
    """Names of the tasks ``task`` waits for (from ``dependencies`` or ``depends``).

    A ``depends`` that does not parse gives no dependencies (it is reported elsewhere).
    """
    if task.dependencies:
        return list(task.dependencies)
    if task.depends:
        from chute.spec import depends

        try:
            return sorted(depends.tasks_of(depends.parse(task.depends)))
        except ExpressionError:
            return []
    return []


def ancestors(graph: dict[str, list[str]], name: str) -> set[str]:
    """Every task ``name`` transitively depends on (cycles tolerated)."""
    seen: set[str] = set()
    stack = list(graph.get(name, []))
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(graph.get(n, []))
    return seen


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Each distinct dependency cycle once, as ``[a, b, ..., a]`` (iterative DFS)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    cycles: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for root in graph:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        colour[root] = grey
        while stack:
            node, i = stack[-1]
            deps = [d for d in graph.get(node, []) if d in graph]
            if i < len(deps):
                stack[-1] = (node, i + 1)
                nxt = deps[i]
                if colour[nxt] == white:
                    colour[nxt] = grey
                    stack.append((nxt, 0))
                    path.append(nxt)
                elif colour[nxt] == grey:
                    cyc = path[path.index(nxt):] + [nxt]
                    key = frozenset(cyc)
                    if key not in seen:
                        seen.add(key)
                        cycles.append(cyc)
            else:
                colour[node] = black
                stack.pop()
                path.pop()
    return cycles


def check_dag(tc: TemplateChecker) -> None:
    """Report every problem of the DAG of template checker ``tc``."""
    dag, p = tc.t.dag, f"{tc.path}.dag"
    tasks = dag.tasks
    if not tasks:
        tc.add(f"{p}.tasks", "a dag needs at least one task")
        return
    names = [t.name for t in tasks]
    index: dict[str, int] = {}
    for i, t in enumerate(tasks):
        tp = f"{p}.tasks[{i}]"
        if not t.name:
            tc.add(f"{tp}.name", "task name is required")
            continue
        if not is_tagged(t.name) and (not FIELD_NAME.match(t.name)
                                      or len(t.name) > MAX_FIELD_NAME):
            tc.add(f"{tp}.name", f"invalid task name {t.name!r}: use letters, digits and "
                   "'-', starting with a letter or digit")
        if t.name in index:
            tc.add(f"{tp}.name", f"duplicate task name {t.name!r} "
                   f"(also {p}.tasks[{index[t.name]}])")
        else:
            index[t.name] = i
    using_depends = any(t.depends for t in tasks)
    graph: dict[str, list[str]] = {}
    for i, t in enumerate(tasks):
        tp = f"{p}.tasks[{i}]"
        if t.depends and t.dependencies:
            tc.add(tp, "set depends or dependencies, not both")
        elif using_depends and t.dependencies:
            tc.add(f"{tp}.dependencies", "this dag uses 'depends'; do not mix it with "
                   "'dependencies' in the same dag")
        if using_depends and t.continueOn is not None:
            tc.add(f"{tp}.continueOn", "continueOn cannot be used with 'depends'; use "
                   "'<task>.Failed' or '<task>.Errored' in depends instead")
        if (using_depends or t.dependencies) and t.name[:1].isdigit():
            tc.add(f"{tp}.name", f"task name {t.name!r} cannot begin with a digit when "
                   "the dag uses depends or dependencies")
        deps: list[str] = []
        for j, d in enumerate(t.dependencies or []):
            if d not in index:
                tc.add(f"{tp}.dependencies[{j}]",
                       f"unknown task {d!r}" + did_you_mean(d, names))
            deps.append(d)
        if t.depends:
            deps.extend(_check_depends(tc, t, f"{tp}.depends", index, names))
        graph.setdefault(t.name, [])
        graph[t.name].extend(d for d in deps if d in index)
        tc._call_common(t, tp)
        if t.when:
            from chute.spec.validate_template import check_when

            check_when(tc.sc, t.when, f"{tp}.when")
    for cyc in find_cycles(graph):
        where = f"{p}.tasks[{index[cyc[0]]}]"
        if len(cyc) == 2:
            tc.add(where, f"task {cyc[0]!r} depends on itself: {cyc[0]} -> {cyc[0]}")
        else:
            tc.add(where, f"dependency cycle: {' -> '.join(cyc)}")
    if dag.target and not is_tagged(dag.target):
        for name in dag.target.split():
            if name not in index:
                tc.add(f"{p}.target", f"unknown target task {name!r}"
                       + did_you_mean(name, names))
    _argument_dependencies(tc, graph, index)


def _check_depends(tc: TemplateChecker, task: DAGTask, path: str, index: dict[str, int],
                   names: list[str]) -> list[str]:
    from chute.spec import depends

    try:
        ast = depends.parse(task.depends)
    except ExpressionError as exc:
        tc.add(path, f"invalid depends expression: {exc}")
        return []
    out = []
    for d in sorted(depends.tasks_of(ast)):
        if d not in index:
            tc.add(path, f"unknown task {d!r} in depends" + did_you_mean(d, names))
        out.append(d)
    tasks = tc.t.dag.tasks
    for ref in _refs(ast):
        if ref.result in ITEM_RESULTS and ref.task in index:
            dep = tasks[index[ref.task]]
            if not (dep.withItems or dep.withParam or dep.withSequence is not None):
                tc.add(path, f"{ref.task}.{ref.result} is an items-based result, but task "
                       f"{ref.task!r} does not loop (withItems, withParam or withSequence)")
    return out


#: ``depends`` results that only a looping task has (Argo's DependencyTypeItems).
ITEM_RESULTS = ("AnySucceeded", "AllFailed")


def _refs(ast: object) -> list:
    """Every ``task.Result`` reference of a parsed ``depends`` expression."""
    from chute.spec import depends

    out, stack = [], [ast]
    while stack:
        node = stack.pop()
        if isinstance(node, depends.Ref):
            out.append(node)
        elif isinstance(node, depends.Not):
            stack.append(node.operand)
        elif isinstance(node, depends.And | depends.Or):
            stack.extend(node.items)
    return out


def _argument_dependencies(tc: TemplateChecker, graph: dict[str, list[str]],
                           index: dict[str, int]) -> None:
    """An argument taken from ``{{tasks.X...}}`` needs X among the task's ancestors."""
    p = f"{tc.path}.dag"
    for i, t in enumerate(tc.t.dag.tasks):
        if not t.name or t.arguments is None:
            continue
        anc = None
        refs = [(f"parameters[{k}]", prm.value, prm.name)
                for k, prm in enumerate(t.arguments.parameters or [])]
        refs += [(f"artifacts[{k}].from", a.from_, a.name)
                 for k, a in enumerate(t.arguments.artifacts or [])]
        for where, value, name in refs:
            if not value or not value.startswith("{{tasks."):
                continue
            ref = value[len("{{tasks."):].split(".", 1)[0].split("}", 1)[0]
            if ref not in index or ref == t.name:
                continue  # unknown tasks are reported with the variables
            if anc is None:
                anc = ancestors(graph, t.name)
            if ref not in anc:
                tc.add(f"{p}.tasks[{i}].arguments.{where}",
                       f"{name!r} takes a value from task {ref!r}, which task {t.name!r} "
                       f"does not depend on (add it to dependencies/depends)")
