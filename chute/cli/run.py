"""``chute run pipeline.py[:name] [-p k=v]``: compile a Python pipeline and run it here.

It is exactly ``chute compile`` followed by ``chute submit --wait``: the compiled Argo
Workflow is submitted to the local engine (so local runs and Argo runs share one path),
driven by a controller inside this process, and watched live as a tree of steps. It ends
with each step's output parameters and the metrics the run recorded; the exit code is 0
only if the workflow Succeeded.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Annotated, Any

import typer

from chute.errors import ChuteError

PHASE_STYLE = {"Succeeded": ("✔", "green"), "Failed": ("✖", "red"), "Error": ("⚠", "red"),
               "Running": ("●", "cyan"), "Pending": ("◷", "dim"), "Skipped": ("○", "dim"),
               "Omitted": ("○", "dim")}
FINAL = ("Succeeded", "Failed", "Error")
HIDDEN_TYPES = ("TaskGroup", "StepGroup", "Retry")


def parse_params(values: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; a value may itself hold ``=``."""
    from chute.errors import ParameterError

    out: dict[str, str] = {}
    for v in values or []:
        name, sep, value = v.partition("=")
        if not sep or not name.strip():
            raise ParameterError(f"-p {v!r}: expected NAME=VALUE")
        out[name.strip()] = value
    return out


def _tree(row: Any, nodes: list[Any]):
    from rich.text import Text
    from rich.tree import Tree

    def label(n: Any) -> Text:
        sym, style = PHASE_STYLE.get(n.phase, ("?", ""))
        took = ""
        if n.started_at:
            took = f" {(n.finished_at or time.time()) - n.started_at:.1f}s"
        text = Text(f"{sym} ", style=style)
        text.append(n.display_name, style="bold" if n.type == "Pod" else "")
        text.append(took, style="dim")
        if n.phase in ("Failed", "Error") and n.message:
            text.append(f"  {n.message}", style="red")
        return text

    kids: dict[Any, list[Any]] = {}
    for n in nodes:
        kids.setdefault(n.parent_id, []).append(n)

    sym, style = PHASE_STYLE.get(row.phase, ("?", ""))
    tree = Tree(Text(f"{sym} {row.name}", style=f"bold {style}"))

    def add(parent: Any, n: Any) -> None:
        branch = parent if n.type in HIDDEN_TYPES else parent.add(label(n))
        for c in kids.get(n.node_id, []):
            add(branch, c)

    for top in kids.get(None, []):
        if top.display_name == row.name:  # the root DAG node is the tree's title
            for c in kids.get(top.node_id, []):
                add(tree, c)
        else:  # onExit and similar second roots
            add(tree, top)
    return tree


def _snapshot(store: Any, uid: str) -> tuple[Any, list[Any]]:
    from chute.store import queries as q

    with store.read() as s:
        row = q.get_workflow(s, uid)
        nodes = q.nodes_of(s, uid)
        s.expunge_all()
    return row, nodes


def _metrics(store: Any, uid: str, nodes: list[Any]) -> list[tuple[str, str, str]]:
    """(step, metric, value) rows the engine stored in the metrics table."""
    from sqlalchemy import select

    from chute.store.models import MetricRow

    with store.read() as s:
        rows = list(s.scalars(select(MetricRow).where(MetricRow.workflow_uid == uid)))
        s.expunge_all()
    names = {n.node_id: n.display_name for n in nodes}
    return [(names.get(m.node_id, m.node_id or ""), m.name,
             f"{m.value:g}" if m.value is not None else m.kind) for m in rows]


def _log_tail(logs_dir: Any, uid: str, node: Any, lines: int = 12) -> list[str]:
    """The last lines a step wrote (``<time> <stream> <text>`` lines, text kept)."""
    path = logs_dir / uid / f"{node.node_id}.log"
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            tail = fh.read().splitlines()[-lines:]
    except OSError:
        return []
    return [line.split(" ", 2)[2] if line.count(" ") >= 2 else line for line in tail]


