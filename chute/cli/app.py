"""The ``chute`` command: a Typer app assembled from one module per command group.

Each module in ``COMMAND_MODULES`` exposes ``register(app: typer.Typer) -> None``. Only
commands that exist are registered, so ``chute --help`` lists what is built, nothing stubbed.
User errors (:class:`chute.errors.UserError`) print one clear message and exit 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from chute.errors import UserError

COMMAND_MODULES = [
    "chute.cli.lint",
    "chute.cli.secret",
    "chute.cli.models",
    "chute.cli.server",
    "chute.cli.compile",
    "chute.cli.run",
    "chute.cli.workflows",
    "chute.cli.controller",
    "chute.cli.triggers",
    "chute.cli.artifacts",
]


def build_app() -> typer.Typer:
    """Create the Typer app with every built command registered."""
    app = typer.Typer(
        name="chute",
        help="ML pipelines as Argo Workflows, run on one machine.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    app = build_app()
    try:
        # click returns (not raises) a typer.Exit's code when standalone_mode is False
        rc = app(args=argv, prog_name="chute", standalone_mode=False)
        if isinstance(rc, int) and rc:
            return rc
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except SystemExit as exc:  # click's usage errors end here in non-standalone mode
        return int(exc.code or 0)
    except Exception as exc:  # click.UsageError and friends
        # Typer may vendor click (typer._click), so match click's exceptions by shape:
        # a usage error's exit_code is 2, any other ClickException's is 1.
        if callable(getattr(exc, "show", None)) and isinstance(
                getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
