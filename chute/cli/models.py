"""``chute models list|get|promote``: the model registry from the command line."""

from __future__ import annotations

import json
import time

import typer

from chute.errors import ParameterError

models_app = typer.Typer(help="Registered models, their versions and stages.",
                         no_args_is_help=True)


def _registry():
    from chute.ml.registry import Registry

    return Registry.open()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _check_output(output: str) -> str:
    if output not in ("table", "json"):
        raise ParameterError(f"--output {output!r}: must be 'table' or 'json'")
    return output


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _metric_summary(metrics: dict) -> str:
    keys = [k for k in ("pr_auc", "roc_auc", "recall", "precision") if k in metrics]
    keys = keys or sorted(metrics)[:3]
    return " ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], (int, float))
                    else f"{k}={metrics[k]}" for k in keys)


@models_app.command("list")
def list_cmd(
    name: str | None = typer.Argument(None, help="A model: list its versions."),
    stage: str | None = typer.Option(None, "--stage", help="Only versions in this stage."),
    output: str = typer.Option("table", "-o", "--output", help="table or json."),
) -> None:
    """List registered models, or the versions of one model."""
    _check_output(output)
    if stage is not None and name is None:
        raise ParameterError("--stage needs a model name")
    items = _registry().list(name, stage)
    if output == "json":
        typer.echo(json.dumps([i.to_dict() for i in items], indent=2))
        return
    if not items:
        typer.echo("No models." if name is None else f"No versions of {name!r}.")
        return
    if name is None:
        _table([[m.name, str(m.versions), str(m.latest_version or "-"),
                 str(m.production_version or "-"),
                 ",".join(map(str, m.staging_versions)) or "-", _when(m.updated_at)]
                for m in items],
               ["NAME", "VERSIONS", "LATEST", "PRODUCTION", "STAGING", "UPDATED"])
    else:
        _table([[str(v.version), v.stage, _metric_summary(v.metrics), v.workflow_name or "-",
                 _when(v.created_at)] for v in items],
               ["VERSION", "STAGE", "METRICS", "WORKFLOW", "CREATED"])


@models_app.command("get")
def get_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument("latest", help="A version number, 'latest' or a stage."),
    output: str = typer.Option("table", "-o", "--output", help="table or json."),
    download: str | None = typer.Option(None, "--download",
                                           help="Also copy the model file to this path."),
) -> None:
    """Show one model version: stage, metrics, params, data digests, lineage, artifact."""
    _check_output(output)
    v = _registry().get(name, version)
    if download:
        from chute.ml.registry import download as fetch

        path = fetch(v, download)
        typer.echo(f"model/{v.name} version {v.version} saved to {path}", err=True)
    if output == "json":
        typer.echo(json.dumps(v.to_dict(), indent=2))
        return
    lines = [
        ("Name", v.name), ("Version", str(v.version)), ("Stage", v.stage),
        ("Artifact", v.artifact_uri), ("Created", _when(v.created_at)),
        ("Workflow", f"{v.workflow_name or '-'} (uid {v.workflow_uid or '-'})"),
        ("Node", v.node_id or "-"),
    ]
    if v.description:
        lines.append(("Description", v.description))
    for label, value in lines:
        typer.echo(f"{label + ':':<13}{value}")
    for title, data in (("Metrics", v.metrics), ("Params", v.params),
                        ("Data digests", v.data_digests)):
        typer.echo(f"{title}:")
        for k in sorted(data):
            typer.echo(f"  {k}: {data[k]}")


@models_app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="Model name."),
    version: str = typer.Argument(..., help="Version number."),
    stage: str = typer.Argument(..., help="none, staging, production or archived."),
) -> None:
    """Move a version to a stage (production archives the previous production version)."""
    v = _registry().promote(name, version, stage)
    typer.echo(f"model/{v.name} version {v.version} -> {v.stage}")


def register(app: typer.Typer) -> None:
    """Add ``chute models`` to the CLI."""
    app.add_typer(models_app, name="models")