def _artifact_metrics(settings: Any, doc: dict, nodes: list[Any]) -> list[tuple[str, str, str]]:
    """Metrics read from the steps' metrics artifacts (when the store holds none)."""
    from chute.artifacts.repository import ArtifactRepository
    from chute.dsl.metrics import metrics_artifacts, parse_metrics

    templates = {t["name"]: t for t in doc["spec"]["templates"]}
    repo = None
    out: list[tuple[str, str, str]] = []
    for n in nodes:
        kinds = metrics_artifacts(templates.get(n.template_name or "", {}))
        for art in (n.outputs or {}).get("artifacts", []) or []:
            title = kinds.get(art.get("name"))
            if not title or art.get("archive") != "none" or not art.get("key"):
                continue
            try:
                repo = repo or ArtifactRepository.from_settings(settings)
                with repo.open(art["key"]) as fh:
                    records = parse_metrics(title, fh.read(1 << 20))
            except (ValueError, OSError, ChuteError):
                continue  # a summary is best effort; the artifact stays in the store
            for r in records:
                out.append((n.display_name, r.name, f"{r.value:g}" if r.value is not None
                            else r.kind))
    return out


def _summary(console: Any, row: Any, nodes: list[Any], metrics: list[tuple[str, str, str]],
             logs_dir: Any = None) -> None:
    from rich.markup import escape
    from rich.table import Table

    if logs_dir is not None:
        for n in nodes:
            if n.type == "Pod" and n.phase in ("Failed", "Error"):
                console.print(f"[red]{escape(n.display_name)} failed[/red]: "
                              f"{escape(n.message or '')}")
                for line in _log_tail(logs_dir, row.uid, n):
                    console.print(f"  {escape(line)}", highlight=False)

    table = Table(title="outputs", show_edge=False, title_justify="left")
    for col in ("step", "output", "value"):
        table.add_column(col)
    shown = False
    for n in nodes:
        if n.type != "Pod":
            continue
        for p in (n.outputs or {}).get("parameters", []) or []:
            value = str(p.get("value", ""))
            table.add_row(n.display_name, p.get("name", ""),
                          value if len(value) <= 80 else value[:77] + "...")
            shown = True
    if shown:
        console.print(table)
    if metrics:
        mt = Table(title="metrics", show_edge=False, title_justify="left")
        for col in ("step", "metric", "value"):
            mt.add_column(col)
        for step, name, value in metrics:
            mt.add_row(step, name, value)
        console.print(mt)
    console.print(f"where to look: chute get {row.name} | chute logs {row.name} | "
                  f"web UI: chute server, then http://127.0.0.1:8746/runs/{row.name}",
                  highlight=False)
    console.print(f"[bold]{row.name}[/bold]: {row.phase}"
                  + (f" ({row.message})" if row.message and row.phase != "Succeeded" else ""))


