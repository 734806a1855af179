"""``chute lint FILE...``: check Argo workflow files as Argo would, without running them.

Each clean file prints ``<file>: ok``; otherwise every problem prints as
``<file>: <path>: <message>`` and the command exits 2. WorkflowTemplates and
ClusterWorkflowTemplates in any of the files resolve the ``templateRef``s of the others.
``--runtime local`` adds what the local runtime cannot honour. Nothing a file holds can
make the command crash: unreadable, binary or hostile input is one clear line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from chute.errors import Issue, SpecError, UserError
from chute.spec.loader import load_documents, load_file
from chute.spec.models import Resource
from chute.spec.validate import RUNTIMES, template_index, validate_all

EXIT_INVALID = 2
EXIT_INTERNAL = 1


def _load(name: str) -> list[Resource]:
    if name == "-":
        return load_documents(sys.stdin.buffer.read(), "<stdin>")
    return load_file(Path(name))


def _line(name: str, issue: Issue) -> str:
    return f"{name}: {issue}"


def lint_files(names: list[str], runtime: str | None = None,
               strict: bool = False) -> list[dict[str, Any]]:
    """Lint ``names``; one result per file: ``{"file", "ok", "issues": [Issue...]}``.

    With ``strict``, a ``templateRef`` to a WorkflowTemplate none of the files holds is an
    error (otherwise it is left for submit time, as ``argo lint`` against a cluster)."""
    loaded: dict[str, list[Resource]] = {}
    results: dict[str, list[Issue]] = {}
    for name in names:
        try:
            loaded[name] = _load(name)
        except SpecError as exc:
            results[name] = exc.issues
        except UserError as exc:
            results[name] = [Issue("", str(exc))]
        except OSError as exc:  # e.g. a FIFO or device that cannot be read
            results[name] = [Issue("", f"cannot read: {exc.strerror or exc}")]
    library = template_index(r for rs in loaded.values() for r in rs)
    for name, resources in loaded.items():
        results[name] = validate_all(resources, runtime, templates=library, strict=strict)
    return [{"file": n, "ok": not results[n], "issues": results[n]} for n in names]


def register(app: typer.Typer) -> None:
    """Add ``chute lint`` to the app."""

    @app.command("lint")
    def lint(
        files: Annotated[list[str], typer.Argument(
            help="Workflow, WorkflowTemplate, ClusterWorkflowTemplate or CronWorkflow files "
                 "(YAML or JSON; '-' reads standard input).", show_default=False,
            metavar="FILE")],
        runtime: Annotated[str | None, typer.Option(
            "--runtime", help=f"Also report what this runtime cannot honour "
                              f"({', '.join(RUNTIMES)}).")] = None,
        output: Annotated[str, typer.Option(
            "-o", "--output", help="Output format: text or json.")] = "text",
        strict: Annotated[bool, typer.Option(
            "--strict", help="Also fail on templateRefs to WorkflowTemplates that none of "
                             "the files defines.")] = False,
    ) -> None:
        """Check workflow files as Argo would; exit 2 listing every problem."""
        if runtime is not None and runtime not in RUNTIMES:
            typer.echo(f"error: unknown runtime {runtime!r} for --runtime; use one of "
                       f"{', '.join(RUNTIMES)}", err=True)
            raise typer.Exit(EXIT_INVALID)
        if output not in ("text", "json"):
            typer.echo(f"error: unknown output format {output!r} for -o; use text or json",
                       err=True)
            raise typer.Exit(EXIT_INVALID)
        try:
            results = lint_files(files, runtime, strict)
        except RecursionError:
            typer.echo("error: spec nested too deeply to check", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        except (UserError, typer.Exit):
            raise
        # a bug in chute: say so in one line, never a traceback
        except Exception as exc:  # noqa: BLE001
            typer.echo(f"internal error while linting ({type(exc).__name__}: {exc}); "
                       "please report it", err=True)
            raise typer.Exit(EXIT_INTERNAL) from None
        if output == "json":
            typer.echo(json.dumps([
                {"file": r["file"], "ok": r["ok"],
                 "issues": [{"path": i.path, "message": i.message} for i in r["issues"]]}
                for r in results], indent=2))
        else:
            for r in results:
                if r["ok"]:
                    typer.echo(f"{r['file']}: ok")
                for issue in r["issues"]:
                    typer.echo(_line(r["file"], issue))
        if not all(r["ok"] for r in results):
            raise typer.Exit(EXIT_INVALID)