def run_pipeline(ref: str, params: dict[str, str], *, timeout: float | None = None,
                 console: Any = None, out: Any = None, live: bool = True,
                 reuse_workers: bool = False) -> tuple[Any, list[Any]]:
    """Compile, submit and drive the pipeline to its end; return the workflow row and nodes.

    Progress goes to ``console`` (standard error by default); the summary -- outputs,
    metrics and a last line ``<workflow>: <phase>`` -- to ``out`` (standard output).
    ``reuse_workers`` runs every SDK step of the run in reused worker processes, as if
    each component had ``reuse_worker=True``; otherwise only those that do."""
    from rich.console import Console

    from chute.config import load_settings
    from chute.dsl.compiler import compile_pipeline
    from chute.dsl.loader import load_pipeline
    from chute.engine.controller import Controller, _owner_id
    from chute.engine.submit import submit
    from chute.errors import ConflictError
    from chute.executors.python import WARM_ENV, PythonExecutor
    from chute.spec.loader import load_resource
    from chute.store.db import open_store

    if reuse_workers and os.environ.get(WARM_ENV) == "0":
        # checked before anything is submitted: the environment would silently win
        raise ConflictError(f"--reuse-workers: {WARM_ENV}=0 in the environment runs every "
                            f"step cold; unset {WARM_ENV} or drop --reuse-workers")
    console = console or Console(stderr=True)
    out = out or (console if console.file is not sys.stderr else Console())
    pipe = load_pipeline(ref)
    doc = compile_pipeline(pipe)
    resource = load_resource(doc)
    settings = load_settings().ensure()
    store = open_store(settings)
    owner = _owner_id()
    row = submit(store, resource, params, owner=owner, source=ref)
    failure: list[BaseException] = []

    def drive() -> None:
        # SDK steps forked from warm zygotes, or all of them in reused workers; by default
        # each step's compiled config decides (its component's reuse_worker)
        executor = (PythonExecutor(reuse=True) if reuse_workers else PythonExecutor()).start()
        ctl = Controller(store, settings, executor, owner=owner)
        try:
            ctl.run_until_done([row.uid], timeout=timeout)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(exc)
        finally:
            ctl.close()
            executor.close()

    worker = threading.Thread(target=drive, name="chute-run", daemon=True)
    worker.start()
    try:
        _watch(console, store, row, worker, live)
    except KeyboardInterrupt:
        # Steps run under supervisors that outlive us, and the workflow's lease expires:
        # a standalone controller adopts the run and finishes it.
        console.print(f"\ninterrupted: {row.name} is left as it is; `chute controller` "
                      f"finishes it, `chute get {row.name}` shows it")
        raise typer.Exit(130) from None
    if failure:
        raise failure[0]
    final, nodes = _snapshot(store, row.uid)
    metrics = _metrics(store, row.uid, nodes) or _artifact_metrics(settings, doc, nodes)
    _summary(out, final, nodes, metrics, settings.logs_dir)
    return final, nodes


def _watch(console: Any, store: Any, row: Any, worker: threading.Thread, live: bool) -> None:
    """Show the run's tree until the controller thread ends (live when on a terminal)."""
    from rich.live import Live

    if live and console.is_terminal:
        with Live(console=console, refresh_per_second=8, transient=False) as view:
            while worker.is_alive():
                view.update(_tree(*_snapshot(store, row.uid)))
                worker.join(0.15)
            view.update(_tree(*_snapshot(store, row.uid)))
    else:
        while worker.is_alive():  # join in slices so Ctrl-C is seen at once
            worker.join(0.2)
        console.print(_tree(*_snapshot(store, row.uid)))


def register(app: typer.Typer) -> None:
    """Add ``chute run`` to the app."""

    @app.command("run")
    def run_cmd(
        pipeline: Annotated[str, typer.Argument(
            help="The pipeline: path/to/file.py, or file.py:NAME when it defines several.",
            show_default=False)],
        parameter: Annotated[list[str] | None, typer.Option(
            "-p", "--parameter", help="A pipeline parameter, NAME=VALUE (repeatable).")] = None,
        timeout: Annotated[float | None, typer.Option(
            "--timeout", help="Give up after this many seconds.")] = None,
        reuse_workers: Annotated[bool, typer.Option(
            "--reuse-workers", help="Run every Python step in reused worker processes "
            "(as if each component had reuse_worker=True): far less overhead per step; "
            "modules a step imports stay imported for later steps in the same worker. "
            "Without it, only components with reuse_worker=True do.")] = False,
    ) -> None:
        """Compile a Python pipeline and run it locally, showing live progress."""
        row, _ = run_pipeline(pipeline, parse_params(parameter), timeout=timeout,
                              reuse_workers=reuse_workers)
        if row.phase not in FINAL or row.phase != "Succeeded":
            raise typer.Exit(1)
